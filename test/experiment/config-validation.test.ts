// `ttrl experiment` checks the settings of every stage before the first one starts (issue 15 item 17):
// a bad `train:` / `runs.*:` setting or `merge:` section used to surface only when that stage began,
// after the base model's evaluation (and, for merge:, both training runs).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { loadExperimentConfig } from "../../src/experiment/config.ts";
import { GRPO_KEYS } from "../../src/train/config.ts";
import { TtrlError } from "../../src/util/errors.ts";

const tmp = mkdtempSync(join(tmpdir(), "ttrl-exp-config-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const yml = (text: string) => {
  const f = join(tmp, `c${n++}.yml`);
  writeFileSync(f, text);
  return f;
};

const numericKeys = Object.entries(GRPO_KEYS)
  .filter(([, s]) => s.kind === "int" || s.kind === "float")
  .map(([k]) => k);

describe("experiment config: every stage validated up front", () => {
  it("the shipped presets pass", () => {
    for (const p of ["default", "quick"] as const)
      assert.equal(loadExperimentConfig(undefined, p).merge.merge_method, "slerp");
  });

  it("property: a non-numeric train setting, in train: or in either run, is refused naming the key", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...numericKeys),
        fc.constantFrom("train", "runs.accuracy", "runs.majority"),
        fc.constantFrom("abc", "1.2.3", "[]"),
        (key, section, value) => {
          const body = `${key}: "${value}"`;
          const text =
            section === "train" ? `train:\n  ${body}\n` : `runs:\n  ${section.split(".")[1]}:\n    ${body}\n`;
          assert.throws(
            () => loadExperimentConfig(yml(text)),
            (e: unknown) => e instanceof TtrlError && e.message.includes(key),
          );
        },
      ),
      { numRuns: 40 },
    );
  });

  it("bad merge sections are refused naming the problem", () => {
    const cases: [string, RegExp][] = [
      ["merge:\n  merge_method: slerpp\n", /unknown merge_method "slerpp"/],
      ["merge:\n  parameters:\n    tt: 0.5\n", /unknown parameter "tt" for slerp/],
      ["merge:\n  parameters:\n    t: 1.5\n", /parameter "t" of slerp must be a number in \[0, 1\], got 1.5/],
      ["merge:\n  parameters:\n    t: [0, 2]\n", /parameter "t"/],
      ["merge:\n  dtype: float8\n", /dtype must be float32, float16 or bfloat16/],
      ["merge:\n  lora: x\n", /unknown key "lora"/],
    ];
    for (const [text, re] of cases)
      assert.throws(
        () => loadExperimentConfig(yml(text)),
        (e: unknown) => e instanceof TtrlError && re.test(e.message),
        text,
      );
  });

  it("the CLI stops before the first stage: exit 2, nothing written, no stack trace", () => {
    for (const text of [
      "train:\n  learning_rat: 0.001\n",
      "runs:\n  majority:\n    rewarded_count: 99\n",
      "merge:\n  parameters:\n    tt: 0.5\n",
    ]) {
      const out = join(tmp, `run${n}`);
      const r = spawnSync(process.execPath, ["bin/ttrl.mjs", "experiment", yml(text), "--out", out], {
        encoding: "utf8",
        env: { ...process.env, TTRL_QUIET: "1" },
      });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /c\d+\.yml: (train|merge)/);
      assert.doesNotMatch(r.stderr, /^\s+at /m);
      assert.ok(!existsSync(out), `${out} was created`);
    }
  });

  it("a folder given as the config file is named, not an EISDIR stack", () => {
    const folder = join(tmp, "conf.yml");
    mkdirSync(folder, { recursive: true });
    assert.throws(
      () => loadExperimentConfig(folder),
      (e: unknown) => e instanceof TtrlError && e.message === `${folder}: is a folder, expected a file`,
    );
  });
});
