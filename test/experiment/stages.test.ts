import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import YAML from "yaml";
import { loadExperimentConfig } from "../../src/experiment/config.ts";
import { runExperiment } from "../../src/experiment/index.ts";
import { hashJson, stableStringify } from "../../src/experiment/stages.ts";
import type { Steps } from "../../src/experiment/steps.ts";

const tmp = mkdtempSync(join(tmpdir(), "ttrl-exp-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

// Inputs: a fake base model folder and data files.
const model = join(tmp, "base");
mkdirSync(model);
writeFileSync(join(model, "config.json"), JSON.stringify({ num_hidden_layers: 4 }));
writeFileSync(join(model, "model.safetensors"), "weights");
writeFileSync(join(tmp, "train.jsonl"), '{"id":"a","question":"1+1","answer":"2"}\n');
writeFileSync(join(tmp, "test.jsonl"), '{"id":"b","question":"2+2","answer":"4"}\n');

function config(over: Record<string, unknown> = {}) {
  const file = join(tmp, `cfg-${Math.random().toString(36).slice(2)}.yml`);
  writeFileSync(
    file,
    YAML.stringify({
      model,
      train_data: join(tmp, "train.jsonl"),
      test_data: join(tmp, "test.jsonl"),
      ...over,
    }),
  );
  return loadExperimentConfig(file, "quick");
}

/** Stand-in steps that record their calls and write the files the real ones would. */
function fakeSteps(opts: { killTrainOnce?: "majority" } = {}) {
  const calls: string[] = [];
  let killed = false;
  const metrics = (acc: number) => ({
    n_questions: 1,
    strict: { valid_ratio: 1, accuracy: acc, "pass@k": { "1": acc }, "cons@k": { "4": acc } },
    flexible: { valid_ratio: 1, accuracy: acc, "pass@k": { "1": acc }, "cons@k": { "4": acc } },
  });
  const steps: Steps = {
    async evalModel(a) {
      calls.push(`eval:${a.name}`);
      mkdirSync(a.out, { recursive: true });
      const acc = a.name === "base" ? 0.25 : 0.5;
      writeFileSync(join(a.out, "metrics.json"), JSON.stringify(metrics(acc)));
      writeFileSync(
        join(a.out, "generations.jsonl"),
        `${JSON.stringify({ id: "b", label: "4", model: a.modelDir, t: a.cfg.eval.temperature })}\n`,
      );
      return metrics(acc);
    },
    async train(a) {
      calls.push(`train:${a.reward}${a.resume ? ":resume" : ""}`);
      const cfg = YAML.parse(readFileSync(a.configFile, "utf8"));
      assert.equal(cfg.reward, a.reward);
      mkdirSync(join(a.out, "checkpoints", "step-1"), { recursive: true });
      if (opts.killTrainOnce === a.reward && !killed) {
        killed = true;
        throw new Error("killed");
      }
      const final = join(a.out, "final");
      mkdirSync(final, { recursive: true });
      writeFileSync(join(final, "config.json"), JSON.stringify({ num_hidden_layers: 4 }));
      writeFileSync(join(final, "model.safetensors"), `${a.reward}:${JSON.stringify(cfg)}`);
      return final;
    },
    async merge(a) {
      calls.push("merge");
      const mc = YAML.parse(readFileSync(a.configFile, "utf8"));
      mkdirSync(a.out, { recursive: true });
      // Like a real merge, the output depends on the input weights.
      const w = mc.slices[0].sources.map((s: any) =>
        readFileSync(join(s.model, "model.safetensors"), "utf8"),
      );
      writeFileSync(join(a.out, "model.safetensors"), JSON.stringify([mc, w]));
    },
    async report(a) {
      calls.push("report");
      mkdirSync(a.out, { recursive: true });
      writeFileSync(join(a.out, "report.html"), `<html>${a.runs.join(",")}</html>`);
    },
  };
  return { steps, calls };
}

const quiet = () => {};

/** A run folder where every stage has finished once (each test makes its own: no test relies on another). */
async function finishedRun(name: string): Promise<string> {
  const out = join(tmp, name);
  await runExperiment({ config: config(), out, steps: fakeSteps().steps, log: quiet });
  return out;
}

describe("ttrl experiment stages", () => {
  it("runs the seed's plan in order and writes the merge config and summary", async () => {
    const out = join(tmp, "run1");
    const { steps, calls } = fakeSteps();
    const r = await runExperiment({ config: config(), out, steps, log: quiet });
    assert.deepEqual(calls, [
      "eval:base",
      "train:accuracy",
      "train:majority",
      "merge",
      "eval:grpo-accuracy",
      "eval:ttrl-majority",
      "eval:merged-slerp",
      "report",
    ]);
    const mc = YAML.parse(readFileSync(join(out, "models", "merge.yml"), "utf8"));
    assert.equal(mc.merge_method, "slerp");
    assert.equal(mc.dtype, "bfloat16");
    assert.deepEqual(mc.parameters.t, [
      { filter: "self_attn", value: [0, 0.5, 0.3, 0.7, 1] },
      { filter: "mlp", value: [1, 0.5, 0.7, 0.3, 0] },
      { value: 0.5 },
    ]);
    assert.deepEqual(mc.slices[0].sources[0].layer_range, [0, 4]);
    assert.equal(mc.base_model, mc.slices[0].sources[0].model);
    assert.ok(mc.slices[0].sources[0].model.endsWith(join("train", "accuracy", "final")));
    assert.ok(mc.slices[0].sources[1].model.endsWith(join("train", "majority", "final")));
    // Same data, same settings except the reward.
    const acc = YAML.parse(readFileSync(join(out, "train", "accuracy.yml"), "utf8"));
    const maj = YAML.parse(readFileSync(join(out, "train", "majority.yml"), "utf8"));
    // Each run's reward functions are the format reward and the run's own reward (the majority run's never
    // include the label-based accuracy reward).
    assert.deepEqual(acc.reward_funcs, ["format", "accuracy"]);
    assert.deepEqual(maj.reward_funcs, ["format", "majority"]);
    // The majority run votes with more samples than it trains on (N vote, M trained); it trains on as many
    // completions per prompt as the accuracy run.
    assert.equal(acc.num_generations, 4);
    assert.equal(acc.rewarded_count, undefined);
    assert.deepEqual([maj.num_generations, maj.rewarded_count], [8, 4]);
    const same = (c: any) => ({
      ...c,
      reward: null,
      reward_funcs: c.reward_funcs.map((f: string) => (f === c.reward ? "<the run's reward>" : f)),
      num_generations: null,
      rewarded_count: null,
    });
    assert.deepEqual(same(acc), same(maj));
    assert.deepEqual(
      r.summary.map((s) => [s.model, s.pass1_strict, s.consk_flexible]),
      [
        ["base", 0.25, 0.25],
        ["grpo-accuracy", 0.5, 0.5],
        ["ttrl-majority", 0.5, 0.5],
        ["merged-slerp", 0.5, 0.5],
      ],
    );
    assert.ok(existsSync(join(out, "summary.md")));
  });

  it("skips finished stages on a re-run", async () => {
    const out = await finishedRun("skip");
    const { steps, calls } = fakeSteps();
    const r = await runExperiment({ config: config(), out, steps, log: quiet });
    assert.deepEqual(calls, []);
    assert.ok(r.stages.every((s) => s.status === "skipped"));
    assert.equal(r.summary[0].pass1_strict, 0.25);
  });

  it("refuses a run folder made by another config, naming the difference, unless forced", async () => {
    const out = await finishedRun("refuse");
    const { steps, calls } = fakeSteps();
    const changed = config({ eval: { temperature: 0.5 } });
    await assert.rejects(
      runExperiment({ config: changed, out, steps, log: quiet }),
      (e: Error) =>
        /another config/.test(e.message) &&
        /eval\.temperature: 1 → 0\.5/.test(e.message) &&
        /--force/.test(e.message),
    );
    assert.deepEqual(calls, []);
    // --force: only the stages whose inputs changed (the evals, then the report) run again.
    await runExperiment({ config: changed, out, steps, log: quiet, force: true });
    assert.deepEqual(calls, [
      "eval:base",
      "eval:grpo-accuracy",
      "eval:ttrl-majority",
      "eval:merged-slerp",
      "report",
    ]);
  });

  it("reruns downstream stages when training settings change", async () => {
    const out = await finishedRun("retrain");
    const { steps, calls } = fakeSteps();
    await runExperiment({
      config: config({ train: { learning_rate: 0.5 } }),
      out,
      steps,
      log: quiet,
      force: true,
    });
    assert.deepEqual(calls, [
      "train:accuracy",
      "train:majority",
      "merge",
      "eval:grpo-accuracy",
      "eval:ttrl-majority",
      "eval:merged-slerp",
      "report",
    ]);
  });

  it("resumes an interrupted stage from its checkpoint", async () => {
    const out = join(tmp, "run2");
    const first = fakeSteps({ killTrainOnce: "majority" });
    await assert.rejects(runExperiment({ config: config(), out, steps: first.steps, log: quiet }), /killed/);
    assert.deepEqual(first.calls, ["eval:base", "train:accuracy", "train:majority"]);
    const state = JSON.parse(readFileSync(join(out, "stages", "train-majority.json"), "utf8"));
    assert.equal(state.status, "running");
    const second = fakeSteps();
    await runExperiment({ config: config(), out, steps: second.steps, log: quiet });
    assert.deepEqual(second.calls, [
      "train:majority:resume",
      "merge",
      "eval:grpo-accuracy",
      "eval:ttrl-majority",
      "eval:merged-slerp",
      "report",
    ]);
  });

  it("names a missing input clearly", async () => {
    const { steps } = fakeSteps();
    await assert.rejects(
      runExperiment({
        config: config({ model: join(tmp, "nope") }),
        out: join(tmp, "run3"),
        steps,
        log: quiet,
      }),
      /nope: base model not found/,
    );
  });

  it("validates configs and presets", () => {
    const q = loadExperimentConfig(undefined, "quick");
    const d = loadExperimentConfig(undefined, "default");
    assert.equal(d.eval.k, 8);
    assert.deepEqual(d.eval.ks, [1, 2, 4, 8]);
    assert.ok(q.eval.k <= d.eval.k);
    assert.equal(q.model, d.model);
    const bad = join(tmp, "bad.yml");
    writeFileSync(bad, "eval:\n  kk: 3\n");
    assert.throws(() => loadExperimentConfig(bad), /unknown key "eval\.kk"/);
    writeFileSync(bad, "eval:\n  k: 2\n  ks: [1, 4]\n");
    assert.throws(() => loadExperimentConfig(bad), /must not exceed eval\.k/);
    writeFileSync(bad, "model: [unclosed\n");
    assert.throws(() => loadExperimentConfig(bad), /bad\.yml.*invalid YAML/);
  });

  it("hashes configs independently of key order", () => {
    assert.equal(hashJson({ a: 1, b: [1, { c: 2, d: 3 }] }), hashJson({ b: [1, { d: 3, c: 2 }], a: 1 }));
    assert.notEqual(hashJson({ a: 1 }), hashJson({ a: 2 }));
    assert.equal(stableStringify({ b: undefined, a: null }), '{"a":null}');
  });
});
