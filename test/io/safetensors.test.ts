import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { roundToDtypeInPlace } from "../../src/io/dtype.ts";
import {
  Checkpoint,
  CheckpointWriter,
  encodeHeader,
  INDEX_FILE,
  planShards,
  SafetensorsFile,
  SafetensorsWriter,
  saveCheckpoint,
} from "../../src/io/safetensors.ts";
import { TtrlError } from "../../src/util/errors.ts";
import { Rng } from "../../src/util/rng.ts";

const root = mkdtempSync(join(tmpdir(), "ttrl-st-"));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const tmp = (name = "t") => join(root, `${name}-${counter++}`);

function randomF32(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal() * 3);
}

describe("SafetensorsFile reads the reference implementation's output", () => {
  it("reads every dtype, a zero-size tensor, a scalar and the metadata", async () => {
    const exp = JSON.parse(readFileSync(new URL("./peer.json", import.meta.url), "utf8"));
    const f = await SafetensorsFile.open(new URL("./peer.safetensors", import.meta.url).pathname);
    assert.deepEqual(f.metadata, { format: "pt", note: "ttrl fixture" });
    assert.deepEqual([...f.tensors.keys()].sort(), Object.keys(exp).sort());
    for (const [name, e] of Object.entries<{ shape: number[]; values: number[] }>(exp)) {
      const ti = f.tensors.get(name);
      assert.ok(ti);
      assert.deepEqual(ti.shape, e.shape, name);
      if (ti.dtype === "I64") {
        const raw = await f.readRaw(name);
        const v = new BigInt64Array(raw.buffer, raw.byteOffset, raw.byteLength / 8);
        assert.deepEqual([...v].map(Number), e.values);
      } else if (ti.dtype === "U8") {
        assert.deepEqual([...(await f.readRaw(name))], e.values);
      } else {
        const v = await f.readF32(name);
        assert.deepEqual([...v], e.values.map(Math.fround), name);
      }
    }
    await assert.rejects(f.readF32("d.i64"), /d\.i64.*unsupported dtype I64/);
    await f.close();
  });
});

