import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  bf16ToF32,
  bytesToF32,
  f16ToF32,
  f32ToBf16,
  f32ToBytes,
  f32ToF16,
  parseTorchDtype,
  roundToBf16InPlace,
  roundToDtypeInPlace,
  withConfigDtype,
} from "../../src/io/dtype.ts";

const fromBits = (bits: number[]): Float32Array => new Float32Array(new Uint32Array(bits).buffer);
const bitsOf = (x: Float32Array): number[] => [...new Uint32Array(x.buffer, x.byteOffset, x.length)];

/** The value of a bf16 pattern, computed independently of the code under test (float64 math). */
function bf16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 7) & 0xff;
  const m = h & 0x7f;
  if (e === 0xff) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  if (e === 0) return s * 2 ** -126 * (m / 128);
  return s * 2 ** (e - 127) * (1 + m / 128);
}

function f16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  if (e === 0) return s * 2 ** -14 * (m / 1024);
  return s * 2 ** (e - 15) * (1 + m / 1024);
}

/** Reference rounding: nearest representable value by float64 distance, ties to an even mantissa. */
function refRound(v: number, values: Float64Array, candidates: (v: number) => number[]): number {
  let best = -1;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of candidates(v)) {
    const d = Math.abs(values[c] - v);
    if (d < bestD || (d === bestD && (c & 1) === 0)) {
      best = c;
      bestD = d;
    }
  }
  return best;
}

describe("bfloat16", () => {
  it("round-trips all 65,536 bf16 patterns through float32 (NaN → 0x7FC0) and decodes them exactly", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const f = bf16ToF32(all);
    const back = f32ToBf16(f);
    for (let h = 0; h < 65536; h++) {
      const v = bf16Value(h);
      if (Number.isNaN(v)) {
        assert.ok(Number.isNaN(f[h]), `pattern ${h}`);
        assert.equal(back[h], 0x7fc0, `NaN pattern ${h.toString(16)}`);
      } else {
        assert.ok(Object.is(f[h], v), `pattern ${h.toString(16)}: ${f[h]} vs ${v}`);
        assert.equal(back[h], h, `pattern ${h.toString(16)}`);
      }
    }
  });

  it("rounds every float32 between two bf16 values to the nearest, ties to even", () => {
    // for rounding, ±infinity sits where the next exponent would be (2^128): IEEE overflow rounding
    const values = Float64Array.from({ length: 65536 }, (_, h) => {
      const v = bf16Value(h);
      return Number.isFinite(v) || Number.isNaN(v) ? v : Math.sign(v) * 2 ** 128;
    });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (bits) => {
        const x = fromBits([bits]);
        const got = f32ToBf16(x)[0];
        if (Number.isNaN(x[0])) return got === 0x7fc0;
        const lo = bits >>> 16;
        const hi = (lo + 1) & 0xffff;
        const exp = refRound(x[0], values, () => [lo, hi].filter((c) => !Number.isNaN(values[c])));
        return got === exp;
      }),
      { numRuns: 20000 },
    );
  });

  it("overflows ties at the largest finite bf16 to infinity (round half to even), as IEEE and torch do", () => {
    assert.deepEqual(
      [...f32ToBf16(fromBits([0x7f7f8000, 0x7f7f7fff, 0xff7f8000]))],
      [0x7f80, 0x7f7f, 0xff80],
    );
  });

  it("matches torch's float32 → bfloat16 conversion on 4,838 values (fixture)", () => {
    const fx = JSON.parse(readFileSync(new URL("./dtype_torch.json", import.meta.url), "utf8"));
    // torch's vectorised CPU kernel writes NaN as 0xFFFF; ttrl (like c10::BFloat16 and the spec) writes 0x7FC0
    const x = fromBits(fx.f32);
    const exp = (fx.bf16 as number[]).map((b, i) => (Number.isNaN(x[i]) ? 0x7fc0 : b));
    assert.deepEqual([...f32ToBf16(x)], exp);
    assert.deepEqual(
      bitsOf(roundToBf16InPlace(x.slice())).map((b) => b >>> 16),
      exp,
    );
  });
});

