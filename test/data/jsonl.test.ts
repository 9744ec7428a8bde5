// The one JSONL reader every command shares (src/io/jsonl.ts): strict UTF-8 and folders rejected with the
// file and line named, round trips of valid text across stream chunk boundaries.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { systemErrorMessage } from "../../src/cli/main.ts";
import { writeFileAtomic, writeFileAtomicSync } from "../../src/io/atomic.ts";
import { JsonlWriter, readJsonl, readJsonlSync, readUtf8File, writeJsonl } from "../../src/io/jsonl.ts";
import { InputError, TtrlError } from "../../src/util/errors.ts";

const dir = mkdtempSync(join(tmpdir(), "ttrl-jsonl-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const file = (content: string | Buffer) => {
  const f = join(dir, `${n++}.jsonl`);
  writeFileSync(f, content);
  return f;
};

async function readAll(f: string, opts: Parameters<typeof readJsonl>[1] = {}) {
  const out: { line: number; value: unknown }[] = [];
  for await (const r of readJsonl(f, opts)) out.push(r);
  return out;
}

const isInputErrorAt = (f: string, line: number | undefined, re: RegExp) => (e: unknown) => {
  assert.ok(e instanceof InputError, `expected an InputError, got ${String(e)}`);
  assert.equal(e.file, f);
  assert.equal(e.line, line);
  assert.match(e.message, re);
  return true;
};

// Byte sequences that are never valid UTF-8 wherever they stand.
const INVALID = [
  [0xff],
  [0xc3],
  [0xe2, 0x82],
  [0xed, 0xa0, 0x80],
  [0xc0, 0xaf],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
];

describe("readJsonl / readJsonlSync / readUtf8File", () => {
  it("property: valid rows round-trip with their line numbers, across chunk boundaries and CRLF", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc
            .record({
              id: fc.string({ unit: "grapheme" }),
              q: fc.string({ unit: "grapheme", maxLength: 40 }),
            })
            .map((r) => ({ ...r })),
          {
            minLength: 1,
            maxLength: 30,
          },
        ),
        fc.array(fc.boolean(), { minLength: 30, maxLength: 30 }),
        fc.boolean(),
        fc.nat({ max: 70_000 }),
        async (rows, blanks, crlf, pad) => {
          // A long first row pushes later lines (and multi-byte characters) across the 64 KiB read chunks.
          const first = { id: "pad", q: "ğüşıöç€😀".repeat(Math.ceil(pad / 20)) };
          const all = [first, ...rows];
          const nl = crlf ? "\r\n" : "\n";
          let text = "\uFEFF";
          const expect: { line: number; value: unknown }[] = [];
          let line = 1;
          all.forEach((r, i) => {
            if (blanks[i % blanks.length]) {
              text += `  ${nl}`;
              line++;
            }
            text += JSON.stringify(r) + nl;
            expect.push({ line, value: r });
            line++;
          });
          const f = file(text);
          assert.deepEqual(await readAll(f), expect);
          assert.deepEqual(readJsonlSync(f), expect);
        },
      ),
      { numRuns: 40 },
    );
  });

  it("property: an invalid UTF-8 sequence anywhere is rejected naming the file and its line", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.string({ unit: "grapheme", maxLength: 30 }), { minLength: 1, maxLength: 20 }),
        fc.nat(),
        fc.nat(),
        fc.constantFrom(...INVALID),
        fc.nat({ max: 70_000 }),
        async (qs, at, pos, bad, pad) => {
          const lines = [
            JSON.stringify({ id: "pad", q: "ş".repeat(pad) }),
            ...qs.map((q, i) => JSON.stringify({ id: `q${i}`, q })),
          ];
          const li = at % lines.length;
          const bytes = Buffer.from(lines[li], "utf8");
          // Insert between characters (never inside a multi-byte one) of the JSON text.
          const cut = Buffer.from(
            Array.from(lines[li])
              .slice(0, pos % (Array.from(lines[li]).length + 1))
              .join(""),
          );
          const broken = Buffer.concat([cut, Buffer.from(bad), bytes.subarray(cut.length)]);
          const parts = lines.map((l, i) => (i === li ? broken : Buffer.from(l, "utf8")));
          const f = file(Buffer.concat(parts.flatMap((p) => [p, Buffer.from("\n")])));
          await assert.rejects(readAll(f), isInputErrorAt(f, li + 1, /not valid UTF-8/));
          assert.throws(() => readJsonlSync(f), isInputErrorAt(f, li + 1, /not valid UTF-8/));
          assert.throws(() => readUtf8File(f), isInputErrorAt(f, li + 1, /not valid UTF-8/));
        },
      ),
      { numRuns: 60 },
    );
  });

  it("skipInvalid skips (and reports) an invalid UTF-8 line like a malformed one", async () => {
    const f = file(
      Buffer.concat([Buffer.from('{"a":1}\n{"a":"'), Buffer.from([0xff]), Buffer.from('"}\n{"a":3}\n')]),
    );
    const skipped: number[] = [];
    const rows = await readAll(f, { skipInvalid: true, onSkip: (l) => skipped.push(l) });
    assert.deepEqual(
      rows.map((r) => r.line),
      [1, 3],
    );
    assert.deepEqual(skipped, [2]);
  });

  it("a folder or a missing path is an InputError naming it (no EISDIR / ENOENT)", async () => {
    const folder = join(dir, "a-folder");
    mkdirSync(folder);
    await assert.rejects(readAll(folder), isInputErrorAt(folder, undefined, /is a folder, expected a file/));
    assert.throws(() => readJsonlSync(folder), isInputErrorAt(folder, undefined, /is a folder/));
    const missing = join(dir, "nope.jsonl");
    await assert.rejects(readAll(missing), isInputErrorAt(missing, undefined, /file not found/));
  });

  it("atomic writers: a folder at the output path, or a file as its parent, is a TtrlError naming the path", async () => {
    const folder = join(dir, "out-folder");
    mkdirSync(join(folder, "keep"), { recursive: true });
    const aFile = join(dir, "plain.txt");
    writeFileSync(aFile, "x");
    const under = join(aFile, "sub", "out.jsonl");
    const named = (path: string, re: RegExp) => (e: unknown) => {
      assert.ok(e instanceof TtrlError, `expected a TtrlError, got ${String(e)}`);
      assert.ok(e.message.startsWith(`${path}: `), e.message);
      assert.match(e.message, re);
      return true;
    };
    for (const p of [folder, join(dir, "empty-folder")]) {
      mkdirSync(p, { recursive: true });
      await assert.rejects(writeJsonl(p, [{ a: 1 }]), named(p, /is a folder/));
      await assert.rejects(writeFileAtomic(p, "x"), named(p, /is a folder/));
      assert.throws(() => writeFileAtomicSync(p, "x"), named(p, /is a folder/));
      const w = new JsonlWriter(p);
      await w.write({ a: 1 });
      await assert.rejects(w.commit(), named(p, /is a folder/));
    }
    await assert.rejects(writeJsonl(under, [{ a: 1 }]), named(under, /a part of the path is a file/));
    assert.throws(() => new JsonlWriter(under), named(under, /a part of the path is a file/));
    // Nothing was left behind: no temp files beside the targets, the folder's contents untouched.
    assert.deepEqual(readdirSync(folder), ["keep"]);
    assert.equal(readdirSync(dir).filter((f) => f.endsWith(".tmp")).length, 0);
    assert.equal(readFileSync(aFile, "utf8"), "x");
  });

  it("a system error that escapes a command prints its message and path, not a stack", () => {
    const e = Object.assign(new Error("EISDIR: illegal operation on a directory, read"), {
      code: "EISDIR",
      syscall: "read",
      path: "/data/x",
    });
    assert.equal(systemErrorMessage(e), "/data/x: EISDIR: illegal operation on a directory, read");
    assert.equal(systemErrorMessage(new TypeError("x is not a function")), null);
  });
});
