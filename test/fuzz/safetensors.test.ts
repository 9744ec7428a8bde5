/**
 * Seeded safetensors corruptions (issue 15 "must show"): a few hundred damaged files, each opened and read in
 * full, and a set of damaged model folders loaded through loadModel. Every case must end in a result or a
 * TtrlError whose message names the file — never another exception (a crash), never a hang. Seeds are fixed:
 * a failure prints its seed and path, and `fc.assert(..., { seed, path })` replays it.
 */
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import fc from "fast-check";
import { isFloatDType } from "../../src/io/dtype.ts";
import { Checkpoint, SafetensorsFile } from "../../src/io/safetensors.ts";
import { loadModel } from "../../src/model/index.ts";
import { TtrlError } from "../../src/util/errors.ts";

const root = mkdtempSync(join(tmpdir(), "ttrl-fuzz-"));
after(() => rmSync(root, { recursive: true, force: true }));

const PEER = readFileSync("test/io/peer.safetensors");
const MODEL = readFileSync("test/fixtures/hf/llama/model.safetensors");

/** Header JSON text and data section of a well-formed file. */
function split(buf: Buffer): { header: Record<string, unknown>; data: Buffer } {
  const n = Number(buf.readBigUInt64LE(0));
  return { header: JSON.parse(buf.subarray(8, 8 + n).toString("utf8")), data: buf.subarray(8 + n) };
}

function join8(headerText: string, data: Buffer): Buffer {
  const h = Buffer.from(headerText, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, data]);
}

const weird = fc.oneof(
  fc.constantFrom(
    -1,
    0,
    1,
    1.5,
    2 ** 31,
    2 ** 32,
    2 ** 53,
    2 ** 64,
    1e308,
    -0,
    "",
    "F32",
    "BF16",
    "I64",
    null,
    true,
  ),
  fc.constantFrom([], [0], [-1], [1, 2, 3], [2 ** 53, 2], [0, 2 ** 60], ["1", "2"], {}, { a: 1 }),
  fc.jsonValue({ maxDepth: 2 }),
);

/** One corruption of `buf`, as a description and the damaged bytes. */
const corruption = (buf: Buffer): fc.Arbitrary<{ kind: string; bytes: Buffer }> =>
  fc.oneof(
    fc.array(fc.tuple(fc.nat(buf.length * 8 - 1)), { minLength: 1, maxLength: 8 }).map((flips) => {
      const b = Buffer.from(buf);
      for (const [bit] of flips) b[bit >> 3] ^= 1 << (bit & 7);
      return { kind: `flip bits ${flips.join(",")}`, bytes: b };
    }),
    fc.nat(buf.length - 1).map((n) => ({ kind: `truncate to ${n}`, bytes: buf.subarray(0, n) })),
    fc.uint8Array({ minLength: 1, maxLength: 64 }).map((extra) => ({
      kind: `append ${extra.length} bytes`,
      bytes: Buffer.concat([buf, extra]),
    })),
    fc
      .oneof(
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.integer({ min: -16, max: 16 }).map((d) => BigInt(Math.max(0, Number(buf.readBigUInt64LE(0)) + d))),
      )
      .map((n) => {
        const b = Buffer.from(buf);
        b.writeBigUInt64LE(n, 0);
        return { kind: `header length ${n}`, bytes: b };
      }),
    fc
      .tuple(
        fc.nat(),
        fc.constantFrom("dtype", "shape", "data_offsets", "entry", "name", "__metadata__"),
        weird,
      )
      .map(([which, field, value]) => {
        const { header, data } = split(buf);
        const names = Object.keys(header).filter((k) => k !== "__metadata__");
        const name = names[which % names.length];
        if (field === "entry") header[name] = value;
        else if (field === "name") {
          header[String(JSON.stringify(value))] = header[name];
          delete header[name];
        } else if (field === "__metadata__") header.__metadata__ = value;
        else (header[name] as Record<string, unknown>)[field] = value;
        return {
          kind: `${name}.${field} = ${JSON.stringify(value)}`,
          bytes: join8(JSON.stringify(header), data),
        };
      }),
    fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 16 })).map(([at, junk]) => {
      const b = Buffer.from(buf);
      const n = Number(buf.readBigUInt64LE(0));
      const pos = 8 + (at % Math.max(1, n - junk.length));
      b.set(junk, pos);
      return { kind: `junk in header at ${pos}`, bytes: b };
    }),
    fc.jsonValue({ maxDepth: 3 }).map((v) => ({
      kind: `header replaced by ${JSON.stringify(v).slice(0, 60)}`,
      bytes: join8(JSON.stringify(v) ?? "null", split(buf).data),
    })),
  );

/** `p` within `ms`, else a rejected "hang". */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`hang: ${what} took more than ${ms} ms`)), ms);
    }),
  ]);
}

function assertClean(e: unknown, path: string, kind: string): void {
  assert.ok(e instanceof TtrlError, `${kind}: not a clean error: ${(e as Error)?.stack ?? e}`);
  assert.ok(e.message.startsWith(path), `${kind}: the message does not name the file: ${e.message}`);
  assert.doesNotMatch(e.message, /undefined|\[object Object\]|NaN/, `${kind}: ${e.message}`);
}

