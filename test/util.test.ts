import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { readJsonl, writeJsonl } from "../src/io/jsonl.ts";
import { Rng } from "../src/util/rng.ts";

describe("Rng", () => {
  it("is deterministic per seed and differs between seeds", () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const xa = Array.from({ length: 5 }, () => a.nextU32());
    const xb = Array.from({ length: 5 }, () => b.nextU32());
    const xc = Array.from({ length: 5 }, () => c.nextU32());
    assert.deepEqual(xa, xb);
    assert.notDeepEqual(xa, xc);
  });
  it("restores from state", () => {
    const a = new Rng("seed");
    a.next();
    const st = a.getState();
    const x = [a.next(), a.next()];
    const b = Rng.fromState(st);
    assert.deepEqual([b.next(), b.next()], x);
  });
  it("int is in range and shuffle is a permutation", () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer({ min: 1, max: 1000 }), (seed, n) => {
        const r = new Rng(seed);
        const k = r.int(n);
        const arr = Array.from({ length: Math.min(n, 50) }, (_, i) => i);
        const sh = r.shuffle([...arr]);
        return (
          k >= 0 &&
          k < n &&
          Number.isInteger(k) &&
          [...sh].sort((x, y) => x - y).every((v, i) => v === arr[i])
        );
      }),
    );
  });
  it("next() is roughly uniform", () => {
    const r = new Rng(7);
    let s = 0;
    for (let i = 0; i < 20000; i++) s += r.next();
    assert.ok(Math.abs(s / 20000 - 0.5) < 0.01);
  });
});

describe("jsonl", () => {
  it("round-trips rows and reports the line of malformed JSON", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ttrl-"));
    const f = join(dir, "a.jsonl");
    await writeJsonl(f, [{ a: 1 }, { b: "ı" }]);
    const rows = [];
    for await (const r of readJsonl(f)) rows.push(r);
    assert.deepEqual(rows, [
      { line: 1, value: { a: 1 } },
      { line: 2, value: { b: "ı" } },
    ]);
    assert.deepEqual(readdirSync(dir), ["a.jsonl"]); // no temp files left
    writeFileSync(f, '{"a":1}\n\n{"b":\n');
    await assert.rejects(
      async () => {
        for await (const _ of readJsonl(f));
      },
      (e: Error) => e.message.startsWith(`${f}:3:`),
    );
    assert.equal(readFileSync(f, "utf8").length > 0, true);
  });
});

describe("cli", () => {
  const bin = join(process.cwd(), "bin/ttrl.mjs");
  it("prints help with exit 0 and fails unknown commands/options with exit 2", () => {
    const out = execFileSync(process.execPath, [bin, "--help"], { encoding: "utf8" });
    assert.match(out, /Usage: ttrl/);
    const r = spawnSync(process.execPath, [bin, "no-such-command"], { encoding: "utf8" });
    assert.equal(r.status, 2);
    const r2 = spawnSync(process.execPath, [bin, "--no-such-flag"], { encoding: "utf8" });
    assert.equal(r2.status, 2);
  });
});

describe("AtomicWriter", () => {
  it("abort() with writes pending leaves no file and does not crash", async () => {
    const { AtomicWriter } = await import("../src/io/atomic.ts");
    const dir = mkdtempSync(join(tmpdir(), "ttrl-"));
    const w = new AtomicWriter(join(dir, "out.txt"));
    const big = "x".repeat(1 << 20);
    const pending = [w.write(big), w.write(big), w.write(big)];
    await w.abort();
    await Promise.allSettled(pending);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(readdirSync(dir), []);
    const w2 = new AtomicWriter(join(dir, "out.txt"));
    await w2.write("hello");
    await w2.commit();
    assert.equal(readFileSync(join(dir, "out.txt"), "utf8"), "hello");
  });
});
