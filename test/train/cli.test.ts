import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";

const root = mkdtempSync(join(tmpdir(), "ttrl-train-cli-"));
const model = join(root, "tiny");
const data = join(root, "train.jsonl");
const unlabeled = join(root, "unlabeled.jsonl");

function ttrl(args: string[]) {
  return spawnSync(process.execPath, ["bin/ttrl.mjs", ...args], {
    encoding: "utf8",
    env: { ...process.env, TTRL_QUIET: "1", TTRL_THREADS: "1" },
  });
}

const SMALL = [
  "--prompts-per-step",
  "2",
  "--num-generations",
  "3",
  "--max-completion-length",
  "8",
  "--threads",
  "1",
];

before(() => {
  const r = ttrl(["init-model", "--preset", "tiny", "--out", model, "--seed", "3"]);
  assert.equal(r.status, 0, r.stderr);
  const rows = Array.from({ length: 6 }, (_, i) => ({
    id: `q${i}`,
    question: `${i} + 1 kaç eder?`,
    answer: String(i + 1),
  }));
  writeFileSync(data, rows.map((r) => JSON.stringify(r)).join("\n"));
  writeFileSync(
    unlabeled,
    rows.map((r, i) => JSON.stringify(i === 2 ? { id: r.id, question: r.question } : r)).join("\n"),
  );
});

describe("ttrl train: bad input fails before work starts", () => {
  it("M > N and epsilon < 0 are usage errors (exit 2)", () => {
    const a = ttrl([
      "train",
      "--model",
      model,
      "--data",
      data,
      "--reward",
      "majority",
      "--out",
      join(root, "x"),
      "--num-generations",
      "4",
      "--rewarded-count",
      "5",
    ]);
    assert.equal(a.status, 2);
    assert.match(a.stderr, /rewarded_count M=5 exceeds num_generations N=4/);
    const b = ttrl([
      "train",
      "--model",
      model,
      "--data",
      data,
      "--reward",
      "majority",
      "--out",
      join(root, "x"),
      "--epsilon",
      "-0.1",
    ]);
    assert.equal(b.status, 2);
    assert.match(b.stderr, /epsilon must be ≥ 0/);
    assert.ok(!existsSync(join(root, "x")));
    const yml = join(root, "train.yml");
    writeFileSync(yml, "num_generations: 4\nnope: 1\n");
    const c = ttrl([
      "train",
      "--model",
      model,
      "--data",
      data,
      "--reward",
      "majority",
      "--out",
      join(root, "x"),
      "--config",
      yml,
    ]);
    assert.equal(c.status, 2);
    assert.match(c.stderr, /train\.yml: unknown setting "nope"/);
  });
  it("accuracy on unlabeled rows names the first such row; missing model and empty data are clear errors", () => {
    const a = ttrl([
      "train",
      "--model",
      model,
      "--data",
      unlabeled,
      "--reward",
      "accuracy",
      "--out",
      join(root, "y"),
      ...SMALL,
    ]);
    assert.equal(a.status, 1);
    assert.match(a.stderr, /unlabeled\.jsonl:3: row "q2" has no answer/);
    const empty = join(root, "empty.jsonl");
    writeFileSync(empty, "");
    const b = ttrl([
      "train",
      "--model",
      model,
      "--data",
      empty,
      "--reward",
      "majority",
      "--out",
      join(root, "y"),
    ]);
    assert.equal(b.status, 1);
    assert.match(b.stderr, /empty\.jsonl: no training rows/);
    const c = ttrl([
      "train",
      "--model",
      join(root, "nope"),
      "--data",
      data,
      "--reward",
      "majority",
      "--out",
      join(root, "y"),
    ]);
    assert.equal(c.status, 1);
    assert.match(c.stderr, /nope: model folder not found/);
  });
});