async function readAll(path: string): Promise<number> {
  const f = await SafetensorsFile.open(path);
  try {
    let bytes = 0;
    for (const [name, ti] of f.tensors) {
      bytes += (await f.readRaw(name)).byteLength;
      if (isFloatDType(String(ti.dtype))) await f.readF32(name);
    }
    return bytes;
  } finally {
    await f.close();
  }
}

test("300 seeded corruptions of a safetensors file: each is read in full or refused with a clean error naming the file", async () => {
  const outcomes = { read: 0, refused: 0 };
  let i = 0;
  await fc.assert(
    fc.asyncProperty(corruption(PEER), async ({ kind, bytes }) => {
      const path = join(root, `c${i++}.safetensors`);
      writeFileSync(path, bytes);
      try {
        await within(readAll(path), 2000, kind);
        outcomes.read++;
      } catch (e) {
        assertClean(e, path, kind);
        outcomes.refused++;
      } finally {
        rmSync(path, { force: true });
      }
    }),
    { seed: 15_2026, numRuns: 300 },
  );
  // the corruptions reach the validation (a fuzzer whose inputs all pass, or all fail one check, tests little)
  if (process.env.TTRL_FUZZ_VERBOSE) console.log(outcomes);
  assert.ok(outcomes.refused > 150, JSON.stringify(outcomes));
  assert.ok(outcomes.read > 5, JSON.stringify(outcomes));
});

test("80 seeded corruptions of a model's weights: loadModel loads it or refuses with a clean error naming the folder", async () => {
  const dir = join(root, "model");
  cpSync("test/fixtures/hf/llama", dir, { recursive: true });
  const path = join(dir, "model.safetensors");
  const outcomes = { loaded: 0, refused: 0 };
  await fc.assert(
    fc.asyncProperty(corruption(MODEL), async ({ kind, bytes }) => {
      writeFileSync(path, bytes);
      try {
        const m = await within(loadModel(dir), 5000, kind);
        for (const a of Object.values(m.params)) a.dispose();
        outcomes.loaded++;
      } catch (e) {
        assertClean(e, dir, kind);
        outcomes.refused++;
      }
    }),
    { seed: 15_2027, numRuns: 80 },
  );
  if (process.env.TTRL_FUZZ_VERBOSE) console.log(outcomes);
  assert.ok(outcomes.refused > 30, JSON.stringify(outcomes));
});

test("120 seeded corruptions of a sharded checkpoint's index: Checkpoint.open and full reads end cleanly, naming the folder or file", async () => {
  const dir = join(root, "sharded");
  cpSync("test/fixtures/merge/model_b", dir, { recursive: true });
  const indexPath = join(dir, "model.safetensors.index.json");
  const original = JSON.parse(readFileSync(indexPath, "utf8")) as { weight_map: Record<string, unknown> };
  const names = Object.keys(original.weight_map);
  const shardNames = fc.constantFrom(
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "model-00003-of-00003.safetensors",
    "../model_b/model-00001-of-00002.safetensors",
    "/etc/passwd",
    "",
    "config.json",
    ".",
  );
  const mutation = fc.oneof(
    fc.tuple(fc.nat(), fc.oneof(shardNames, weird)).map(([i, v]) => ({
      kind: `weight_map[${names[i % names.length]}] = ${JSON.stringify(v)}`,
      text: JSON.stringify({
        ...original,
        weight_map: { ...original.weight_map, [names[i % names.length]]: v },
      }),
    })),
    fc.tuple(fc.string({ maxLength: 20 }), shardNames).map(([n, v]) => ({
      kind: `extra weight_map entry ${JSON.stringify(n)}`,
      text: JSON.stringify({ ...original, weight_map: { ...original.weight_map, [n]: v } }),
    })),
    fc.constantFrom("weight_map", "metadata").chain((k) =>
      weird.map((v) => ({
        kind: `${k} = ${JSON.stringify(v)}`,
        text: JSON.stringify({ ...original, [k]: v }),
      })),
    ),
    fc.tuple(fc.nat(), fc.nat(7)).map(([at, bit]) => {
      const b = Buffer.from(JSON.stringify(original));
      b[at % b.length] ^= 1 << bit;
      return { kind: `index bit flip at ${at % b.length}`, text: b.toString("latin1") };
    }),
  );
  const outcomes = { read: 0, refused: 0 };
  await fc.assert(
    fc.asyncProperty(mutation, async ({ kind, text }) => {
      writeFileSync(indexPath, text);
      try {
        await within(
          (async () => {
            const ck = await Checkpoint.open(dir);
            try {
              for (const n of ck.names) await ck.readF32(n);
            } finally {
              await ck.close();
            }
          })(),
          2000,
          kind,
        );
        outcomes.read++;
      } catch (e) {
        assertClean(e, dir, kind);
        outcomes.refused++;
      }
    }),
    { seed: 15_2028, numRuns: 120 },
  );
  if (process.env.TTRL_FUZZ_VERBOSE) console.log(outcomes);
  assert.ok(outcomes.refused > 40, JSON.stringify(outcomes));
});
