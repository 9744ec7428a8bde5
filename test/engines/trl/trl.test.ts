/**
 * `ttrl train --engine trl` against the jax engine on models/tr-math-base (issue 12 "Must show"). These run
 * TRL on CPU through the repo's .venv (`npm run setup:python`); without it they are skipped with a visible
 * message. The bad-input tests at the end need no venv.
 */
import assert from "node:assert/strict";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { trainTrl } from "../../../src/engines/trl/index.ts";
import { TRL_DEFAULTS } from "../../../src/engines/trl/options.ts";
import { resolveGrpoConfig } from "../../../src/train/config.ts";
import { readTrainRows } from "../../../src/train/data.ts";
import {
  maxAbsDiff,
  readJsonl,
  readWeights,
  recomputeRewards,
  SKIP_MESSAGE,
  testPython,
  transformersLoad,
  ttrl,
} from "./helpers.ts";

const python = testPython();
if (!python) process.stderr.write(`\n${SKIP_MESSAGE}\n\n`);
const skip = python ? false : SKIP_MESSAGE;

const root = mkdtempSync(join(tmpdir(), "ttrl-trl-"));
const MODEL = "models/tr-math-base";
const DATA = "data/tr-math/train.jsonl";
/**
 * Small and quick: 2 steps of 2 prompts × 4 completions, one thread per engine; 56 tokens so the base model
 * closes its answer tag often enough for the rewards to vary (zero-variance groups would train nothing).
 */
const SETTINGS = {
  max_steps: 2,
  prompts_per_step: 2,
  num_generations: 4,
  max_completion_length: 56,
  save_steps: 1,
  learning_rate: 1e-3,
  threads: 1,
  seed: 7,
};
const flags = (o: Record<string, unknown>) =>
  Object.entries(o).flatMap(([k, v]) => [`--${k.replaceAll("_", "-")}`, String(v)]);
const env: Record<string, string> = python ? { TTRL_PYTHON: python } : {};

function trainBoth(name: string, extra: Record<string, unknown>, trlExtra: Record<string, unknown> = {}) {
  const jax = join(root, `jax-${name}`);
  const trl = join(root, `trl-${name}`);
  const base = ["train", "--model", MODEL, "--data", DATA, ...flags({ ...SETTINGS, ...extra })];
  const a = ttrl([...base, "--out", jax]);
  assert.equal(a.status, 0, `jax engine failed: ${a.stderr.slice(-2000)}`);
  const b = ttrl([...base, "--engine", "trl", ...flags(trlExtra), "--out", trl], env);
  assert.equal(b.status, 0, `trl engine failed: ${b.stderr.slice(-3000)}`);
  return { jax, trl, stderr: b.stderr };
}

function keysOf(run: string): string[] {
  const log = readJsonl(join(run, "train_log.jsonl"));
  return [...new Set(log.flatMap((e) => Object.keys(e)))].sort();
}

function order(run: string): [number, string[]][] {
  return readJsonl(join(run, "train_log.jsonl")).map((e) => [e.step as number, e.prompt_ids as string[]]);
}

/** Labels plus the format reward, so that some groups have reward variance and the weights move. */
const ACC = { reward: "accuracy", reward_funcs: "accuracy,format" };

let accRuns: { jax: string; trl: string } | null = null;