describe("SafetensorsWriter / saveCheckpoint round trips", () => {
  it("round-trips F32, F16 and BF16 (values rounded once, exactly) with shapes and metadata", async () => {
    const rng = new Rng(1);
    for (const dtype of ["F32", "F16", "BF16"] as const) {
      const path = `${tmp()}.safetensors`;
      const a = randomF32(rng, 6 * 7);
      const b = randomF32(rng, 5);
      const w = new SafetensorsWriter(
        path,
        [
          { name: "a", dtype, shape: [6, 7] },
          { name: "scalar", dtype, shape: [] },
          { name: "b", dtype, shape: [5] },
        ],
        { format: "pt" },
      );
      await w.write("a", a);
      await w.write("scalar", new Float32Array([0.3]));
      await w.write("b", b);
      await w.close();
      const f = await SafetensorsFile.open(path);
      assert.deepEqual(f.metadata, { format: "pt" });
      assert.deepEqual([...f.tensors.keys()], ["a", "scalar", "b"]);
      assert.deepEqual(f.tensors.get("a")?.shape, [6, 7]);
      assert.equal(f.tensors.get("a")?.dtype, dtype);
      assert.deepEqual([...(await f.readF32("a"))], [...roundToDtypeInPlace(a.slice(), dtype)]);
      assert.deepEqual([...(await f.readF32("b"))], [...roundToDtypeInPlace(b.slice(), dtype)]);
      assert.deepEqual(
        [...(await f.readF32("scalar"))],
        [...roundToDtypeInPlace(new Float32Array([0.3]), dtype)],
      );
      // raw bytes written back unchanged
      const path2 = `${tmp()}.safetensors`;
      const w2 = new SafetensorsWriter(path2, [{ name: "a", dtype, shape: [6, 7] }]);
      await w2.write("a", await f.readRaw("a"));
      await w2.close();
      const f2 = await SafetensorsFile.open(path2);
      assert.deepEqual(await f2.readRaw("a"), await f.readRaw("a"));
      await f.close();
      await f2.close();
    }
  });

  it("writes headers padded to 8 bytes, as the reference writer does", () => {
    const { header } = encodeHeader([{ name: "x", dtype: "F32", shape: [1] }], { format: "pt" });
    assert.equal(header.byteLength % 8, 0);
    const text = Buffer.from(header.subarray(8)).toString("utf8");
    assert.match(
      text,
      /^\{"__metadata__":\{"format":"pt"\},"x":\{"dtype":"F32","shape":\[1\],"data_offsets":\[0,4\]\}\} *$/,
    );
  });

  it("rejects out-of-order, undeclared, wrong-size and missing writes, leaving no file", async () => {
    const path = `${tmp()}.safetensors`;
    const w = new SafetensorsWriter(path, [
      { name: "a", dtype: "BF16", shape: [2] },
      { name: "b", dtype: "F32", shape: [3] },
    ]);
    await assert.rejects(w.write("b", new Float32Array(3)), /expected tensor "a" next, got "b"/);
    await assert.rejects(w.write("a", new Float32Array(3)), /"a": 3 values for shape \[2\]/);
    await assert.rejects(w.write("a", new Uint8Array(3)), /"a": 3 bytes, BF16 \[2\] needs 4/);
    await w.write("a", new Float32Array(2));
    await assert.rejects(w.close(), /closed after 1 of 2 tensors \(next: "b"\)/);
    assert.deepEqual(
      readdirSync(root).filter((n) => n.includes(path.split("/").pop() as string)),
      [],
    );
  });

  it("saves sharded checkpoints with an index (total_size, weight_map) and reads them back", async () => {
    const rng = new Rng(2);
    const tensors = Array.from({ length: 7 }, (_, i) => ({
      name: `model.layers.${i}.w`,
      shape: [4, 8 + i],
      data: randomF32(rng, 4 * (8 + i)),
    }));
    const dir = tmp("ckpt");
    await saveCheckpoint(dir, tensors, { dtype: "BF16", maxShardBytes: 200 });
    const files = readdirSync(dir).sort();
    const idx = JSON.parse(readFileSync(join(dir, INDEX_FILE), "utf8"));
    const total = tensors.reduce((a, t) => a + t.data.length * 2, 0);
    assert.equal(idx.metadata.total_size, total);
    const shards = files.filter((f) => f.endsWith(".safetensors"));
    assert.ok(shards.length > 1);
    assert.deepEqual(
      shards,
      shards.map((_, i) => `model-0000${i + 1}-of-0000${shards.length}.safetensors`),
    );
    assert.deepEqual(Object.keys(idx.weight_map).sort(), tensors.map((t) => t.name).sort());
    for (const s of shards) {
      const f = await SafetensorsFile.open(join(dir, s));
      assert.deepEqual(f.metadata, { format: "pt" });
      const bytes = [...f.tensors.values()].reduce((a, t) => a + t.end - t.begin, 0);
      assert.ok(bytes <= 200 || f.tensors.size === 1);
      await f.close();
    }
    const ck = await Checkpoint.open(dir);
    assert.deepEqual(
      ck.names,
      tensors.map((t) => t.name),
    );
    for (const t of tensors) {
      assert.deepEqual([...(await ck.readF32(t.name))], [...roundToDtypeInPlace(t.data.slice(), "BF16")]);
      assert.equal(ck.info(t.name).file, join(dir, idx.weight_map[t.name]));
    }
    await ck.close();
    // saving again unsharded replaces the shards and the index
    await saveCheckpoint(dir, tensors, { dtype: "F32" });
    assert.deepEqual(readdirSync(dir), ["model.safetensors"]);
    const ck2 = await Checkpoint.open(dir);
    assert.deepEqual([...(await ck2.readF32(tensors[3].name))], [...tensors[3].data]);
    await ck2.close();
  });

  it("plans shards like Hugging Face (new shard when the next tensor would pass the limit)", () => {
    const t = (n: number) => ({ dtype: "U8", shape: [n] });
    const sizes = (s: { shape: number[] }[][]) => s.map((x) => x.map((y) => y.shape[0]));
    assert.deepEqual(sizes(planShards([t(5), t(5), t(1), t(20), t(3)], 10)), [[5, 5], [1], [20], [3]]);
    assert.deepEqual(sizes(planShards([t(5), t(5)], undefined)), [[5, 5]]);
  });

  it("CheckpointWriter accepts overlapping writes across shard boundaries (dispatched in call order)", async () => {
    const rng = new Rng(9);
    const dir = tmp("overlap");
    const ts = Array.from({ length: 9 }, (_, i) => ({
      name: `t${i}`,
      shape: [3 + i, 5],
      data: randomF32(rng, (3 + i) * 5),
    }));
    const w = new CheckpointWriter(
      dir,
      ts.map((t) => ({ name: t.name, dtype: "F16" as const, shape: t.shape })),
      { maxShardBytes: 120 },
    );
    await Promise.all(ts.map((t) => w.write(t.name, t.data)));
    await w.close();
    const ck = await Checkpoint.open(dir);
    assert.ok(w.files.length > 2);
    assert.deepEqual(
      ck.names,
      ts.map((t) => t.name),
    );
    for (const t of ts)
      assert.deepEqual([...(await ck.readF32(t.name))], [...roundToDtypeInPlace(t.data.slice(), "F16")]);
    await ck.close();
  });

  it("CheckpointWriter streams and refuses to finish a partial checkpoint", async () => {
    const dir = tmp("cw");
    mkdirSync(dir);
    const w = new CheckpointWriter(dir, [
      { name: "x", dtype: "F16", shape: [2] },
      { name: "y", dtype: "F16", shape: [2] },
    ]);
    await w.write("x", new Float32Array([1, 2]));
    await assert.rejects(w.close(), /closed before tensor "y" was written/);
    assert.deepEqual(readdirSync(dir), []);
  });
});

