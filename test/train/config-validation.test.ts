/** Issue 15 items 3 and 17 (train settings): settings that cannot work are usage errors naming the option. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
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
