/**
 * SLERP (spherical linear interpolation) of two models, with mergekit's statistics bit for bit: the norms and
 * the cosine are computed in float32 in torch's reduction order (../kernels/torch.ts). Both tensors are
 * loaded whole (the statistics need two passes over them); bf16 → bf16 merges run on the Wasm kernels and
 * worker threads (../kernels/workers.ts) over the inputs as read, without a float32 copy.
 */
import type { DType } from "../../io/dtype.ts";
import {
  CHUNK,
  loadAll,
  numelOfStored,
  outBytes,
  type StoredTensor,
  storeChunk,
} from "../kernels/tensors.ts";
import {
  EPS32,
  fr,
  peerThreads,
  TORCH_CHUNK,
  torchNormOf,
  torchRowSum,
  torchSquares,
  torchSum,
} from "../kernels/torch.ts";
import type { MergeMethod } from "./types.ts";

/**
 * mergekit's SLERP coefficients from the float32 cosine `dot` (already clamped to [-1, 1]): |dot| > 0.9995
 * → lerp (1−t, t); else θ = acos(dot), s0 = sin((1−t)θ)/sin θ, s1 = sin(tθ)/sin θ, every step in float32
 * (t is a float32 tensor in mergekit). A NaN dot gives NaN coefficients (torch does the same).
 */
export function coefficientsFromDot(
  t: number,
  dot: number,
): { c0: number; c1: number; dot: number; lerp: boolean } {
  const t32 = fr(t);
  if (Math.abs(dot) > 0.9995) return { c0: fr(1 - t32), c1: t32, dot, lerp: true };
  const theta = fr(Math.acos(dot));
  const sinTheta = fr(Math.sin(theta));
  const c0 = fr(fr(Math.sin(fr(fr(1 - t32) * theta))) / sinTheta);
  const c1 = fr(fr(Math.sin(fr(t32 * theta))) / sinTheta);
  return { c0, c1, dot, lerp: false };
}

/**
 * Coefficients from the raw statistics Σa·b and the two norms (each used only when > 1e-8), the cosine
 * rounded to float32 and clamped.
 */
export function slerpCoefficients(
  t: number,
  sumAB: number,
  normA: number,
  normB: number,
): { c0: number; c1: number; dot: number; lerp: boolean } {
  let na = fr(normA);
  let nb = fr(normB);
  if (!(na > EPS32)) na = 1;
  if (!(nb > EPS32)) nb = 1;
  let dot = fr(sumAB / na / nb);
  if (dot > 1) dot = 1;
  if (dot < -1) dot = -1;
  return coefficientsFromDot(t, dot);
}

/**
 * SLERP statistics of float32 vectors exactly as mergekit computes them, per tensor flattened to one row of
 * n elements, in torch on the CPU:
 *   norm = vector_norm(stack([vector_norm(chunk) for each chunk of 2^20 elements]))   (then 1 if ≤ 1e-8)
 *   dot  = stack([(chunk_a / norm_a * chunk_b / norm_b).sum() for each chunk]).sum()
 * `a`, `b` are the inputs already brought to float32 (after rounding to the work dtype).
 */
export function peerSlerpStats(
  a: Float32Array,
  b: Float32Array,
  threads = peerThreads(),
): { normA: number; normB: number; dot: number } {
  return peerSlerpStatsOf(
    a.length,
    (s, m) => a.subarray(s, s + m),
    (s, m) => b.subarray(s, s + m),
    threads,
  );
}

/**
 * The same statistics from chunk accessors: `chunkA(s, m)` gives elements [s, s+m) of a as float32 (valid
 * until the next call), so inputs in other forms (bf16) need only a chunk of float32 at a time.
 */
export function peerSlerpStatsOf(
  n: number,
  chunkA: (s: number, m: number) => Float32Array,
  chunkB: (s: number, m: number) => Float32Array,
  threads = peerThreads(),
): { normA: number; normB: number; dot: number } {
  const chunks = Math.max(1, Math.ceil(n / TORCH_CHUNK));
  const pa = new Float32Array(chunks);
  const pb = new Float32Array(chunks);
  for (let c = 0; c < chunks; c++) {
    const s = c * TORCH_CHUNK;
    const m = Math.min(TORCH_CHUNK, n - s);
    pa[c] = fr(Math.sqrt(torchSquares(chunkA(s, m), 0, m)));
    pb[c] = fr(Math.sqrt(torchSquares(chunkB(s, m), 0, m)));
  }
  let normA = torchNormOf(pa);
  let normB = torchNormOf(pb);
  if (!(normA > EPS32)) normA = 1;
  if (!(normB > EPS32)) normB = 1;
  const dots = new Float32Array(chunks);
  const prod = new Float32Array(Math.min(TORCH_CHUNK, n));
  for (let c = 0; c < chunks; c++) {
    const s = c * TORCH_CHUNK;
    const m = Math.min(TORCH_CHUNK, n - s);
    const xa = chunkA(s, m);
    const xb = chunkB(s, m);
    for (let i = 0; i < m; i++) prod[i] = fr(xa[i] / normA) * fr(xb[i] / normB);
    dots[c] = torchRowSum(m, threads, (s0, m0) => torchSum(prod, s0, m0));
  }
  let dot = torchSum(dots, 0, chunks);
  if (dot > 1) dot = 1;
  if (dot < -1) dot = -1;
  return { normA, normB, dot };
}