describe("float16", () => {
  it("decodes all 65,536 half patterns exactly and re-encodes them", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const f = f16ToF32(all);
    const back = f32ToF16(f);
    for (let h = 0; h < 65536; h++) {
      const v = f16Value(h);
      if (Number.isNaN(v)) {
        assert.ok(Number.isNaN(f[h]));
        assert.equal(back[h], h | 0x200); // quietened, payload kept (as torch)
      } else {
        assert.ok(Object.is(f[h], v), `pattern ${h.toString(16)}: ${f[h]} vs ${v}`);
        assert.equal(back[h], h);
      }
    }
  });

  it("rounds float32 to the nearest half, ties to even, overflow to infinity", () => {
    const values = Float64Array.from({ length: 65536 }, (_, h) => f16Value(h));
    // finite halves sorted by value, to find neighbours of any float
    const finite = [...values.keys()].filter((h) => Number.isFinite(values[h]) && !Object.is(values[h], -0));
    finite.sort((a, b) => values[a] - values[b]);
    const sortedVals = finite.map((h) => values[h]);
    const neighbours = (v: number): number[] => {
      let lo = 0;
      let hi = sortedVals.length - 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (sortedVals[mid] <= v) lo = mid;
        else hi = mid;
      }
      return [finite[lo], finite[hi]];
    };
    fc.assert(
      fc.property(fc.float({ noNaN: true, min: -65504, max: 65504 }), (v) => {
        const x = new Float32Array([v]);
        const got = f32ToF16(x)[0];
        const exp = refRound(x[0], values, neighbours);
        // ±0: the sign follows the input
        if (values[exp] === 0)
          return (got & 0x7fff) === 0 && (got & 0x8000) === (Object.is(x[0], -0) || x[0] < 0 ? 0x8000 : 0);
        return got === exp;
      }),
      { numRuns: 20000 },
    );
    assert.equal(f32ToF16(new Float32Array([65520]))[0], 0x7c00);
    assert.equal(f32ToF16(new Float32Array([-1e10]))[0], 0xfc00);
  });

  it("matches torch's float32 → float16 conversion on 4,838 values (fixture)", () => {
    const fx = JSON.parse(readFileSync(new URL("./dtype_torch.json", import.meta.url), "utf8"));
    assert.deepEqual([...f32ToF16(fromBits(fx.f32))], fx.f16);
    const r = roundToDtypeInPlace(fromBits(fx.f32), "F16");
    const exp = f16ToF32(Uint16Array.from(fx.f16));
    for (let i = 0; i < r.length; i++)
      assert.ok(Object.is(r[i], exp[i]) || (Number.isNaN(r[i]) && Number.isNaN(exp[i])));
  });
});

describe("bytes ↔ float32", () => {
  it("converts each dtype, including unaligned input", () => {
    const x = new Float32Array([1, -2.5, 0.1, 65504, 3e-8]);
    for (const d of ["F32", "F16", "BF16"] as const) {
      const b = f32ToBytes(x, d);
      const shifted = new Uint8Array(b.byteLength + 1);
      shifted.set(b, 1);
      const y1 = bytesToF32(b, d);
      const y2 = bytesToF32(shifted.subarray(1), d);
      assert.deepEqual([...y1], [...y2]);
      assert.deepEqual([...y1], [...roundToDtypeInPlace(x.slice(), d)]);
    }
    assert.throws(() => bytesToF32(new Uint8Array(4), "I32"), /cannot convert dtype I32/);
  });
});

// Issue 15 item 2: the dtype keys of a saved config.json always agree with the tensors.
describe("withConfigDtype", () => {
  it("sets dtype and torch_dtype to the saved dtype whatever the config had, leaving other keys alone", () => {
    const name = { F32: "float32", F16: "float16", BF16: "bfloat16" } as const;
    fc.assert(
      fc.property(
        fc.constantFrom("F32", "F16", "BF16") as fc.Arbitrary<"F32" | "F16" | "BF16">,
        fc.dictionary(fc.string(), fc.jsonValue()),
        fc.option(fc.constantFrom("float32", "bfloat16", "float16", "auto"), { nil: undefined }),
        fc.option(fc.constantFrom("float32", "bfloat16", "float16"), { nil: undefined }),
        (d, rest, dtype, torchDtype) => {
          const cfg: Record<string, unknown> = { ...rest };
          if (dtype !== undefined) cfg.dtype = dtype;
          if (torchDtype !== undefined) cfg.torch_dtype = torchDtype;
          const out = withConfigDtype(cfg, d);
          assert.equal(out.dtype, name[d]);
          assert.equal(out.torch_dtype, name[d]);
          for (const k of Object.keys(cfg))
            if (k !== "dtype" && k !== "torch_dtype") assert.deepEqual(out[k], cfg[k]);
          assert.equal(parseTorchDtype(out.dtype as string), d);
        },
      ),
    );
  });
});
