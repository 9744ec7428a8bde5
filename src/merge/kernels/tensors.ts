/**
 * Tensors as stored (raw bytes and dtype) and the float32 views the merge methods compute on: `work` is the
 * dtype the inputs are brought to at load time (the config's `dtype`, else the promoted input dtype); a
 * result is rounded to `work` and then encoded in `out` (`out_dtype`, else `work`).
 */
import { bf16ToF32, type DType, f16ToF32, f32ToBf16, f32ToF16, roundToDtypeInPlace } from "../../io/dtype.ts";

/** Chunk length (elements) of the streaming kernels. */
export const CHUNK = 1 << 16;
export interface StoredTensor {
  raw: Uint8Array;
  dtype: DType;
}

const WIDTH: Record<DType, number> = { F32: 32, F16: 16, BF16: 16 };
/** Whether bringing `from` to `to` can change values (needs rounding). */
function narrows(from: DType, to: DType): boolean {
  return (
    from !== to &&
    (WIDTH[to] < WIDTH[from] || (from === "F16" && to === "BF16") || (from === "BF16" && to === "F16"))
  );
}

/** Elements [start, start+n) of a stored tensor as float32, rounded to `work`. */
export function loadChunk(
  src: StoredTensor,
  start: number,
  n: number,
  work: DType,
  out: Float32Array,
): Float32Array {
  const o = out.length === n ? out : out.subarray(0, n);
  const { raw, dtype } = src;
  if (dtype === "F32") {
    o.set(new Float32Array(raw.buffer, raw.byteOffset + start * 4, n));
  } else {
    const h = new Uint16Array(raw.buffer, raw.byteOffset + start * 2, n);
    if (dtype === "BF16") bf16ToF32(h, o);
    else f16ToF32(h, o);
  }
  if (narrows(dtype, work)) roundToDtypeInPlace(o, work);
  return o;
}

/** A whole stored tensor as float32, rounded to `work`. */
export function loadAll(src: StoredTensor, work: DType): Float32Array {
  const n = src.raw.byteLength / (src.dtype === "F32" ? 4 : 2);
  return loadChunk(src, 0, n, work, new Float32Array(n));
}

/** Round float32 values to `work`, then encode as `out` into `dst` at element `start`. */
export function storeChunk(x: Float32Array, work: DType, out: DType, dst: Uint8Array, start: number): void {
  if (work !== "F32" && !(work === out)) roundToDtypeInPlace(x, work);
  if (out === "F32") {
    new Float32Array(dst.buffer, dst.byteOffset + start * 4, x.length).set(x);
  } else {
    const h = new Uint16Array(dst.buffer, dst.byteOffset + start * 2, x.length);
    if (out === "BF16") f32ToBf16(x, h);
    else f32ToF16(x, h);
  }
}

export function numelOfStored(s: StoredTensor): number {
  return s.raw.byteLength / (s.dtype === "F32" ? 4 : 2);
}

export function outBytes(n: number, out: DType): Uint8Array {
  return new Uint8Array(n * (out === "F32" ? 4 : 2));
}

/** Round float32 values to `work` in place (nothing to do for F32). */
export function roundWork(x: Float32Array, work: DType): Float32Array {
  return work === "F32" ? x : roundToDtypeInPlace(x, work);
}

/** One float32 value rounded to `work`. */
export function roundScalar(x: number, work: DType): number {
  return roundWork(new Float32Array([x]), work)[0];
}