describe("Checkpoint errors", () => {
  it("names the folder when it is missing or holds no safetensors", async () => {
    await assert.rejects(Checkpoint.open(join(root, "nope")), /nope: model folder not found/);
    const d = tmp("empty");
    mkdirSync(d);
    writeFileSync(join(d, "pytorch_model.bin"), "x");
    await assert.rejects(
      Checkpoint.open(d),
      /no model\.safetensors or model\.safetensors\.index\.json.*\.bin checkpoints are not supported/,
    );
  });

  it("names the shard and tensor when the index lists a tensor its shard lacks", async () => {
    const d = tmp("badidx");
    await saveCheckpoint(d, [{ name: "a", shape: [1], data: new Float32Array(1) }], { dtype: "F32" });
    writeFileSync(
      join(d, INDEX_FILE),
      JSON.stringify({ weight_map: { a: "model.safetensors", b: "model.safetensors" } }),
    );
    await assert.rejects(
      Checkpoint.open(d),
      /model\.safetensors: tensor "b" is listed in model\.safetensors\.index\.json but missing/,
    );
    writeFileSync(join(d, INDEX_FILE), JSON.stringify({ weight_map: { a: "../x.safetensors" } }));
    await assert.rejects(Checkpoint.open(d), /not a shard file name/);
  });
});

/** A valid file: a few tensors of several dtypes, small enough to corrupt thousands of times. */
function validFile(): Uint8Array {
  const { header } = encodeHeader(
    [
      { name: "emb", dtype: "BF16", shape: [3, 4] },
      { name: "w", dtype: "F32", shape: [2, 3] },
      { name: "z", dtype: "F16", shape: [0] },
      { name: "h", dtype: "F16", shape: [5] },
    ],
    { format: "pt" },
  );
  const data = new Uint8Array(24 + 24 + 0 + 10).map((_, i) => (i * 37 + 11) & 0xff);
  const out = new Uint8Array(header.byteLength + data.byteLength);
  out.set(header);
  out.set(data, header.byteLength);
  return out;
}