describe("engine trl on models/tr-math-base", { skip, concurrency: false }, () => {
  after(() => {
    /* runs stay in the temp folder for inspection */
  });

  it("accuracy, 2 steps: jax keys, jax order, rewards recomputed, final/ loads in ttrl and transformers", () => {
    const r = trainBoth("acc", ACC);
    accRuns = r;
    const jaxKeys = keysOf(r.jax);
    const trlKeys = keysOf(r.trl);
    assert.deepEqual(
      trlKeys.filter((k) => !k.startsWith("trl/")),
      jaxKeys,
      "train_log keys (TRL-only extras live under trl/)",
    );
    assert.deepEqual(order(r.trl), order(r.jax), "(step, prompt ids) sequence");
    assert.equal(order(r.trl).length, 2);
    const rec = recomputeRewards(r.trl);
    assert.deepEqual(rec.mismatches, []);
    assert.equal(rec.checked, 2 * 2 * 4);
    // final/ in HF layout: transformers loads it with no missing keys, and ttrl's engine gives the same
    // token log-probs as transformers.
    const final = join(r.trl, "final");
    assert.ok(existsSync(join(r.trl, "DONE")));
    const text = "Soru: 3 elma ve 4 elma kaç elma eder?\n<mantık>\n3+4=7\n</mantık>\n<cevap>\n7\n</cevap>";
    const tf = transformersLoad(python as string, final, text);
    assert.deepEqual(tf.missing, []);
    assert.deepEqual(tf.unexpected, []);
    const input = join(root, "seq.jsonl");
    writeFileSync(input, `${JSON.stringify({ id: "s", input_ids: tf.ids })}\n`);
    const lp = ttrl(["logprob", "--model", final, "--input", input, "--out", join(root, "lp.jsonl")]);
    assert.equal(lp.status, 0, lp.stderr);
    const ours = readJsonl(join(root, "lp.jsonl"))[0].token_logprobs as number[];
    assert.equal(ours.length, tf.logprobs.length);
    const diff = Math.max(...ours.map((v, i) => Math.abs(v - tf.logprobs[i])));
    assert.ok(diff < 1e-3, `ttrl vs transformers log-probs on final/: max diff ${diff}`);
    // Training changed the weights (the test would pass with a no-op trainer otherwise).
    const gn = readJsonl(join(r.trl, "train_log.jsonl")).map((e) => e.grad_norm as number);
    assert.ok(gn.every((g) => Number.isFinite(g)));
  });

  it("kill after step 1 and --resume: same order, same final weights (max |Δ| ≤ 1e-5)", async () => {
    assert.ok(accRuns, "needs the accuracy run");
    const out = join(root, "trl-resume");
    const rows = await readTrainRows(DATA);
    const config = resolveGrpoConfig([
      { where: "test", values: { model: MODEL, data: DATA, ...ACC, ...SETTINGS } },
    ]);
    const trl = { ...TRL_DEFAULTS, python };
    const first = await trainTrl({ config, trl, rows, outDir: out, stopAfter: 1 });
    assert.equal(first.finalDir, null);
    assert.ok(existsSync(join(out, "checkpoints", "checkpoint-1")), "checkpoint of step 1");
    assert.ok(!existsSync(join(out, "final")), "a killed run leaves no final/");
    assert.ok(!existsSync(join(out, "DONE")));
    assert.equal(readJsonl(join(out, "train_log.jsonl")).length, 1);
    const second = await trainTrl({ config, trl, rows, outDir: out, resume: true });
    assert.equal(second.log.length, 1, "the resumed run trains only step 2");
    assert.deepEqual(order(out), order(accRuns.trl));
    const a = await readWeights(join(out, "final"));
    const b = await readWeights(join(accRuns.trl, "final"));
    const base = await readWeights(MODEL);
    assert.ok(maxAbsDiff(b, base) > 1e-4, "training moved the weights");
    const d = maxAbsDiff(a, b);
    assert.ok(d <= 1e-5, `resumed vs uninterrupted final weights: max |Δ| ${d}`);
  });

  it("majority, N=4 votes / M=2 trained, LoRA r=4: jax keys and order, rewards recomputed, merged full weights", async () => {
    const r = trainBoth(
      "maj",
      { reward: "majority", rewarded_count: 2 },
      { lora_r: 4, lora_alpha: 8, lora_target_modules: "q_proj,v_proj" },
    );
    assert.deepEqual(
      keysOf(r.trl).filter((k) => !k.startsWith("trl/")),
      keysOf(r.jax),
    );
    assert.deepEqual(order(r.trl), order(r.jax));
    const rec = recomputeRewards(r.trl);
    assert.deepEqual(rec.mismatches, []);
    const gens = readJsonl(join(r.trl, "generations.jsonl"));
    assert.equal(gens.length, 2 * 2 * 4, "all N completions are logged");
    assert.equal(gens.filter((g) => g.reward !== null).length, 2 * 2 * 2, "M of N per group are trained");
    const final = join(r.trl, "final");
    const merged = await readWeights(final);
    const base = await readWeights(MODEL);
    assert.deepEqual([...merged.keys()].sort(), [...base.keys()].sort(), "merged full weights, no adapter");
    const tf = transformersLoad(python as string, final, "Soru: 2+2?\n");
    assert.deepEqual(tf.missing, []);
    assert.deepEqual(tf.unexpected, []);
  });

  it("two CPU processes (gloo), groups split across processes: rewards are the whole group's vote", () => {
    const out = join(root, "trl-2proc");
    const r = ttrl(
      [
        "train",
        "--engine",
        "trl",
        "--model",
        MODEL,
        "--data",
        DATA,
        "--reward",
        "majority",
        "--num-processes",
        "2",
        ...flags({ ...SETTINGS, max_steps: 1, prompts_per_step: 1, num_generations: 4 }),
        "--out",
        out,
      ],
      env,
    );
    assert.equal(r.status, 0, r.stderr.slice(-3000));
    const gens = readJsonl(join(out, "generations.jsonl"));
    assert.equal(gens.length, 4);
    // Per-process batch 2 < num_generations 4: the group was sampled half on each process ...
    assert.deepEqual(
      gens.map((g) => g.rank),
      [0, 0, 1, 1],
    );
    // ... and every logged reward is the vote over all 4 completions (a per-process vote over 2 would
    // either have been refused as an incomplete group or differ from this recomputation).
    const rec = recomputeRewards(out);
    assert.deepEqual(rec.mismatches, []);
    assert.equal(rec.checked, 4);
    assert.ok(existsSync(join(out, "final", "model.safetensors")));
  });
});

