import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { extractAnswer, parseLocaleNumber } from "../../src/answers/index.ts";
import { loadRows, rowToJson } from "../../src/data/schema.ts";
import {
  formatInt,
  LOOSE_LAYOUTS,
  SLIP_OFFSETS,
  SynthOptionError,
  synthesize,
  synthesizeDrills,
  TEMPLATE_NAMES,
  trDative,
  trGenitive,
} from "../../src/data/synth.ts";

const cli = (args: string[]) =>
  spawnSync(process.execPath, ["--import", "tsx", "test/data/cli-runner.ts", "data", ...args], {
    encoding: "utf8",
    env: { ...process.env, TTRL_QUIET: "1" },
  });

/** Evaluate "a*b/100" left to right on locale-formatted integers. */
function evalLine(expr: string, locale: "tr-TR" | "en-US"): number {
  const toks = expr.match(/[0-9.,]+|[-+*/]/g) ?? [];
  const num = (t: string | undefined) => Number(parseLocaleNumber(t ?? "", locale));
  let acc = num(toks[0]);
  for (let i = 1; i < toks.length; i += 2) {
    const b = num(toks[i + 1]);
    const op = toks[i];
    acc = op === "+" ? acc + b : op === "-" ? acc - b : op === "*" ? acc * b : acc / b;
  }
  return acc;
}

function checkRows(lang: "tr" | "en", n: number, seed: number) {
  const locale = lang === "tr" ? "tr-TR" : "en-US";
  const [rt, at] = lang === "tr" ? ["mantık", "cevap"] : ["reasoning", "answer"];
  const { rows } = synthesize({ lang, n, seed });
  assert.equal(rows.length, n);
  assert.equal(new Set(rows.map((r) => r.question)).size, n);
  assert.equal(new Set(rows.map((r) => r.id)).size, n);
  for (const r of rows) {
    assert.ok(r.question.length <= 120, r.question);
    assert.ok(r.solution!.length <= 120, r.solution);
    assert.match(r.answer!, /^\d+$/);
    const m = new RegExp(`^<${rt}>\\n([^]*)\\n</${rt}>\\n<${at}>\\n(.*)\\n</${at}>$`).exec(r.solution!);
    assert.ok(m, r.solution);
    const lines = m[1].split("\n");
    assert.equal(lines.length, r.meta!.ops, r.solution);
    let last = Number.NaN;
    for (const line of lines) {
      const [expr, res] = line.split("=");
      const want = Number(parseLocaleNumber(res, locale));
      assert.equal(evalLine(expr, locale), want, `${r.question} | ${line}`);
      assert.ok(Number.isInteger(want) && want >= 0, line);
      last = want;
    }
    assert.equal(String(last), r.answer, r.solution);
    // The grading core reads the solution back to the label.
    const fmt = lang === "tr" ? "mantik-cevap" : "reasoning-answer";
    assert.deepEqual(extractAnswer(r.solution!, "strict", { format: fmt, locale }), {
      valid: true,
      answer: r.answer,
    });
  }
  return rows;
}

