import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { GRADE_ROW_KEYS, runGrade } from "../../src/cli/commands/grade.ts";
import { parseExtractor } from "../../src/cli/options.ts";
import { InputError } from "../../src/util/errors.ts";

const dir = mkdtempSync(join(tmpdir(), "ttrl-grade-"));

function ttrl(args: string[], nodeArgs: string[] = []) {
  const r = spawnSync(process.execPath, [...nodeArgs, "bin/ttrl.mjs", "grade", ...args], {
    encoding: "utf8",
    env: { ...process.env, TTRL_QUIET: "1" },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const c = (a: string) => `<mantık>\nhesap\n</mantık>\n<cevap>\n${a}\n</cevap>`;

describe("ttrl grade", () => {
  it("grades the shipped demo: metrics.json shape and details lines", () => {
    const out = join(dir, "m.json");
    const details = join(dir, "d.jsonl");
    const r = ttrl([
      "--input",
      "data/samples/grade-demo.jsonl",
      "--k",
      "1,2,4",
      "--out",
      out,
      "--details",
      details,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /graded 20 questions, 80 completions/);
    const m = JSON.parse(readFileSync(out, "utf8"));
    assert.equal(m.n_questions, 20);
    assert.equal(m.n_completions, 80);
    for (const mode of ["strict", "flexible"]) {
      const s = m[mode];
      for (const key of ["valid_ratio", "accuracy"]) assert.equal(typeof s[key], "number");
      for (const key of ["pass@k", "pass@k_first", "cons@k", "cons@k_first"])
        assert.deepEqual(Object.keys(s[key]), ["1", "2", "4"]);
      assert.equal(s.ci95.accuracy.length, 2);
    }
    assert.ok(m.flexible.valid_ratio > m.strict.valid_ratio);
    const lines = readFileSync(details, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.equal(lines.length, 20);
    assert.deepEqual(Object.keys(lines[0]), ["id", "label", "completions"]);
    assert.deepEqual(Object.keys(lines[0].completions[0]), ["strict", "flexible"]);
    assert.deepEqual(Object.keys(lines[0].completions[0].strict), ["valid", "answer", "correct"]);
    const unlabelled = lines.find((l) => l.label === null);
    assert.ok(unlabelled, "demo has an unlabelled row");
    assert.ok(
      unlabelled.completions.every((g: { strict: { correct: unknown } }) => g.strict.correct === null),
    );
  });

  it("writes plain decimal answers in details and prints metrics on stdout without --out", () => {
    const input = join(dir, "dec.jsonl");
    writeFileSync(
      input,
      `${JSON.stringify({ id: "q", label: "-12.5", completions: [c("-12,50"), c("1.250")] })}\n`,
    );
    const details = join(dir, "dec-details.jsonl");
    const r = ttrl(["--input", input, "--details", details]);
    assert.equal(r.code, 0, r.stderr);
    const m = JSON.parse(r.stdout);
    assert.deepEqual(m.ks, [1, 2]);
    assert.equal(m.strict.accuracy, 0.5);
    const d = JSON.parse(readFileSync(details, "utf8"));
    assert.deepEqual(
      d.completions.map((g: { strict: { answer: string } }) => g.strict.answer),
      ["-12.5", "1250"],
    );
  });

  it("names the line of a malformed row, leaves no partial outputs, and --skip-invalid counts skips", () => {
    const input = join(dir, "bad.jsonl");
    writeFileSync(
      input,
      [
        JSON.stringify({ id: "a", label: 1, completions: [c("1"), c("2")] }),
        "",
        "{not json",
        JSON.stringify({ id: "b", completions: "nope" }),
        JSON.stringify({ id: "c", label: 2, completions: [c("2"), c("2")] }),
      ].join("\n"),
    );
    const out = join(dir, "bad-m.json");
    const details = join(dir, "bad-d.jsonl");
    const r = ttrl(["--input", input, "--out", out, "--details", details]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /bad\.jsonl:3: malformed JSON/);
    assert.ok(!existsSync(out) && !existsSync(details));
    const s = ttrl(["--input", input, "--out", out, "--skip-invalid"]);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stderr, /skipped 2 malformed line/);
    const m = JSON.parse(readFileSync(out, "utf8"));
    assert.equal(m.skipped_lines, 2);
    assert.equal(m.n_questions, 2);
    assert.equal(m.strict.accuracy, 0.75);
  });

  it("row-level errors name the line; usage errors exit 2", () => {
    const input = join(dir, "k.jsonl");
    writeFileSync(
      input,
      `${JSON.stringify({ id: "a", completions: [c("1"), c("2")] })}\n${JSON.stringify({ id: "b", label: "iki", completions: [c("2")] })}\n`,
    );
    const r = ttrl(["--input", input, "--k", "1,4"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /k\.jsonl:1: .*fewer than k=4/);
    const r2 = ttrl(["--input", input, "--k", "1"]);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /k\.jsonl:2: label is not/);
    assert.equal(ttrl(["--input", input, "--locale", "de-DE"]).code, 2);
    assert.equal(ttrl(["--input", input, "--extract", "regex:("]).code, 2);
    assert.equal(ttrl(["--input", input, "--k", "0"]).code, 2);
    assert.equal(ttrl(["--input", input, "--format", "no-such-format"]).code, 2);
    assert.equal(ttrl([]).code, 2);
    assert.equal(ttrl(["--input", join(dir, "missing.jsonl")]).code, 1);
    const h = ttrl(["--help"]);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /--skip-invalid/);
  });

  it("streams: a 40 MB input grades under a 48 MB heap limit", () => {
    const input = join(dir, "big.jsonl");
    const fd = openSync(input, "w");
    const reasoning = "Bir kutuda 12 kalem var. 5 kutu 5 × 12 = 60 kalem eder. ".repeat(4);
    let bytes = 0;
    let rows = 0;
    while (bytes < 40e6) {
      const line = `${JSON.stringify({
        id: `q${rows}`,
        label: rows % 90,
        completions: [0, 1, 2, 3].map(
          (j) => `<mantık>\n${reasoning}\n</mantık>\n<cevap>\n${(rows % 90) + (j === 3 ? 1 : 0)}\n</cevap>`,
        ),
      })}\n`;
      writeSync(fd, line);
      bytes += line.length;
      rows++;
    }
    closeSync(fd);
    const out = join(dir, "big-m.json");
    const r = ttrl(["--input", input, "--out", out, "--k", "1,4"], ["--max-old-space-size=48"]);
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    const m = JSON.parse(readFileSync(out, "utf8"));
    assert.equal(m.n_questions, rows);
    assert.equal(m.strict.accuracy, 0.75);
    assert.equal(m.strict["cons@k"]["4"], 1);
  });

  it("property: a row with an unknown key (a typo like lable) is an error naming file, line and key", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .string({ minLength: 1, maxLength: 12 })
          .filter((k) => !(GRADE_ROW_KEYS as readonly string[]).includes(k)),
        fc.nat({ max: 4 }),
        async (key, at) => {
          const rows = Array.from({ length: 5 }, (_, i) => ({
            id: `q${i}`,
            label: i,
            completions: [c(String(i))],
          }));
          const bad: Record<string, unknown> = { ...rows[at] };
          bad[key] = 1;
          rows[at] = bad as (typeof rows)[number];
          const input = join(dir, "keys.jsonl");
          writeFileSync(input, rows.map((r) => JSON.stringify(r)).join("\n"));
          await assert.rejects(
            runGrade({ input, format: "mantik-cevap", extract: "tags", locale: "tr-TR", seed: 0 }),
            (e: unknown) => {
              assert.ok(e instanceof InputError, String(e));
              assert.equal(e.file, input);
              assert.equal(e.line, at + 1);
              assert.ok(e.message.includes(`unknown key ${JSON.stringify(key)}`), e.message);
              return true;
            },
          );
        },
      ),
      { numRuns: 50 },
    );
  });

  it("bad paths and bytes get one-line errors naming the file or flag, never a stack trace", () => {
    const input = join(dir, "ok.jsonl");
    writeFileSync(input, `${JSON.stringify({ id: "a", label: 1, completions: [c("1")] })}\n`);
    const typo = join(dir, "typo.jsonl");
    writeFileSync(
      typo,
      `${JSON.stringify({ id: "a", label: 1, completions: [c("1")] })}\n${JSON.stringify({ id: "b", lable: 2, completions: [c("2")] })}\n`,
    );
    const utf = join(dir, "utf.jsonl");
    writeFileSync(
      utf,
      Buffer.concat([
        Buffer.from(
          `${JSON.stringify({ id: "a", label: 1, completions: [c("1")] })}\n{"id":"b","completions":["`,
        ),
        Buffer.from([0xc3, 0x28]),
        Buffer.from('"]}\n'),
      ]),
    );
    const folder = join(dir, "a-folder");
    mkdirSync(folder, { recursive: true });
    const cases: { args: string[]; code: number; re: RegExp }[] = [
      {
        args: ["--input", typo],
        code: 1,
        re: /typo\.jsonl:2: unknown key "lable" \(did you mean "label"\?\)/,
      },
      { args: ["--input", utf], code: 1, re: /utf\.jsonl:2: not valid UTF-8/ },
      { args: ["--input", folder], code: 1, re: /a-folder: is a folder, expected a file/ },
      { args: ["--input", input, "--out", folder], code: 2, re: /--out .*a-folder: is a folder/ },
      { args: ["--input", input, "--details", folder], code: 2, re: /--details .*a-folder: is a folder/ },
    ];
    for (const t of cases) {
      const r = ttrl(t.args);
      assert.equal(r.code, t.code, `${t.args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, t.re);
      assert.doesNotMatch(r.stderr, /^\s+at /m, `stack trace for ${t.args.join(" ")}`);
    }
    // The typo is not silently skipped: with --skip-invalid it is counted.
    const s = ttrl(["--input", typo, "--skip-invalid"]);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stderr, /skipped 1 malformed line/);
  });

  it("one extractor parser for grade --extract and data import --answer-extract", () => {
    const grade = parseExtractor("--extract", ["tags", "gsm8k", "last-number"]);
    const data = parseExtractor("--answer-extract", ["gsm8k", "last-number"]);
    assert.equal(grade("tags"), "tags");
    assert.equal(data("gsm8k"), "gsm8k");
    assert.equal(data("regex:#### (\\d+)"), "regex:#### (\\d+)");
    assert.throws(
      () => data("tags"),
      /--answer-extract must be gsm8k, last-number or regex:<pattern>, got "tags"/,
    );
    for (const [p, flag] of [
      [grade, "--extract"],
      [data, "--answer-extract"],
    ] as const) {
      assert.throws(() => p("regex:"), new RegExp(`${flag} regex: needs a pattern`));
      assert.throws(() => p("regex:("), new RegExp(`${flag} regex:\\(: invalid regex`));
    }
  });
});