function corrupt(base: Uint8Array, rng: Rng): Uint8Array {
  const b = base.slice();
  const hlen = Number(Buffer.from(b.buffer).readBigUInt64LE(0));
  switch (rng.int(9)) {
    case 0: {
      // flip random bytes anywhere
      const n = 1 + rng.int(4);
      for (let i = 0; i < n; i++) b[rng.int(b.length)] = rng.int(256);
      return b;
    }
    case 1: // truncate
      return b.slice(0, rng.int(b.length));
    case 2: {
      // append garbage
      const extra = new Uint8Array(1 + rng.int(16)).map(() => rng.int(256));
      const o = new Uint8Array(b.length + extra.length);
      o.set(b);
      o.set(extra, b.length);
      return o;
    }
    case 3: {
      // change the header length
      const v = [0, 1, 7, hlen - 1, hlen + 1, hlen + 8, b.length, 2 ** 32 + hlen, 1e8 + 1, 2 ** 53][
        rng.int(10)
      ];
      Buffer.from(b.buffer).writeBigUInt64LE(BigInt(Math.max(0, v)), 0);
      return b;
    }
    case 4: {
      // change a digit in the header (shapes, offsets)
      const digits: number[] = [];
      for (let i = 8; i < 8 + hlen; i++) if (b[i] >= 0x30 && b[i] <= 0x39) digits.push(i);
      b[digits[rng.int(digits.length)]] = 0x30 + rng.int(10);
      return b;
    }
    case 5: {
      // swap the dtype string for another
      const text = Buffer.from(b.subarray(8, 8 + hlen)).toString("latin1");
      const dts = ["F32", "F16", "BF16", "I8", "U8", "F64", "I64", "XX", "bf16", "F8_E4M3"];
      const from = ["BF16", "F32", "F16"][rng.int(3)];
      const to = dts[rng.int(dts.length)];
      const t2 = text.replace(`"${from}"`, `"${to}"`);
      const enc = Buffer.from(t2, "latin1");
      const o = new Uint8Array(8 + enc.length + b.length - 8 - hlen);
      Buffer.from(o.buffer).writeBigUInt64LE(BigInt(enc.length), 0);
      o.set(enc, 8);
      o.set(b.subarray(8 + hlen), 8 + enc.length);
      return o;
    }
    case 6: {
      // replace a structural character in the header
      const i = 8 + rng.int(hlen);
      b[i] = '{}[],:"0 -.e\\'.charCodeAt(rng.int(13));
      return b;
    }
    case 7: {
      // delete a byte from the header (the length then disagrees unless it is fixed up)
      const i = 8 + rng.int(hlen);
      const o = new Uint8Array(b.length - 1);
      o.set(b.subarray(0, i));
      o.set(b.subarray(i + 1), i);
      if (rng.int(2)) Buffer.from(o.buffer).writeBigUInt64LE(BigInt(hlen - 1), 0);
      return o;
    }
    default: {
      // random bytes of random length
      return new Uint8Array(rng.int(64)).map(() => rng.int(256));
    }
  }
}