/**
 * The bf16 → bf16 output pass over an element range (the JavaScript twin of the `mix` kernel, used for the
 * < 8-element tails): c0·a + c1·b in float32, rounded to bf16 (NaN → 0x7FC0).
 */
export function slerpBf16Pass2(
  ha: Uint16Array,
  hb: Uint16Array,
  dst: Uint16Array,
  start: number,
  end: number,
  c0: number,
  c1: number,
): void {
  const chunk = 1 << 16;
  const f = Math.fround;
  const xa = new Float32Array(chunk);
  const xb = new Float32Array(chunk);
  const ua = new Uint32Array(xa.buffer);
  const ub = new Uint32Array(xb.buffer);
  for (let s = start; s < end; s += chunk) {
    const m = Math.min(chunk, end - s);
    const ca = ha.subarray(s, s + m);
    const cb = hb.subarray(s, s + m);
    const cd = dst.subarray(s, s + m);
    for (let i = 0; i < m; i++) {
      ua[i] = ca[i] << 16;
      ub[i] = cb[i] << 16;
      xa[i] = f(c0 * xa[i]) + f(c1 * xb[i]);
      const b = ua[i];
      cd[i] = (b & 0x7fffffff) > 0x7f800000 ? 0x7fc0 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
    }
  }
}

/** Whether `slerpTensor` takes the fused bf16 path for these dtypes. */
export function isBf16Slerp(a: StoredTensor, b: StoredTensor, work: DType, out: DType): boolean {
  return a.dtype === "BF16" && b.dtype === "BF16" && out === "BF16" && (work === "BF16" || work === "F32");
}

/** SLERP of two stored tensors (base `a`, other `b`) at `t`; returns the output bytes in `out`. */
export function slerpTensor(
  a: StoredTensor,
  b: StoredTensor,
  t: number,
  work: DType,
  out: DType,
  into?: Uint8Array,
): Uint8Array {
  const n = numelOfStored(a);
  const xa = loadAll(a, work);
  const xb = loadAll(b, work);
  const { dot } = peerSlerpStats(xa, xb);
  const { c0, c1 } = coefficientsFromDot(t, dot);
  const dst = into ?? outBytes(n, out);
  if (isBf16Slerp(a, b, work, out)) {
    const h = (x: Uint8Array) => new Uint16Array(x.buffer, x.byteOffset, n);
    slerpBf16Pass2(h(a.raw), h(b.raw), h(dst), 0, n, c0, c1);
    return dst;
  }
  for (let s = 0; s < n; s += CHUNK) {
    const m = Math.min(CHUNK, n - s);
    const ca = xa.subarray(s, s + m);
    const cb = xb.subarray(s, s + m);
    // float32: each product rounded, then the sum rounded (the Float32Array store rounds the exact sum)
    for (let i = 0; i < m; i++) ca[i] = fr(c0 * ca[i]) + fr(c1 * cb[i]);
    storeChunk(ca, work, out, dst, s);
  }
  return dst;
}

/** Convenience for tests: SLERP of float32 arrays (as F32 in and out). */
export function slerpF32(a: Float32Array, b: Float32Array, t: number): Float32Array {
  const wrap = (x: Float32Array): StoredTensor => ({
    raw: new Uint8Array(x.buffer, x.byteOffset, x.byteLength),
    dtype: "F32",
  });
  const r = slerpTensor(wrap(a), wrap(b), t, "F32", "F32");
  return new Float32Array(r.buffer, r.byteOffset, a.length);
}

export const slerp: MergeMethod = {
  name: "slerp",
  prettyName: "SLERP",
  referenceUrl: "https://en.wikipedia.org/wiki/Slerp",
  params: [{ name: "t", kind: "float", scope: "shared", min: 0, max: 1 }],
  baseRequired: true,
  minInputs: 2,
  maxInputs: 2,
  async merge(job, { pool, workers }) {
    const b = job.baseIndex;
    const [x, y] = [job.inputs[b], job.inputs[1 - b]];
    const t = job.shared.t as number;
    if (isBf16Slerp(x, y, job.work, job.out)) {
      const dst = pool.get(x.raw.byteLength);
      await workers.slerpBf16(x.raw, y.raw, t, dst);
      return dst;
    }
    return slerpTensor(x, y, t, job.work, job.out);
  },
};
