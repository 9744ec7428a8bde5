import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { importFile } from "../../src/data/import.ts";
import { filterRows, parseSplitSpec, sampleRows, splitRows } from "../../src/data/ops.ts";
import { parseCsv } from "../../src/data/readers.ts";
import { type DataRow, loadRows, rowToJson, writeRows } from "../../src/data/schema.ts";
import { InputError } from "../../src/util/errors.ts";

const dir = mkdtempSync(join(tmpdir(), "ttrl-data-import-"));
const FIX = "test/data/fixtures";
let k = 0;
function file(name: string, content: string | Buffer): string {
  const f = join(dir, `${k++}-${name}`);
  writeFileSync(f, content);
  return f;
}
const cli = (args: string[]) =>
  spawnSync(process.execPath, ["--import", "tsx", "test/data/cli-runner.ts", "data", ...args], {
    encoding: "utf8",
    env: { ...process.env, TTRL_QUIET: "1" },
  });

async function rejectsAt(p: Promise<unknown>, re: RegExp) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof InputError, String(e));
    assert.match((e as Error).message, re);
    return true;
  });
}

describe("data readers and import", () => {
  it("imports JSONL with plain numeric answers", async () => {
    const f = file("a.jsonl", '{"question":"1+1?","answer":"2"}\n\n{"question":"x","answer":1250}\n');
    const { rows, summary } = await importFile(f);
    assert.deepEqual(
      rows.map((r) => [r.question, r.answer]),
      [
        ["1+1?", "2"],
        ["x", "1250"],
      ],
    );
    assert.match(rows[0].id, /-1$/);
    assert.equal(summary.withAnswer, 2);
  });

  it("bad input: missing field names the line, duplicate ids, non-UTF-8, empty rows, non-numbers", async () => {
    await rejectsAt(
      importFile(file("m.jsonl", '{"question":"a"}\n{"q":"b"}\n')),
      /:2: missing field "question"/,
    );
    await rejectsAt(
      importFile(
        file("d.jsonl", '{"id":"x","question":"a"}\n{"id":"y","question":"b"}\n{"id":"x","question":"c"}\n'),
        {
          idField: "id",
        },
      ),
      /:3: duplicate id "x" \(first on line 1\)/,
    );
    const bad = Buffer.concat([
      Buffer.from('{"question":"a"}\n{"question":"'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}\n'),
    ]);
    await rejectsAt(importFile(file("u.jsonl", bad)), /:2: not valid UTF-8/);
    await rejectsAt(importFile(file("e.jsonl", '{"question":"a"}\n{}\n')), /:2: empty row/);
    await rejectsAt(
      importFile(file("e2.jsonl", '{"question":"   "}\n')),
      /:1: field "question" \(the question\) is empty/,
    );
    await rejectsAt(
      importFile(file("n.jsonl", '{"question":"a","answer":"seven"}\n')),
      /:1: field "answer" is not a number/,
    );
    await rejectsAt(importFile(file("j.jsonl", '{"question":"a"}\n{oops\n')), /:2: malformed JSON/);
    await rejectsAt(
      importFile(file("ma.jsonl", '{"question":"a"}\n'), { answerField: "label" }),
      /:1: missing field "label"/,
    );
    await rejectsAt(importFile(join(dir, "nope.jsonl")), /nope\.jsonl: file not found/);
    // --skip-invalid counts instead of failing.
    const { rows, summary } = await importFile(
      file("s.jsonl", '{"question":"a"}\n{"q":"b"}\n{"question":""}\n'),
      {
        skipInvalid: true,
      },
    );
    assert.equal(rows.length, 1);
    assert.deepEqual(summary.skipped, { "missing question": 1, "empty question": 1 });
  });

  it("reads RFC 4180 CSV: quotes, doubled quotes, newlines in fields, CRLF", async () => {
    const f = file(
      "a.csv",
      'id,question,answer\r\nq1,"Ali, ""bir"" kalem\naldı",5\r\nq2,plain,"1,250"\r\n\r\n',
    );
    const { rows } = await importFile(f, { idField: "id" });
    assert.deepEqual(rows, [
      { id: "q1", question: 'Ali, "bir" kalem\naldı', answer: "5" },
      { id: "q2", question: "plain", answer: "1250" },
    ]);
    await rejectsAt(
      importFile(file("b.csv", "question,answer\na,1\nb\n")),
      /:3: expected 2 fields \(header\), found 1/,
    );
    await rejectsAt(importFile(file("c.csv", 'question,answer\n"open,1\n')), /:2: unterminated quoted field/);
    await rejectsAt(importFile(file("d.csv", "question,answer\n,\n")), /:2: empty row/);
    await rejectsAt(importFile(file("e.csv", "prompt,answer\nx,1\n")), /no column "question"/);
  });

  it("CSV round-trips arbitrary fields (property)", () => {
    const field = fc.string({ unit: fc.constantFrom("a", "b", ",", '"', "\n", "\r\n", " ", "ş", "1") });
    fc.assert(
      fc.property(
        fc.array(fc.array(field, { minLength: 2, maxLength: 2 }), { minLength: 1, maxLength: 6 }),
        (table) => {
          const text = table
            .map((row) => row.map((v) => `"${v.replaceAll('"', '""')}"`).join(","))
            .join("\r\n");
          const parsed = parseCsv(text).map((r) => r.fields);
          assert.deepEqual(parsed, table);
        },
      ),
    );
  });

  it("reads Parquet (orca-math preset, int64 answers) and rejects another schema", async () => {
    const orca = await importFile(join(FIX, "orca-mini.parquet"), { preset: "orca-math" });
    assert.equal(orca.rows.length, 3);
    assert.equal(orca.rows[0].question, "A baker made 120 cookies and sold 45. How many are left?");
    assert.match(orca.rows[0].solution!, /120 - 45 = 75/);
    assert.equal(orca.rows[0].answer, undefined); // left for `ttrl data extract`
    assert.equal(orca.rows[0].source, "orca-math");
    const withLast = await importFile(join(FIX, "orca-mini.parquet"), {
      preset: "orca-math",
      answerExtract: "last-number",
    });
    assert.deepEqual(
      withLast.rows.map((r) => r.answer),
      ["75", "36", "625"],
    );
    const ints = await importFile(join(FIX, "ints.parquet"), { idField: "uid" });
    assert.deepEqual(
      ints.rows.map((r) => [r.id, r.answer]),
      [
        ["a1", "2"],
        ["a2", "4"],
        ["a3", "100"],
      ],
    );
    await rejectsAt(
      importFile(join(FIX, "other-schema.parquet")),
      /Parquet schema has no column "question" \(columns: prompt, label\)/,
    );
    await rejectsAt(
      importFile(file("x.parquet", "this is not parquet at all")),
      /not a readable Parquet file/,
    );
  });

  it("validates schema rows on load", () => {
    assert.throws(
      () => loadRows(file("r.jsonl", '{"id":"a","question":"q","answer":"1"}\n{"id":"a","question":"q2"}\n')),
      /:2: duplicate id "a" \(first on line 1\)/,
    );
    assert.throws(
      () => loadRows(file("r2.jsonl", '{"id":"a","question":"q","answer":"x"}\n')),
      /:1: field "answer" is not a number/,
    );
    assert.throws(
      () => loadRows(file("r3.jsonl", '{"id":"a","question":"q","foo":1}\n')),
      /:1: unknown field "foo"/,
    );
    assert.throws(() => loadRows(file("r4.jsonl", '{"id":"a"}\n')), /:1: missing field "question"/);
  });
});

