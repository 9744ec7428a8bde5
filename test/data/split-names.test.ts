// `ttrl data split --names`: part names are validated before anything is written (issue 15 item 9:
// duplicates overwrote a part, "../../x" wrote outside --out, "" wrote a hidden ".jsonl").
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { parseSplitSpec } from "../../src/data/ops.ts";
import { UsageError } from "../../src/util/errors.ts";

const dir = mkdtempSync(join(tmpdir(), "ttrl-split-names-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const cli = (args: string[]) =>
  spawnSync(process.execPath, ["--import", "tsx", "test/data/cli-runner.ts", "data", ...args], {
    encoding: "utf8",
    env: { ...process.env, TTRL_QUIET: "1" },
  });

const plain = fc.stringMatching(/^[a-z0-9_][a-z0-9_.-]{0,10}$/);

describe("data split part names", () => {
  it("property: a duplicate (any case), a path, an empty or a hidden name is refused", () => {
    const badName = fc.oneof(
      fc.constant(""),
      plain.map((s) => `.${s}`),
      plain.map((s) => `../${s}`),
      plain.map((s) => `${s}/x`),
      plain.map((s) => `a\\${s}`),
      fc.constant(".."),
      fc.constant("."),
      plain.map((s) => `-${s}`),
      plain.map((s) => ` ${s}`),
    );
    fc.assert(
      fc.property(plain, badName, fc.boolean(), (good, bad, first) => {
        const names = first ? [bad, good] : [good, bad];
        assert.throws(() => parseSplitSpec("1:rest", names), UsageError);
      }),
    );
    fc.assert(
      fc.property(plain, fc.boolean(), (name, upper) => {
        assert.throws(
          () => parseSplitSpec("1:rest", [name, upper ? name.toUpperCase() : name]),
          (e: unknown) => e instanceof UsageError && /given twice/.test((e as Error).message),
        );
      }),
    );
    fc.assert(
      fc.property(
        fc.uniqueArray(plain, { minLength: 3, maxLength: 3, selector: (s) => s.toLowerCase() }),
        (n) => {
          assert.deepEqual(parseSplitSpec("1:1:rest", n).names, n);
        },
      ),
    );
  });

  it("the CLI refuses the reported names with a clear error and writes nothing", () => {
    const input = join(dir, "rows.jsonl");
    writeFileSync(
      input,
      Array.from({ length: 100 }, (_, i) =>
        JSON.stringify({ id: `r${i}`, question: `q${i}`, answer: String(i) }),
      ).join("\n"),
    );
    for (const names of ["a,a", "../../x,test", ",test", "", "Train,train"]) {
      const out = join(dir, `out-${names.replace(/[^a-z]/gi, "_")}`);
      const r = cli(["split", input, "--split", "97:rest", "--names", names, "--seed", "1", "--out", out]);
      assert.equal(r.status, 2, `--names "${names}": ${r.stderr}`);
      assert.match(r.stderr, /--names/);
      assert.doesNotMatch(r.stderr, /^\s+at /m);
      assert.ok(!existsSync(out), `--names "${names}" wrote ${out}`);
    }
    assert.ok(!existsSync(join(dir, "..", "x.jsonl")));
    // Good names: every row lands in exactly one part inside --out.
    const out = join(dir, "good");
    const r = cli([
      "split",
      input,
      "--split",
      "97:rest",
      "--names",
      "eğitim,test",
      "--seed",
      "1",
      "--out",
      out,
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readdirSync(out).sort(), ["eğitim.jsonl", "test.jsonl"]);
    const n = (f: string) => readFileSync(join(out, f), "utf8").trim().split("\n").length;
    assert.equal(n("eğitim.jsonl") + n("test.jsonl"), 100);
  });
});
