// `ttrl experiment --preset quick` end to end with the real engine, trainer, merge and report on a tiny
// random model and a few rows: every stage runs, outputs exist, and a second run skips everything.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import YAML from "yaml";

process.env.TTRL_THREADS ??= "1";
const tmp = mkdtempSync(join(tmpdir(), "ttrl-exp-e2e-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("ttrl experiment --preset quick (real pieces, tiny model)", () => {
  it("runs every stage, writes the report and summary, then skips all on a re-run", async () => {
    const { writePresetModel } = await import("../../src/model/presets.ts");
    const model = join(tmp, "tiny");
    await writePresetModel("tiny", model, { seed: 3 });
    const rows = (n: number, off: number) =>
      Array.from({ length: n }, (_, i) =>
        JSON.stringify({
          id: `r${off + i}`,
          question: `${i + 1} elma ve ${off + i} armut, toplam kaç?`,
          answer: String(off + 2 * i + 1),
        }),
      ).join("\n");
    writeFileSync(join(tmp, "train.jsonl"), rows(8, 0));
    writeFileSync(join(tmp, "test.jsonl"), rows(4, 100));
    const cfgFile = join(tmp, "exp.yml");
    writeFileSync(
      cfgFile,
      YAML.stringify({
        model,
        train_data: join(tmp, "train.jsonl"),
        test_data: join(tmp, "test.jsonl"),
        train: { max_steps: 1, max_completion_length: 16, prompts_per_step: 2, num_generations: 2 },
        runs: { majority: { num_generations: 4, rewarded_count: 2 } }, // 4 vote, 2 trained
        eval: { k: 2, ks: [1, 2], max_tokens: 16, limit: 4 },
      }),
    );
    const { loadExperimentConfig } = await import("../../src/experiment/config.ts");
    const { runExperiment } = await import("../../src/experiment/index.ts");
    const cfg = loadExperimentConfig(cfgFile, "quick");
    const out = join(tmp, "run");
    const logs: string[] = [];
    const r = await runExperiment({ config: cfg, out, log: (m) => logs.push(m) });
    assert.deepEqual(
      r.stages.map((s) => [s.name, s.status]),
      [
        ["eval-base", "ran"],
        ["train-accuracy", "ran"],
        ["train-majority", "ran"],
        ["merge", "ran"],
        ["eval-accuracy", "ran"],
        ["eval-majority", "ran"],
        ["eval-merged", "ran"],
        ["report", "ran"],
      ],
    );
    for (const f of [
      "eval/base/metrics.json",
      "eval/merged/generations.jsonl",
      "train/accuracy/train_log.jsonl",
      "train/majority/final/config.json",
      "models/merged/config.json",
      "models/merge.yml",
      "report/report.html",
      "summary.md",
    ])
      assert.ok(existsSync(join(out, f)), `${f} missing`);
    const merged = JSON.parse(readFileSync(join(out, "models", "merged", "config.json"), "utf8"));
    assert.equal(merged.num_hidden_layers, 3);
    // The summary holds each model's own metrics, and they obey the metrics' invariants.
    assert.deepEqual(
      r.summary.map((row) => row.model),
      ["base", "grpo-accuracy", "ttrl-majority", "merged-slerp"],
    );
    for (const [i, m] of ["base", "accuracy", "majority", "merged"].entries()) {
      const metrics = JSON.parse(readFileSync(join(out, "eval", m, "metrics.json"), "utf8"));
      const row = r.summary[i];
      assert.equal(row.valid_strict, metrics.strict.valid_ratio);
      assert.equal(row.pass1_flexible, metrics.flexible["pass@k"]["1"]);
      assert.equal(row.consk_strict, metrics.strict["cons@k"]["2"]);
      for (const k of [
        "valid_strict",
        "valid_flexible",
        "pass1_strict",
        "pass1_flexible",
        "consk_strict",
        "consk_flexible",
      ] as const)
        assert.ok((row[k] as number) >= 0 && (row[k] as number) <= 1, `${k}: ${row[k]}`);
      assert.ok((row.valid_strict as number) <= (row.valid_flexible as number));
      assert.ok((row.pass1_strict as number) <= (row.valid_strict as number));
    }
    // Both runs trained on the same prompts in the same order; the accuracy run logs the label-free
    // monitors too, and each run's reward means are those of its trained completions in generations.jsonl.
    const logOf = (run: string) =>
      readFileSync(join(out, "train", run, "train_log.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
    const [acc, maj] = [logOf("accuracy"), logOf("majority")];
    assert.equal(acc.length, 1);
    assert.deepEqual(acc[0].prompt_ids, maj[0].prompt_ids);
    for (const k of ["majority_ratio", "label_accuracy", "reward_accuracy"])
      assert.ok(acc[0][k] >= 0 && acc[0][k] <= 1, `accuracy run's ${k}: ${acc[0][k]}`);
    for (const [run, fn, entry, votes] of [
      ["accuracy", "accuracy", acc[0], 2],
      ["majority", "majority", maj[0], 4],
    ] as const) {
      const gens = readFileSync(join(out, "train", run, "generations.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      // Every voting completion is logged; 2 per prompt are trained (rewarded), the others have null rewards.
      assert.equal(gens.length, 2 * votes);
      const trained = gens.filter((g) => g.rewards !== null);
      assert.equal(trained.length, 2 * 2);
      const rewards = trained.map((g) => g.rewards[fn] as number);
      assert.equal(entry[`rewards/${fn}/mean`], rewards.reduce((a, b) => a + b, 0) / rewards.length);
    }
    const again = await runExperiment({ config: cfg, out, log: () => {} });
    assert.ok(again.stages.every((s) => s.status === "skipped"));
    assert.deepEqual(again.summary, r.summary);
  });
});