describe("data synth", () => {
  it("formats integers in the locale and Turkish suffixes follow vowel harmony", () => {
    assert.equal(formatInt(1250, "tr"), "1.250");
    assert.equal(formatInt(1250, "en"), "1,250");
    assert.equal(formatInt(1234567, "tr"), "1.234.567");
    assert.equal(formatInt(999, "tr"), "999");
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 }), (n) => {
        assert.equal(parseLocaleNumber(formatInt(n, "tr"), "tr-TR"), String(n));
        assert.equal(parseLocaleNumber(formatInt(n, "en"), "en-US"), String(n));
      }),
    );
    assert.deepEqual(["Ali", "Can", "Umut", "Gül", "Ayşe", "Mehmet", "Oğuz", "Zeynep"].map(trGenitive), [
      "Ali'nin",
      "Can'ın",
      "Umut'un",
      "Gül'ün",
      "Ayşe'nin",
      "Mehmet'in",
      "Oğuz'un",
      "Zeynep'in",
    ]);
    assert.deepEqual(["Ali", "Can", "Ayşe", "Mehmet", "Umut", "Seda"].map(trDative), [
      "Ali'ye",
      "Can'a",
      "Ayşe'ye",
      "Mehmet'e",
      "Umut'a",
      "Seda'ya",
    ]);
  });

  it("every Turkish problem's worked solution is correct arithmetic ending in its answer", () => {
    const rows = checkRows("tr", 3000, 11);
    // Many templates, all operation counts and levels, and thousands separators do appear.
    assert.equal(new Set(rows.map((r) => r.meta!.template)).size, TEMPLATE_NAMES.length);
    assert.ok(rows.filter((r) => /\d\.\d{3}/.test(r.question)).length > 500);
    assert.ok(rows.filter((r) => Number(r.answer) >= 1000).length > 600);
    for (const ops of [1, 2, 3]) assert.ok(rows.filter((r) => r.meta!.ops === ops).length > 700);
  });

  it("English problems too", () => {
    const rows = checkRows("en", 1000, 12);
    assert.ok(rows.some((r) => /\d,\d{3}/.test(r.question)));
  });

  it("is byte-identical for a seed, different across seeds, and honours the knobs", () => {
    const a = synthesize({ lang: "tr", n: 300, seed: 5 }).rows.map(rowToJson).join("\n");
    const b = synthesize({ lang: "tr", n: 300, seed: 5 }).rows.map(rowToJson).join("\n");
    const c = synthesize({ lang: "tr", n: 300, seed: 6 }).rows.map(rowToJson).join("\n");
    assert.equal(a, b);
    assert.notEqual(a, c);
    const easy = synthesize({
      lang: "tr",
      n: 200,
      seed: 1,
      ops: [1],
      levels: [1],
      maxQuestionChars: 80,
    }).rows;
    for (const r of easy) {
      assert.equal(r.meta!.ops, 1);
      assert.equal(r.meta!.level, 1);
      assert.ok(r.question.length <= 80);
      assert.ok(Number(r.answer) < 1000, r.question);
    }
  });

  it("regenerates the shipped data/tr-math byte for byte with the recorded command", () => {
    const readme = readFileSync("data/tr-math/README.md", "utf8");
    const cmd = /^ttrl data synth (.*) --out data\/tr-math$/m.exec(readme);
    assert.ok(cmd, "README records the command");
    const out = mkdtempSync(join(tmpdir(), "ttrl-trmath-"));
    const r = cli(["synth", ...cmd[1].split(/\s+/), "--out", out]);
    assert.equal(r.status, 0, r.stderr);
    for (const f of ["train.jsonl", "test.jsonl"])
      assert.ok(readFileSync(join(out, f)).equals(readFileSync(join("data/tr-math", f))), `${f} differs`);
    const train = loadRows("data/tr-math/train.jsonl").rows;
    const test = loadRows("data/tr-math/test.jsonl").rows;
    assert.equal(train.length, 1400);
    assert.equal(test.length, 420);
    const trainQ = new Set(train.map((x) => x.question));
    assert.ok(test.every((x) => !trainQ.has(x.question)));
  });

  it("--keep-templates keeps a subset of the set made without it, in every part; unknown names refused", () => {
    const dir = mkdtempSync(join(tmpdir(), "ttrl-keep-"));
    const base = ["synth", "--lang", "tr", "--n", "300", "--seed", "5", "--ops", "1", "--levels", "1"];
    assert.equal(cli([...base, "--split", "200:100", "--out", join(dir, "all")]).status, 0);
    const r = cli([
      ...base,
      "--split",
      "200:100",
      "--keep-templates",
      "age-later,buy",
      "--out",
      join(dir, "kept"),
    ]);
    assert.equal(r.status, 0, r.stderr);
    for (const part of ["train", "test"]) {
      const all = loadRows(join(dir, "all", `${part}.jsonl`)).rows;
      const kept = loadRows(join(dir, "kept", `${part}.jsonl`)).rows;
      const want = all.filter((x) => ["age-later", "buy"].includes(String(x.meta?.template)));
      assert.ok(want.length > 0 && want.length < all.length, `${part}: ${want.length} of ${all.length}`);
      assert.deepEqual(kept.map(rowToJson), want.map(rowToJson));
      assert.match(r.stdout, new RegExp(`${part}: ${want.length} \\(of ${all.length}\\)`));
    }
    const bad = cli([...base, "--keep-templates", "age-later,nope", "--out", join(dir, "bad.jsonl")]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--keep-templates: unknown template "nope" \(known: /);
    assert.doesNotMatch(bad.stderr, /\n\s+at /);
  });

  it("--exclude keeps a warm-up set free of the test questions", () => {
    const dir = mkdtempSync(join(tmpdir(), "ttrl-sft-"));
    const r = cli([
      "synth",
      "--lang",
      "tr",
      "--n",
      "4000",
      "--seed",
      "777",
      "--ops",
      "1",
      "--levels",
      "1",
      "--max-number",
      "30",
      "--exclude",
      "data/tr-math/test.jsonl",
      "--out",
      join(dir, "sft.jsonl"),
    ]);
    assert.equal(r.status, 0, r.stderr);
    const m = /rejected as excluded: (\d+)/.exec(r.stdout);
    assert.ok(m && Number(m[1]) > 0, `the exclusion was exercised: ${r.stdout}`);
    const sft = loadRows(join(dir, "sft.jsonl")).rows;
    assert.equal(sft.length, 4000);
    const testQ = new Set(loadRows("data/tr-math/test.jsonl").rows.map((x) => x.question));
    assert.equal(sft.filter((x) => testQ.has(x.question)).length, 0);
  });

  it("--loose-format writes that share of solutions in loose layouts, graded as intended", () => {
    const base = synthesize({ lang: "tr", n: 600, seed: 9 }).rows;
    // 0 leaves the set byte-identical.
    const zero = synthesize({ lang: "tr", n: 600, seed: 9, looseFormat: 0 }).rows;
    assert.equal(zero.map(rowToJson).join("\n"), base.map(rowToJson).join("\n"));
    const { rows, stats } = synthesize({ lang: "tr", n: 600, seed: 9, looseFormat: 0.3 });
    // Same problems and answers; only the layout of some solutions changes.
    assert.deepEqual(
      rows.map((r) => [r.id, r.question, r.answer]),
      base.map((r) => [r.id, r.question, r.answer]),
    );
    let loose = 0;
    const seen = new Set<string>();
    for (let i = 0; i < rows.length; i++) {
      const s = rows[i].solution!;
      const strict = extractAnswer(s, "strict", { format: "mantik-cevap", locale: "tr-TR" });
      const flex = extractAnswer(s, "flexible", { format: "mantik-cevap", locale: "tr-TR" });
      if (s === base[i].solution) {
        assert.deepEqual(strict, { valid: true, answer: rows[i].answer });
        continue;
      }
      loose++;
      assert.equal(strict.valid, false, s);
      if (s.includes("</cevap>")) {
        seen.add(s.startsWith("Çözüm:") ? "leading-text" : "no-reasoning-tags");
        assert.deepEqual(flex, { valid: true, answer: rows[i].answer }, s);
      } else {
        seen.add("plain-answer");
        assert.match(
          s,
          new RegExp(`\\nCevap: ${formatInt(Number(rows[i].answer), "tr").replace(/\./g, "\\.")}$`),
        );
        assert.equal(flex.valid, false, s);
      }
    }
    assert.deepEqual([...seen].sort(), [...LOOSE_LAYOUTS].sort());
    assert.equal(
      Object.values(stats.byLayout).reduce((a, b) => a + b, 0),
      loose,
    );
    assert.ok(loose > 0.3 * 600 - 45 && loose < 0.3 * 600 + 45, `loose share ${loose}/600`);
    assert.throws(
      () => synthesize({ lang: "tr", n: 5, seed: 1, looseFormat: 1.5 }),
      /^SynthOptionError: looseFormat: /,
    );
  });

  it("--slips writes that share of solutions with the last result off by 1-3, the row's answer kept true", () => {
    const opts = { lang: "tr" as const, n: 600, seed: 9, ops: [1, 2], levels: [1], maxNumber: 30 };
    const base = synthesize(opts).rows;
    const zero = synthesize({ ...opts, slips: 0 }).rows;
    assert.equal(zero.map(rowToJson).join("\n"), base.map(rowToJson).join("\n"));
    const { rows, stats } = synthesize({ ...opts, slips: 0.4 });
    assert.deepEqual(
      rows.map((r) => [r.id, r.question, r.answer]),
      base.map((r) => [r.id, r.question, r.answer]),
    );
    let slipped = 0;
    const offsets = new Set<number>();
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      const got = extractAnswer(r.solution!, "strict", { format: "mantik-cevap", locale: "tr-TR" });
      assert.equal(got.valid, true, r.solution);
      const d = (r.meta as { slip?: number }).slip;
      if (d === undefined) {
        assert.equal(r.solution, base[i].solution);
        continue;
      }
      slipped++;
      offsets.add(d);
      assert.ok(SLIP_OFFSETS.includes(d), `offset ${d}`);
      const wrong = Number(r.answer) + d;
      assert.equal(got.answer, String(wrong));
      assert.ok(wrong >= 0 && wrong <= 30, `slipped answer ${wrong} in range`);
      // Only the last step's result changed: every line but the last result is the clean solution's.
      const a = r.solution!.split("\n");
      const b = base[i].solution!.split("\n");
      const last = b.indexOf("</mantık>") - 1;
      for (let j = 0; j < a.length; j++) {
        if (j === last) assert.equal(a[j], b[j].replace(/=[^=]+$/, `=${wrong}`));
        else if (b[j] === r.answer) assert.equal(a[j], String(wrong));
        else assert.equal(a[j], b[j]);
      }
    }
    assert.equal(stats.slipped, slipped);
    assert.ok(slipped > 0.4 * 600 - 45 && slipped < 0.4 * 600 + 45, `slipped share ${slipped}/600`);
    assert.deepEqual([...offsets].sort(), [...SLIP_OFFSETS].sort());
    assert.throws(
      () => synthesize({ ...opts, slips: -0.1 }),
      (e: Error) => e instanceof SynthOptionError && e.message === "slips: must be in [0, 1], got -0.1",
    );
  });

  it("drills are correct arithmetic steps, deterministic, and mixed into a file by the CLI", () => {
    const d = synthesizeDrills({ lang: "tr", n: 0, seed: 3, levels: [1, 2], ops: [1, 2] }, 50);
    assert.equal(d.length, 50);
    assert.deepEqual(synthesizeDrills({ lang: "tr", n: 0, seed: 3, levels: [1, 2], ops: [1, 2] }, 50), d);
    assert.equal(new Set(d.map((r) => r.id)).size, 50);
    for (const r of d) {
      const lines = r.text.split("\n");
      assert.equal(lines.length, 8);
      for (const line of lines) {
        const [expr, res] = line.split("=");
        assert.equal(evalLine(expr, "tr-TR"), Number(parseLocaleNumber(res, "tr-TR")), line);
      }
    }
    const dir = mkdtempSync(join(tmpdir(), "ttrl-drills-"));
    const args = ["synth", "--n", "40", "--seed", "4", "--levels", "1", "--drills", "10", "--out"];
    const r = cli([...args, join(dir, "a.jsonl")]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(cli([...args, join(dir, "b.jsonl")]).status, 0);
    const text = readFileSync(join(dir, "a.jsonl"), "utf8");
    assert.equal(text, readFileSync(join(dir, "b.jsonl"), "utf8"));
    const lines = text
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.equal(lines.length, 50);
    assert.equal(lines.filter((x) => typeof x.text === "string").length, 10);
    assert.equal(lines.filter((x) => typeof x.question === "string").length, 40);
    assert.ok(
      lines.slice(0, 40).some((x) => x.text),
      "drills are interleaved, not appended",
    );
    const bad = cli([
      "synth",
      "--n",
      "40",
      "--seed",
      "4",
      "--drills",
      "10",
      "--split",
      "30:10",
      "--out",
      dir,
    ]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--drills .* without --split/);
  });

  it("--max-number keeps every number of a problem, its steps and its drills at or below the limit", () => {
    const nums = (t: string) => (t.match(/\d+(?:\.\d{3})*/g) ?? []).map((x) => Number(x.replace(/\./g, "")));
    const { rows, stats } = synthesize({
      lang: "tr",
      n: 500,
      seed: 2,
      levels: [1],
      ops: [1, 2],
      maxNumber: 30,
    });
    assert.equal(rows.length, 500);
    assert.ok((stats.rejected["number too large"] ?? 0) > 0);
    const all = rows.flatMap((r) => [...nums(r.question), ...nums(r.solution!)]);
    assert.ok(Math.max(...all) <= 30 && Math.max(...all) === 30, `max ${Math.max(...all)}`);
    const drills = synthesizeDrills({ lang: "tr", n: 0, seed: 2, levels: [1], maxNumber: 30 }, 40);
    assert.ok(Math.max(...drills.flatMap((d) => nums(d.text))) <= 30);
    // Without the limit the same level has larger numbers.
    const free = synthesize({ lang: "tr", n: 500, seed: 2, levels: [1], ops: [1, 2] }).rows;
    assert.ok(Math.max(...free.flatMap((r) => nums(r.solution!))) > 30);
  });

  it("rejects bad options with usage errors", () => {
    const r = cli(["synth", "--n", "5", "--seed", "1", "--ops", "4", "--out", tmpdir()]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--ops: values must be 1, 2 or 3, got 4/);
    // the library names its option, not a flag (the CLI maps it to the flag above)
    assert.throws(
      () => synthesize({ lang: "tr", n: 5, seed: 1, looseFormat: 2 }),
      (e: Error) => e instanceof SynthOptionError && e.message === "looseFormat: must be in [0, 1], got 2",
    );
    const tp = cli(["synth", "--n", "5", "--seed", "1", "--templates", "nope", "--out", tmpdir()]);
    assert.equal(tp.status, 2);
    assert.match(tp.stderr, /--templates: unknown template "nope"/);
    const r2 = cli(["synth", "--n", "5", "--seed", "x", "--out", tmpdir()]);
    assert.equal(r2.status, 2);
  });
});