describe("engine trl: a model TRL cannot load", { skip }, () => {
  it("fails with transformers' message, no stack trace, and no final/", () => {
    const bad = join(root, "bad-model");
    mkdirSync(bad, { recursive: true });
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(MODEL, f), join(bad, f));
    const cfg = JSON.parse(readFileSync(join(MODEL, "config.json"), "utf8"));
    writeFileSync(join(bad, "config.json"), JSON.stringify({ ...cfg, model_type: "no-such-architecture" }));
    const out = join(root, "trl-bad-model");
    const r = ttrl(
      [
        "train",
        "--engine",
        "trl",
        "--model",
        bad,
        "--data",
        DATA,
        "--reward",
        "majority",
        "--out",
        out,
        ...flags(SETTINGS),
      ],
      env,
    );
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /engine trl: .*bad-model: transformers cannot load the (model|tokenizer)/);
    assert.match(r.stderr, /last good checkpoint: none/);
    assert.doesNotMatch(r.stderr, /Traceback|\n\s+at /);
    assert.ok(!existsSync(join(out, "final")));
  });
});

describe("engine trl: bad input fails before any work (no venv needed)", () => {
  const out = join(root, "bad");
  it("no Python / missing module: one message with the setup command, exit 2", () => {
    const a = ttrl(
      ["train", "--engine", "trl", "--model", MODEL, "--data", DATA, "--reward", "majority", "--out", out],
      { TTRL_PYTHON: join(root, "no-such-python") },
    );
    assert.equal(a.status, 2, a.stderr);
    assert.match(a.stderr, /no-such-python.*not found.*npm run setup:python/s);
    assert.doesNotMatch(a.stderr, /\n\s+at /, "no stack trace");
    const b = ttrl(
      ["train", "--engine", "trl", "--model", MODEL, "--data", DATA, "--reward", "majority", "--out", out],
      { TTRL_PYTHON: "/usr/bin/python3" },
    );
    if (b.status !== 0 || !/torch/.test(b.stderr)) {
      assert.equal(b.status, 2, b.stderr);
      assert.match(b.stderr, /module.*(torch|trl).*not importable.*npm run setup:python/s);
    }
    assert.ok(!existsSync(out), "nothing written");
  });

  it("an option only one engine supports names the option and the engine", () => {
    const a = ttrl([
      "train",
      "--model",
      MODEL,
      "--data",
      DATA,
      "--reward",
      "majority",
      "--out",
      out,
      "--lora-r",
      "8",
    ]);
    assert.equal(a.status, 2);
    assert.match(a.stderr, /lora_r is only supported by engine trl/);
    const b = ttrl([
      "train",
      "--engine",
      "trl",
      "--model",
      MODEL,
      "--data",
      DATA,
      "--reward",
      "majority",
      "--out",
      out,
      "--micro-batch-size",
      "4",
    ]);
    assert.equal(b.status, 2);
    assert.match(b.stderr, /micro_batch_size is only supported by engine jax/);
    const c = ttrl([
      "train",
      "--engine",
      "pytorch",
      "--model",
      MODEL,
      "--data",
      DATA,
      "--reward",
      "majority",
      "--out",
      out,
    ]);
    assert.equal(c.status, 2);
    assert.match(c.stderr, /engine must be one of jax, trl/);
    const e = ttrl(
      [
        "train",
        "--engine",
        "trl",
        "--device",
        "webgpu",
        "--model",
        MODEL,
        "--data",
        DATA,
        "--reward",
        "majority",
      ].concat(["--out", out]),
      { TTRL_PYTHON: join(root, "no-such-python") },
    );
    assert.equal(e.status, 2, e.stderr);
    assert.match(e.stderr, /--device webgpu is an option of engine jax only/);
    const d = ttrl(
      [
        "train",
        "--engine",
        "trl",
        "--model",
        MODEL,
        "--data",
        DATA,
        "--reward",
        "majority",
        "--out",
        out,
        "--prompts-per-step",
        "3",
        "--num-generations",
        "4",
        "--num-processes",
        "8",
      ],
      { TTRL_PYTHON: join(root, "no-such-python") },
    );
    assert.equal(d.status, 2);
    assert.match(d.stderr, /\(12\) must be divisible by processes × gradient_accumulation_steps \(8 × 1\)/);
    assert.ok(!existsSync(out) || readdirSync(out).length === 0);
  });

  it("--resume with a setting that decides the weights changed is refused, naming it", () => {
    const run = join(root, "saved-run");
    mkdirSync(run, { recursive: true });
    const config = resolveGrpoConfig([
      { where: "test", values: { model: MODEL, data: DATA, reward: "majority", ...SETTINGS } },
    ]);
    const { python: _p, ...trl } = TRL_DEFAULTS;
    writeFileSync(
      join(run, "config.json"),
      JSON.stringify({ ...config, engine: "trl", ...trl, total_steps: 2 }),
    );
    const r = ttrl(["train", "--out", run, "--resume", "--learning-rate", "0.5", "--save-steps", "2"], {
      TTRL_PYTHON: join(root, "no-such-python"),
    });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--resume: learning_rate 0\.001 → 0\.5 differ from the run saved/);
    assert.doesNotMatch(r.stderr, /save_steps/, "save_steps may change on resume");
  });
});
