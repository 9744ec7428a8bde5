/** Issue 15 items 3 and 17 (train settings): settings that cannot work are usage errors naming the option. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import fc from "fast-check";
import { resolveGrpoConfig } from "../../src/train/config.ts";
import { UsageError } from "../../src/util/errors.ts";

const resolve = (values: Record<string, unknown>) =>
  resolveGrpoConfig([{ where: "flags", values: { model: "m", data: "d", ...values } }]);

test("adam_epsilon must be > 0 (0 made AdamW divide 0 by 0: a NaN model saved with exit 0)", () => {
  fc.assert(
    fc.property(fc.double({ min: 0, max: 1e-3, noNaN: true }), (eps) => {
      if (eps > 0) assert.equal(resolve({ adam_epsilon: eps }).adam_epsilon, eps);
      else
        assert.throws(
          () => resolve({ adam_epsilon: eps }),
          (e: Error) =>
            e instanceof UsageError && /^adam_epsilon \(--adam-epsilon\) must be > 0/.test(e.message),
        );
    }),
  );
  assert.throws(() => resolve({ adam_epsilon: "0" }), /adam_epsilon \(--adam-epsilon\) must be > 0, got 0/);
});

test("warmup_ratio must be in [0, 1] (5 was accepted)", () => {
  fc.assert(
    fc.property(fc.double({ min: 0, max: 10, noNaN: true }), (r) => {
      if (r <= 1) assert.equal(resolve({ warmup_ratio: r }).warmup_ratio, r);
      else
        assert.throws(
          () => resolve({ warmup_ratio: r }),
          /warmup_ratio \(--warmup-ratio\) must be in \[0, 1\]/,
        );
    }),
  );
});

test("num_generations and rewarded_count must be ≥ 2 (a group of one has advantage 0 everywhere)", () => {
  assert.throws(
    () => resolve({ num_generations: 1 }),
    /num_generations \(--num-generations\) must be ≥ 2, got 1: .*every advantage is 0/,
  );
  assert.throws(
    () => resolve({ num_generations: 4, rewarded_count: 1 }),
    /rewarded_count \(--rewarded-count\) must be ≥ 2, got 1/,
  );
  assert.equal(resolve({ num_generations: 2 }).num_generations, 2);
  assert.equal(resolve({ num_generations: 4, rewarded_count: 2 }).rewarded_count, 2);
});

test("ttrl train --adam-epsilon 0 / --warmup-ratio 5 / --num-generations 1 exit 2 before loading anything", () => {
  for (const [flag, value, msg] of [
    ["--adam-epsilon", "0", /adam_epsilon \(--adam-epsilon\) must be > 0/],
    ["--warmup-ratio", "5", /warmup_ratio \(--warmup-ratio\) must be in \[0, 1\]/],
    ["--num-generations", "1", /num_generations \(--num-generations\) must be ≥ 2/],
  ] as const) {
    // the model and data do not exist: the settings are refused first
    const r = spawnSync(
      process.execPath,
      ["bin/ttrl.mjs", "train", "--model", "no-model", "--data", "no.jsonl", "--out", "no-out", flag, value],
      { encoding: "utf8", env: { ...process.env, TTRL_QUIET: "1" } },
    );
    assert.equal(r.status, 2, `${flag} ${value}: ${r.stderr}`);
    assert.match(r.stderr, msg);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  }
});

test("a run whose update goes non-finite stops with an error naming the tensor and leaves no weights with NaN/Inf", () => {
  const root = mkdtempSync(join(tmpdir(), "ttrl-nonfinite-"));
  try {
    const run = (args: string[]) =>
      spawnSync(process.execPath, ["bin/ttrl.mjs", ...args], {
        encoding: "utf8",
        env: { ...process.env, TTRL_QUIET: "1", TTRL_THREADS: "1" },
      });
    const model = join(root, "m");
    assert.equal(run(["init-model", "--preset", "tiny", "--out", model, "--seed", "3"]).status, 0);
    const data = join(root, "d.jsonl");
    writeFileSync(
      data,
      Array.from({ length: 4 }, (_, i) =>
        JSON.stringify({ id: `q${i}`, question: `${i} + 1 kaç?`, answer: `${i + 1}` }),
      ).join("\n"),
    );
    const out = join(root, "out");
    // a learning rate of 1e39 is a finite setting, but in float32 the update is ±Inf
    const r = run([
      "train",
      "--model",
      model,
      "--data",
      data,
      "--reward",
      "accuracy",
      "--out",
      out,
      "--prompts-per-step",
      "2",
      "--num-generations",
      "2",
      "--max-completion-length",
      "4",
      "--max-steps",
      "1",
      "--save-steps",
      "1",
      "--learning-rate",
      "1e39",
      "--threads",
      "1",
    ]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /tensor "[\w.]+" \[[\d, ]+\] has a non-finite value \((-?Infinity|NaN)\)/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
    const saved = readdirSync(out, { recursive: true }).map(String);
    assert.ok(!saved.some((f) => f.endsWith(".safetensors") && !f.includes("optimizer")), saved.join(", "));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