describe("data sample, filter, split", () => {
  const rows: DataRow[] = Array.from({ length: 200 }, (_, i) => ({
    id: `r${i}`,
    question: `q${i % 150}`,
    ...(i % 9 === 0 ? {} : { answer: i % 4 === 0 ? `${i}.5` : i % 13 === 0 ? `-${i}` : String(i) }),
  }));

  it("sample and split are deterministic per seed; split is a partition", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 }), fc.integer({ min: 1, max: 200 }), (seed, n) => {
        const a = sampleRows(rows, n, seed);
        assert.deepEqual(a, sampleRows(rows, n, seed));
        assert.equal(new Set(a.map((r) => r.id)).size, n);
        const s = splitRows(rows, parseSplitSpec(`${Math.floor(n / 2)}:rest`), seed);
        const ids = s.parts.flatMap((p) => p.rows.map((r) => r.id));
        assert.equal(ids.length, 200);
        assert.equal(new Set(ids).size, 200);
        assert.deepEqual(splitRows(rows, parseSplitSpec(`${Math.floor(n / 2)}:rest`), seed), s);
      }),
      { numRuns: 50 },
    );
    assert.notDeepEqual(sampleRows(rows, 50, 1), sampleRows(rows, 50, 2));
    assert.throws(() => splitRows(rows, parseSplitSpec("150:60"), 1), /needs 210 rows, only 200 available/);
    assert.throws(() => parseSplitSpec("10"), /TRAIN:TEST/);
    const three = splitRows(rows, parseSplitSpec("100:50:rest"), 3);
    assert.deepEqual(
      three.parts.map((p) => [p.name, p.rows.length]),
      [
        ["train", 100],
        ["val", 50],
        ["test", 50],
      ],
    );
  });

  it("filter keeps integers and counts why rows were dropped", () => {
    const r = filterRows(rows, { integersOnly: true, dedupe: true });
    assert.ok(r.rows.every((x) => /^-?\d+$/.test(x.answer!)));
    const noAnswer = rows.filter((x) => x.answer === undefined).length;
    const frac = rows.filter((x) => x.answer?.endsWith(".5")).length;
    assert.equal(r.dropped["no answer"], noAnswer);
    assert.equal(r.dropped["answer not an integer"], frac);
    assert.equal(r.rows.length + noAnswer + frac + (r.dropped["duplicate question"] ?? 0), 200);
    const d = filterRows(rows, { digitsOnly: true });
    assert.ok(d.rows.every((x) => /^\d+$/.test(x.answer!)));
    assert.ok(d.dropped["answer negative"] > 0);
  });

  it("CLI sample and split outputs are byte-identical for a seed", async () => {
    const src = join(dir, "rows.jsonl");
    await writeRows(src, rows);
    const outs = [0, 1].map((i) => join(dir, `cli-${i}`));
    for (const o of outs) {
      assert.equal(cli(["sample", src, "--n", "120", "--seed", "9", "--out", join(o, "s.jsonl")]).status, 0);
      const r = cli(["split", join(o, "s.jsonl"), "--split", "100:20", "--seed", "9", "--out", o]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /train: 100\ntest: 20/);
    }
    for (const f of ["s.jsonl", "train.jsonl", "test.jsonl"])
      assert.equal(readFileSync(join(outs[0], f), "utf8"), readFileSync(join(outs[1], f), "utf8"));
    assert.equal(
      rowToJson(loadRows(join(outs[0], "s.jsonl")).rows[0]),
      rowToJson(sampleRows(rows, 120, 9)[0]),
    );
  });
});