describe("fuzzed reader", () => {
  it("reads every corrupted file correctly or rejects it with a TtrlError naming the file (3,000 cases)", async () => {
    const base = validFile();
    const rng = new Rng("fuzz");
    const path = join(root, "fuzz.safetensors");
    let accepted = 0;
    let rejected = 0;
    for (let k = 0; k < 3000; k++) {
      const b = corrupt(base, rng);
      writeFileSync(path, b);
      let f: SafetensorsFile;
      try {
        f = await SafetensorsFile.open(path);
      } catch (e) {
        assert.ok(e instanceof TtrlError, `case ${k}: ${(e as Error).stack}`);
        assert.ok((e as Error).message.startsWith(`${path}: `), (e as Error).message);
        rejected++;
        continue;
      }
      try {
        // accepted: every tensor's bytes are exactly its slice of the file, and float reads convert them
        for (const [name, ti] of f.tensors) {
          const raw = await f.readRaw(name);
          assert.deepEqual(raw, b.subarray(f.dataStart + ti.begin, f.dataStart + ti.end));
          if (["F32", "F16", "BF16"].includes(ti.dtype)) {
            const v = await f.readF32(name);
            assert.equal(
              v.length,
              ti.shape.reduce((a, d) => a * d, 1),
            );
          }
        }
        const last = Math.max(0, ...[...f.tensors.values()].map((t) => t.end));
        assert.equal(f.dataStart + last, b.length);
        accepted++;
      } finally {
        await f.close();
      }
    }
    if (process.env.FUZZ_VERBOSE) console.log({ accepted, rejected });
    assert.ok(accepted > 50 && rejected > 1000, `accepted ${accepted}, rejected ${rejected}`);
  });

  it("rejects specific malformations with messages that name the tensor", async () => {
    const write = (obj: unknown, dataLen: number, pad = "") => {
      const p = `${tmp()}.safetensors`;
      const j = Buffer.from(JSON.stringify(obj) + pad);
      const b = Buffer.alloc(8 + j.length + dataLen);
      b.writeBigUInt64LE(BigInt(j.length), 0);
      j.copy(b, 8);
      writeFileSync(p, b);
      return p;
    };
    const cases: [unknown, number, RegExp][] = [
      [{ a: { dtype: "Q4", shape: [1], data_offsets: [0, 1] } }, 1, /tensor "a": unknown dtype "Q4"/],
      [
        { a: { dtype: "F32", shape: [2], data_offsets: [0, 4] } },
        4,
        /tensor "a": data_offsets \[0, 4\] hold 4 bytes but F32 \[2\] needs 8/,
      ],
      [{ a: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, 8, /tensor "a": .*gap after byte 0/],
      [
        {
          a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
          b: { dtype: "F32", shape: [1], data_offsets: [2, 6] },
        },
        8,
        /tensor "b": .*overlap/,
      ],
      [
        { a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } },
        6,
        /2 trailing bytes after the last tensor \(last tensor "a"\)/,
      ],
      [{ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, 6, /truncated.*last tensor "a"/],
      [{ a: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, 4, /tensor "a": bad shape/],
      [{ a: { dtype: "F32", shape: [1.5], data_offsets: [0, 4] } }, 4, /tensor "a": bad shape/],
      [{ a: { dtype: "F32", shape: [1], data_offsets: [0] } }, 4, /tensor "a": data_offsets is not a pair/],
      [{ __metadata__: { x: 1 } }, 0, /__metadata__ entry "x" is not a string/],
      [[1, 2], 0, /not a JSON object/],
    ];
    for (const [obj, n, re] of cases) await assert.rejects(SafetensorsFile.open(write(obj, n)), re);
    // padding with spaces is fine
    const ok = await SafetensorsFile.open(
      write({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, 4, "     "),
    );
    assert.deepEqual([...(await ok.readF32("a"))], [0]);
    await ok.close();
    // header length over the bound
    const p = `${tmp()}.safetensors`;
    const b = Buffer.alloc(16);
    b.writeBigUInt64LE(100_000_001n, 0);
    writeFileSync(p, b);
    await assert.rejects(SafetensorsFile.open(p), /exceeds the 100000000-byte bound/);
  });

  it("property: any tensor list round-trips through the writer and reader", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            dtype: fc.constantFrom("F32" as const, "F16" as const, "BF16" as const),
            shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }),
          }),
          { maxLength: 5 },
        ),
        fc.integer(),
        async (specs, seed) => {
          const rng = new Rng(seed);
          const ts = specs.map((s, i) => ({ name: `t${i}`, ...s }));
          const data = ts.map((t) =>
            randomF32(
              rng,
              t.shape.reduce((a, d) => a * d, 1),
            ),
          );
          const p = `${tmp()}.safetensors`;
          const w = new SafetensorsWriter(p, ts);
          for (let i = 0; i < ts.length; i++) await w.write(ts[i].name, data[i]);
          await w.close();
          const f = await SafetensorsFile.open(p);
          try {
            for (let i = 0; i < ts.length; i++) {
              assert.deepEqual(f.tensors.get(ts[i].name)?.shape, ts[i].shape);
              assert.deepEqual(
                [...(await f.readF32(ts[i].name))],
                [...roundToDtypeInPlace(data[i].slice(), ts[i].dtype)],
              );
            }
          } finally {
            await f.close();
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});

// Issue 15 item 3: the one writer every model, checkpoint, merge and optimizer state goes through refuses
// NaN/Inf, naming the tensor, and leaves nothing behind.
describe("no non-finite value is ever written", () => {
  const specials = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];

  it("SafetensorsWriter refuses a NaN/±Inf anywhere in any float dtype, naming file, tensor and element; finite data round-trips", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("F32", "F16", "BF16") as fc.Arbitrary<"F32" | "F16" | "BF16">,
        fc.integer({ min: 1, max: 64 }),
        fc.option(fc.tuple(fc.nat(), fc.constantFrom(...specials)), { nil: null }),
        fc.boolean(),
        async (dtype, n, bad, raw) => {
          const dir = tmp("nf");
          mkdirSync(dir);
          const path = join(dir, "x.safetensors");
          const data = Float32Array.from({ length: n }, (_, i) => (i % 7) - 3.5);
          const at = bad ? bad[0] % n : -1;
          if (bad) data[at] = bad[1];
          const w = new SafetensorsWriter(path, [
            { name: "ok", dtype, shape: [2] },
            { name: "w.q", dtype, shape: [n] },
          ]);
          await w.write("ok", new Float32Array([1, 2]));
          // raw bytes (as merge writes them) go through the same check as float32 arrays
          const payload = raw ? (await import("../../src/io/dtype.ts")).f32ToBytes(data, dtype) : data;
          if (bad) {
            await assert.rejects(w.write("w.q", payload), (e: Error) => {
              assert.ok(e instanceof TtrlError);
              assert.match(
                e.message,
                new RegExp(
                  `x\\.safetensors: tensor "w\\.q" \\[${n}\\] has a non-finite value \\(-?(NaN|Infinity)\\) at element ${at}`,
                ),
              );
              return true;
            });
            assert.deepEqual(readdirSync(dir), [], "no file and no temp file left");
          } else {
            await w.write("w.q", payload);
            await w.close();
            const f = await SafetensorsFile.open(path);
            assert.deepEqual([...(await f.readF32("w.q"))], [...roundToDtypeInPlace(data.slice(), dtype)]);
            await f.close();
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it("a finite float32 value that overflows F16 (70000) is refused too: the check is on the bytes written", async () => {
    const dir = tmp("nf16");
    await assert.rejects(
      saveCheckpoint(
        dir,
        [{ name: "model.norm.weight", shape: [3], data: new Float32Array([1, 70000, 2]) }],
        {
          dtype: "F16",
        },
      ),
      /tensor "model\.norm\.weight" \[3\] has a non-finite value \(Infinity\) at element 1/,
    );
    assert.deepEqual(readdirSync(dir), []);
    // BF16 has float32's range: the same value is fine there
    await saveCheckpoint(
      dir,
      [{ name: "model.norm.weight", shape: [3], data: new Float32Array([1, 70000, 2]) }],
      {
        dtype: "BF16",
      },
    );
    assert.deepEqual(readdirSync(dir), ["model.safetensors"]);
  });

  it("a sharded checkpoint with a NaN in its second shard: error names the tensor, the shard being written is removed", async () => {
    const dir = tmp("nfshard");
    const t = (name: string, v: number) => ({ name, shape: [4], data: new Float32Array([0, 1, v, 2]) });
    await assert.rejects(
      saveCheckpoint(dir, [t("a", 0), t("b", 0), t("c", Number.NaN)], { dtype: "F32", maxShardBytes: 32 }),
      /tensor "c" \[4\] has a non-finite value \(NaN\) at element 2/,
    );
    assert.deepEqual(readdirSync(dir), [], "no shard of the unfinished checkpoint is left");
  });
});
