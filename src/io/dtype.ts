/**
 * Floating-point storage formats: float32 ↔ bfloat16 / float16 with exact round-to-nearest-even, as torch
 * and safetensors do. Values are handled as raw bit patterns (Uint16Array), so this works on Node 20, which
 * has no Float16Array.
 */

export type DType = "F32" | "F16" | "BF16";

/** Bytes per element of every safetensors dtype (the spec's list). */
export const DTYPE_SIZES: Readonly<Record<string, number>> = Object.freeze({
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
});

/** The float dtypes ttrl converts to and from float32. */
export const FLOAT_DTYPES: readonly DType[] = ["F32", "F16", "BF16"];

export function isFloatDType(d: string): d is DType {
  return d === "F32" || d === "F16" || d === "BF16";
}

export function dtypeSize(d: string): number {
  const s = DTYPE_SIZES[d];
  if (s === undefined) throw new Error(`unknown dtype ${JSON.stringify(d)}`);
  return s;
}

/** torch dtype names (config.json `torch_dtype`, mergekit `dtype:`) ↔ safetensors dtypes. */
export function torchDtypeName(d: DType): "float32" | "float16" | "bfloat16" {
  return d === "F32" ? "float32" : d === "F16" ? "float16" : "bfloat16";
}

export function parseTorchDtype(name: string): DType | null {
  switch (name) {
    case "float32":
    case "float":
    case "fp32":
    case "F32":
      return "F32";
    case "float16":
    case "half":
    case "fp16":
    case "F16":
      return "F16";
    case "bfloat16":
    case "bf16":
    case "BF16":
      return "BF16";
    default:
      return null;
  }
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** One float32 bit pattern → bfloat16 bits, round-to-nearest-even; every NaN → 0x7FC0 (torch's choice). */
export function f32BitsToBf16(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return 0x7fc0;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 → bfloat16 bits, round-to-nearest-even, NaN → 0x7FC0. */
export function f32ToBf16(x: Float32Array, out?: Uint16Array): Uint16Array {
  const n = x.length;
  const o = out ?? new Uint16Array(n);
  const u = new Uint32Array(x.buffer, x.byteOffset, n);
  for (let i = 0; i < n; i++) {
    const b = u[i];
    o[i] = (b & 0x7fffffff) > 0x7f800000 ? 0x7fc0 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return o;
}

/** bfloat16 bits → float32 (exact). */
export function bf16ToF32(x: Uint16Array, out?: Float32Array): Float32Array {
  const n = x.length;
  const o = out ?? new Float32Array(n);
  const u = new Uint32Array(o.buffer, o.byteOffset, n);
  for (let i = 0; i < n; i++) u[i] = x[i] << 16;
  return o;
}

/** Round a float32 array in place to the nearest bfloat16 values (what "load as bfloat16" does). */
export function roundToBf16InPlace(x: Float32Array): Float32Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  for (let i = 0; i < u.length; i++) {
    const b = u[i];
    u[i] = (b & 0x7fffffff) > 0x7f800000 ? 0x7fc00000 : ((b + 0x7fff + ((b >>> 16) & 1)) & 0xffff0000) >>> 0;
  }
  return x;
}

/** One float32 bit pattern → IEEE half bits, round-to-nearest-even (overflow → ±inf, NaN stays NaN). */
export function f32BitsToF16(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const e = (bits >>> 23) & 0xff;
  const m = bits & 0x7fffff;
  if (e === 0xff) return m !== 0 ? sign | 0x7e00 | (m >>> 13) : sign | 0x7c00; // NaN stays a quiet NaN with its payload (as torch on x86)
  if (e >= 143) return sign | 0x7c00; // ≥ 2^16: overflow
  if (e >= 113) {
    // normal half: exponent e − 112, 10 mantissa bits; the carry may run into the exponent (→ inf), correctly
    const q = ((e - 112) << 10) | (m >>> 13);
    const rem = m & 0x1fff;
    return sign | (rem > 0x1000 || (rem === 0x1000 && q & 1) ? q + 1 : q);
  }
  if (e < 102) return sign; // < 2^-25: rounds to zero
  // subnormal half: value = mant · 2^(e−150), unit 2^-24 → mant >> (126 − e)
  const mant = m | 0x800000;
  const shift = 126 - e;
  const q = mant >>> shift;
  const rem = mant & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return sign | (rem > half || (rem === half && q & 1) ? q + 1 : q);
}

/** IEEE half bits → float32 bits (exact). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return (sign | 0x7f800000 | (m << 13)) >>> 0;
  if (e !== 0) return (sign | ((e + 112) << 23) | (m << 13)) >>> 0;
  if (m === 0) return sign >>> 0;
  // subnormal: normalise
  let mm = m;
  let ee = 113;
  while ((mm & 0x400) === 0) {
    mm <<= 1;
    ee--;
  }
  return (sign | (ee << 23) | ((mm & 0x3ff) << 13)) >>> 0;
}

let f16Table: Uint32Array | null = null;
function f16ToF32Table(): Uint32Array {
  if (!f16Table) {
    f16Table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32Bits(h);
  }
  return f16Table;
}

/** float32 → float16 bits, round-to-nearest-even. */
export function f32ToF16(x: Float32Array, out?: Uint16Array): Uint16Array {
  const n = x.length;
  const o = out ?? new Uint16Array(n);
  const u = new Uint32Array(x.buffer, x.byteOffset, n);
  for (let i = 0; i < n; i++) o[i] = f32BitsToF16(u[i]);
  return o;
}

/** float16 bits → float32 (exact). */
export function f16ToF32(x: Uint16Array, out?: Float32Array): Float32Array {
  const t = f16ToF32Table();
  const n = x.length;
  const o = out ?? new Float32Array(n);
  const u = new Uint32Array(o.buffer, o.byteOffset, n);
  for (let i = 0; i < n; i++) u[i] = t[x[i]];
  return o;
}

/** Round float32 values in place to what `dtype` can hold (identity for F32). */
export function roundToDtypeInPlace(x: Float32Array, dtype: DType): Float32Array {
  if (dtype === "BF16") return roundToBf16InPlace(x);
  if (dtype === "F16") {
    const t = f16ToF32Table();
    const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
    for (let i = 0; i < u.length; i++) u[i] = t[f32BitsToF16(u[i])];
  }
  return x;
}

/** Raw little-endian bytes of a float dtype → float32 (copies; `bytes` may be unaligned). */
export function bytesToF32(bytes: Uint8Array, dtype: string, out?: Float32Array): Float32Array {
  const size = dtype === "F32" ? 4 : dtype === "F16" || dtype === "BF16" ? 2 : 0;
  if (size === 0) throw new Error(`cannot convert dtype ${dtype} to float32 (supported: F32, F16, BF16)`);
  if (bytes.byteLength % size !== 0)
    throw new Error(`byte length ${bytes.byteLength} is not a multiple of ${size}`);
  const n = bytes.byteLength / size;
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  if (dtype === "F32") {
    const src = new Float32Array(aligned.buffer, aligned.byteOffset, n);
    if (out) {
      out.set(src);
      return out;
    }
    return aligned === bytes ? src.slice() : src;
  }
  const src = new Uint16Array(aligned.buffer, aligned.byteOffset, n);
  return dtype === "BF16" ? bf16ToF32(src, out) : f16ToF32(src, out);
}

/** float32 → raw little-endian bytes of `dtype`. For F32 the result shares `x`'s memory. */
export function f32ToBytes(x: Float32Array, dtype: DType): Uint8Array {
  if (dtype === "F32") return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  const h = dtype === "BF16" ? f32ToBf16(x) : f32ToF16(x);
  return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
}

/** The bit pattern of one float32 value. */
export function f32Bits(v: number): number {
  f32buf[0] = v;
  return u32buf[0];
}

/**
 * Index of the first NaN or ±Inf element of `bytes` stored as `dtype` (F32, F16, BF16, F64), or -1; -1 for
 * integer dtypes. Checks the exponent bits, so it sees exactly what a reader of the file would get.
 */
export function firstNonFinite(bytes: Uint8Array, dtype: string): number {
  const size = DTYPE_SIZES[dtype];
  if (size === undefined || !(dtype === "F32" || dtype === "F16" || dtype === "BF16" || dtype === "F64"))
    return -1;
  // typed views need aligned offsets: copy the rare unaligned buffer
  const b = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const n = Math.floor(b.byteLength / size);
  if (dtype === "F32") {
    const u = new Uint32Array(b.buffer, b.byteOffset, n);
    for (let i = 0; i < n; i++) if ((u[i] & 0x7f800000) === 0x7f800000) return i;
  } else if (dtype === "F64") {
    const u = new Uint32Array(b.buffer, b.byteOffset, n * 2);
    for (let i = 0; i < n; i++) if ((u[2 * i + 1] & 0x7ff00000) === 0x7ff00000) return i;
  } else {
    const mask = dtype === "F16" ? 0x7c00 : 0x7f80;
    const u = new Uint16Array(b.buffer, b.byteOffset, n);
    for (let i = 0; i < n; i++) if ((u[i] & mask) === mask) return i;
  }
  return -1;
}

/**
 * `config` with its dtype keys set for weights stored as `d`: transformers ≥ 4.56 reads `dtype`, older
 * versions `torch_dtype`, so both are written and they always agree with the tensors (a stale `dtype` made
 * transformers load a float32 fine-tune in bfloat16).
 */
export function withConfigDtype(config: Record<string, unknown>, d: DType): Record<string, unknown> {
  const name = torchDtypeName(d);
  return { ...config, dtype: name, torch_dtype: name };
}