describe("GSM8K: import (preset gsm8k) + integer filter + split", () => {
  const gsm = resolve(process.cwd(), "../shared/datasets/gsm8k");
  const present = existsSync(join(gsm, "train.jsonl"));
  if (!present) console.log(`# SKIPPED GSM8K test: ${gsm} not found`);
  it("runs on ../shared/datasets/gsm8k", { skip: present ? false : `${gsm} not found` }, async () => {
    const out = join(dir, "gsm");
    const r1 = cli([
      "import",
      join(gsm, "train.jsonl"),
      "--preset",
      "gsm8k",
      "--out",
      join(out, "all.jsonl"),
    ]);
    assert.equal(r1.status, 0, r1.stderr);
    assert.match(r1.stdout, /records in: 7473\nrows out: 7473 \(with answer: 7473\)/);
    const all = loadRows(join(out, "all.jsonl")).rows;
    assert.equal(all[0].answer, "72"); // Natalia's clips
    assert.match(all[0].solution!, /#### 72$/);
    assert.equal(all[0].source, "gsm8k");
    // en-US thousands separators are read as such ("#### 1,000" style answers).
    const withComma = all.filter((r) => /#### -?\d{1,3}(,\d{3})+$/.test(r.solution!));
    assert.ok(withComma.length > 0);
    for (const r of withComma) assert.equal(r.answer, r.solution!.split("#### ")[1].replaceAll(",", ""));
    const r2 = cli(["filter", join(out, "all.jsonl"), "--integers-only", "--out", join(out, "int.jsonl")]);
    assert.equal(r2.status, 0, r2.stderr);
    const ints = loadRows(join(out, "int.jsonl")).rows;
    assert.ok(ints.length > 7000 && ints.length <= 7473);
    assert.ok(ints.every((r) => /^-?\d+$/.test(r.answer!)));
    const r3 = cli(["split", join(out, "int.jsonl"), "--split", "2000:598", "--seed", "42", "--out", out]);
    assert.equal(r3.status, 0, r3.stderr);
    const train = loadRows(join(out, "train.jsonl")).rows;
    const test = loadRows(join(out, "test.jsonl")).rows;
    assert.equal(train.length, 2000);
    assert.equal(test.length, 598);
    const ids = new Set(train.map((r) => r.id));
    assert.ok(test.every((r) => !ids.has(r.id)));
  });
});