describe("ttrl train: kill -9 and --resume", () => {
  it("ends with bit-identical weights to an uninterrupted run", async () => {
    const args = (out: string) => [
      "train",
      "--model",
      model,
      "--data",
      data,
      "--reward",
      "majority",
      "--out",
      out,
      ...SMALL,
      "--max-steps",
      "4",
      "--save-steps",
      "1",
      "--learning-rate",
      "0.01",
      "--temperature",
      "0.8",
    ];
    const a = join(root, "full");
    const ra = ttrl(args(a));
    assert.equal(ra.status, 0, ra.stderr);
    const b = join(root, "killed");
    const child = spawn(process.execPath, ["bin/ttrl.mjs", ...args(b)], {
      env: { ...process.env, TTRL_QUIET: "1", TTRL_THREADS: "1" },
      stdio: "ignore",
    });
    const exited = new Promise((r) => child.once("exit", r));
    let done = false;
    void exited.then(() => {
      done = true;
    });
    while (!done && !existsSync(join(b, "checkpoints", "step-2", "trainer_state.json")))
      await new Promise((r) => setTimeout(r, 10));
    child.kill("SIGKILL");
    await exited;
    assert.ok(!existsSync(join(b, "final")), "the run was killed before it finished");
    const rb = ttrl(["train", "--out", b, "--resume"]);
    assert.equal(rb.status, 0, rb.stderr);
    const wa = readFileSync(join(a, "final", "model.safetensors"));
    const wb = readFileSync(join(b, "final", "model.safetensors"));
    assert.ok(wa.equals(wb), "final weights differ");
    const log = readFileSync(join(b, "train_log.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l).step);
    assert.deepEqual(log, [1, 2, 3, 4]);
  });
});

describe("ttrl train / sft: a used --out (issue 15 items 7 and 10)", () => {
  const ckpts = (out: string) =>
    existsSync(join(out, "checkpoints")) ? readdirSync(join(out, "checkpoints")).sort() : [];
  const trainArgs = (out: string, ...extra: string[]) => [
    "train",
    "--model",
    model,
    "--data",
    data,
    "--reward",
    "majority",
    "--out",
    out,
    ...SMALL,
    "--learning-rate",
    "0.01",
    ...extra,
  ];

  it("train: a fresh run into a used folder is refused unless --overwrite; --resume refuses changed settings that decide the weights", () => {
    const out = join(root, "used");
    const first = ttrl(trainArgs(out, "--max-steps", "2", "--save-steps", "1"));
    assert.equal(first.status, 0, first.stderr);
    const weights = readFileSync(join(out, "final", "model.safetensors"));
    const config = readFileSync(join(out, "config.json"), "utf8");

    // The reproduction of issue 15 item 7: a second fresh run must not mix with the first one.
    const again = ttrl(trainArgs(out, "--max-steps", "1", "--seed", "7"));
    assert.equal(again.status, 2, again.stderr);
    assert.match(again.stderr, /already holds a run .*--resume .*--overwrite/);
    assert.deepEqual(ckpts(out), ["step-1", "step-2"]);
    assert.ok(readFileSync(join(out, "final", "model.safetensors")).equals(weights));

    // Item 10: a resume that changes the learning rate or the length is refused, naming the setting.
    const lr = ttrl(["train", "--out", out, "--resume", "--learning-rate", "0.5"]);
    assert.equal(lr.status, 2, lr.stderr);
    assert.match(lr.stderr, /learning_rate 0\.01 → 0\.5/);
    const steps = ttrl(["train", "--out", out, "--resume", "--max-steps", "3"]);
    assert.equal(steps.status, 2, steps.stderr);
    assert.match(steps.stderr, /max_steps 2 → 3/);
    assert.equal(readFileSync(join(out, "config.json"), "utf8"), config, "the saved config was overwritten");
    // A setting that does not change the weights may change, and the change is recorded.
    const save = ttrl(["train", "--out", out, "--resume", "--save-steps", "2"]);
    assert.equal(save.status, 0, save.stderr);
    assert.match(save.stderr, /resume: save_steps 1 → 2 \(does not change the weights/);
    const saved = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    assert.equal(saved.save_steps, 2);
    assert.deepEqual(saved.resumed_changes, [{ at_step: 2, changed: { save_steps: [1, 2] } }]);
    assert.ok(readFileSync(join(out, "final", "model.safetensors")).equals(weights));

    // --overwrite clears the folder: only the new run's checkpoint, log and settings remain.
    const over = ttrl(trainArgs(out, "--max-steps", "1", "--seed", "7", "--overwrite"));
    assert.equal(over.status, 0, over.stderr);
    assert.deepEqual(ckpts(out), ["step-1"]);
    assert.equal(readFileSync(join(out, "train_log.jsonl"), "utf8").trim().split("\n").length, 1);
    const fresh = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    assert.equal(fresh.seed, 7);
    assert.equal(fresh.resumed_changes, undefined);
  });

  it("sft: the same rules; --resume keeps the saved settings instead of the flags' defaults", () => {
    const sftData = join(root, "sft.jsonl");
    writeFileSync(
      sftData,
      Array.from({ length: 4 }, (_, i) =>
        JSON.stringify({ question: `${i} + 1?`, solution: `<cevap>${i + 1}</cevap>` }),
      ).join("\n"),
    );
    const out = join(root, "sft-used");
    const base = ["sft", "--model", model, "--data", sftData, "--out", out, "--threads", "1"];
    const first = ttrl([...base, "--max-steps", "2", "--batch-size", "2", "--learning-rate", "0.01"]);
    assert.equal(first.status, 0, first.stderr);
    const again = ttrl([...base, "--max-steps", "2", "--batch-size", "2"]);
    assert.equal(again.status, 2, again.stderr);
    assert.match(again.stderr, /already holds a run/);
    const lr = ttrl([...base, "--resume", "--learning-rate", "0.1"]);
    assert.equal(lr.status, 2, lr.stderr);
    assert.match(lr.stderr, /learning_rate 0\.01 → 0\.1/);
    // Without flags, a resume takes the saved batch size, steps and learning rate (not the defaults).
    const resumed = ttrl([...base, "--resume"]);
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /sft: 2 steps \(0 in this run\)/);
  });
});
