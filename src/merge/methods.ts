/**
 * Merge methods with mergekit's math, in float32 exactly where mergekit computes in float32.
 *
 * Inputs are tensors as stored (raw bytes and dtype); `work` is the dtype the inputs are brought to at load
 * time (the config's `dtype`, else the promoted input dtype); the result is rounded to `work` and then
 * encoded in `out` (`out_dtype`, else `work`).
 *
 * slerp, linear: processed in chunks (no float32 copy of whole tensors). Task-arithmetic methods (which
 * need whole-tensor statistics such as top-k): whole tensors in float32.
 */

import { availableParallelism } from "node:os";
import { bf16ToF32, type DType, f16ToF32, f32ToBf16, f32ToF16, roundToDtypeInPlace } from "../io/dtype.ts";
import { Rng } from "../util/rng.ts";
import type { ParamSpec } from "./params.ts";

export interface MethodSpec {
  name: string;
  prettyName: string;
  referenceUrl: string;
  params: ParamSpec[];
  baseRequired: boolean;
  minInputs: number;
  maxInputs?: number;
}

const taParams = (normalize: boolean, rescale: boolean): ParamSpec[] => [
  { name: "int8_mask", kind: "bool", scope: "shared", default: false },
  { name: "normalize", kind: "bool", scope: "shared", default: normalize },
  { name: "rescale", kind: "bool", scope: "shared", default: rescale },
  { name: "lambda", kind: "float", scope: "shared", default: 1 },
  { name: "weight", kind: "float", scope: "nonBase" },
  { name: "density", kind: "float", scope: "nonBase", default: 1, min: 0, max: 1 },
];

export const METHODS: Record<string, MethodSpec> = {
  slerp: {
    name: "slerp",
    prettyName: "SLERP",
    referenceUrl: "https://en.wikipedia.org/wiki/Slerp",
    params: [{ name: "t", kind: "float", scope: "shared", min: 0, max: 1 }],
    baseRequired: true,
    minInputs: 2,
    maxInputs: 2,
  },
  linear: {
    name: "linear",
    prettyName: "Linear",
    referenceUrl: "https://arxiv.org/abs/2203.05482",
    params: [
      { name: "weight", kind: "float", scope: "input" },
      { name: "normalize", kind: "bool", scope: "shared", default: true },
    ],
    baseRequired: false,
    minInputs: 1,
  },
  task_arithmetic: {
    name: "task_arithmetic",
    prettyName: "Task Arithmetic",
    referenceUrl: "https://arxiv.org/abs/2212.04089",
    params: taParams(false, false),
    baseRequired: true,
    minInputs: 1,
  },
  ties: {
    name: "ties",
    prettyName: "TIES",
    referenceUrl: "https://arxiv.org/abs/2306.01708",
    params: taParams(true, false),
    baseRequired: true,
    minInputs: 1,
  },
  dare_ties: {
    name: "dare_ties",
    prettyName: "DARE TIES",
    referenceUrl: "https://arxiv.org/abs/2311.03099",
    params: taParams(false, true),
    baseRequired: true,
    minInputs: 1,
  },
  dare_linear: {
    name: "dare_linear",
    prettyName: "Linear DARE",
    referenceUrl: "https://arxiv.org/abs/2311.03099",
    params: taParams(false, true),
    baseRequired: true,
    minInputs: 1,
  },
};

/** Chunk length (elements) of the streaming kernels. */
const CHUNK = 1 << 16;

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

function outBytes(n: number, out: DType): Uint8Array {
  return new Uint8Array(n * (out === "F32" ? 4 : 2));
}

const fr = Math.fround;

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);
/** The next float32 after x (x a finite float32), toward +∞ (`up`) or −∞. */
function nextF32(x: number, up: boolean): number {
  if (x === 0) return up ? 1.401298464324817e-45 : -1.401298464324817e-45;
  f32Scratch[0] = x;
  u32Scratch[0] += x > 0 === up ? 1 : -1;
  return f32Scratch[0];
}

/** Correctly rounded float32 a·b + c (a fused multiply-add; a, b, c float32). */
export function fma32(a: number, b: number, c: number): number {
  const p = a * b; // exact in float64: 24 + 24 bits
  const s = p + c;
  const bb = s - p;
  const err = p - (s - bb) + (c - bb); // s + err = p + c exactly (TwoSum)
  const r = fr(s);
  if (err === 0 || r === s || !Number.isFinite(s)) return r;
  // rounding twice (to float64, then float32) only errs when s lands exactly halfway between two float32s
  const other = nextF32(r, r < s);
  if ((r + other) / 2 !== s) return r;
  return err > 0 ? Math.max(r, other) : Math.min(r, other);
}

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
 * mergekit's SLERP statistics, emulated operation by operation in float32. mergekit (0.1.5, the version
 * the parity fixtures and the benchmark run) computes, per tensor flattened to one row of n elements, in
 * torch on the CPU:
 *   norm = vector_norm(stack([vector_norm(chunk) for each chunk of 2^20 elements]))   (then 1 if ≤ 1e-8)
 *   dot  = stack([(chunk_a / norm_a * chunk_b / norm_b).sum() for each chunk]).sum()
 * with torch's CPU kernels for AVX2 machines: `vector_norm` is the 8-lane lastdim kernel (`torchSquares`),
 * `sum` is `cascade_sum` (`torchSum`); a sum over ≥ 2^15 elements is split by `at::parallel_for` into
 * contiguous parts, one per intra-op thread, each summed alone, then the per-thread results summed.
 * The thread count is torch's (`torch.get_num_threads()`, the core count by default): `PEER_THREADS`.
 */
export const TORCH_CHUNK = 1 << 20;
const GRAIN = 32768;

/** Intra-op threads of the emulated torch (TTRL_MERGEKIT_THREADS, else this machine's core count). */
export function peerThreads(): number {
  const v = Number(process.env.TTRL_MERGEKIT_THREADS);
  if (Number.isInteger(v) && v >= 1) return v;
  return Math.max(1, availableParallelism());
}

/** torch's 8-lane `vector_norm` lastdim kernel: Σx² over x[start, start+n) (float32 values). */
export function torchSquares(x: Float32Array, start: number, n: number): number {
  const lanes = new Float32Array(8);
  const m = n - (n % 8);
  for (let i = 0; i < m; i += 8) {
    for (let k = 0; k < 8; k++) {
      const v = x[start + i + k];
      lanes[k] = lanes[k] + fr(v * v);
    }
  }
  let s = lanes[0];
  for (let k = 1; k < 8; k++) s = fr(s + lanes[k]);
  for (let i = m; i < n; i++) {
    const v = x[start + i];
    s = fr(s + fr(v * v));
  }
  return s;
}

function ceilLog2(x: number): number {
  return x <= 2 ? 1 : Math.floor(Math.log2(x - 1)) + 1;
}

/** The level power of torch's `multi_row_sum` for `rows` rows. */
export function cascadeLevelPower(rows: number): number {
  return Math.max(4, Math.floor(ceilLog2(rows) / 4));
}

/** torch's `cascade_sum` of p[start, start+n) (float32), as one call of the reduction loop, plus 0. */
export function torchSum(p: Float32Array, start: number, n: number): number {
  if (n < 8) {
    // scalar_inner_sum: row_sum<float> with ilp 4 over rows of 4 scalars
    const part = [0, 0, 0, 0];
    const rows = n >> 2;
    for (let k = 0; k < 4 && rows > 0; k++) part[k] = fr(part[k] + p[start + k]);
    for (let i = rows * 4; i < n; i++) part[0] = fr(part[0] + p[start + i]);
    for (let k = 1; k < 4; k++) part[0] = fr(part[0] + part[k]);
    return fr(0 + part[0]);
  }
  const vecs = n >> 3;
  const rows = vecs >> 2;
  const lp = cascadeLevelPower(rows);
  const step = 2 ** lp;
  const mask = step - 1;
  const acc = [0, 1, 2, 3].map(() => new Float32Array(32));
  let i = 0;
  while (i + step <= rows) {
    for (let j = 0; j < step; j++, i++) {
      const b = start + i * 32;
      for (let q = 0; q < 32; q++) acc[0][q] += p[b + q];
    }
    for (let j = 1; j < 4; j++) {
      for (let q = 0; q < 32; q++) {
        acc[j][q] += acc[j - 1][q];
        acc[j - 1][q] = 0;
      }
      if ((i & (mask * 2 ** (j * lp))) !== 0) break;
    }
  }
  for (; i < rows; i++) {
    const b = start + i * 32;
    for (let q = 0; q < 32; q++) acc[0][q] += p[b + q];
  }
  for (let j = 1; j < 4; j++) for (let q = 0; q < 32; q++) acc[0][q] += acc[j][q];
  const part = acc[0].subarray(0, 8);
  for (let v = rows * 4; v < vecs; v++) for (let l = 0; l < 8; l++) part[l] += p[start + v * 8 + l];
  for (let v = 1; v < 4; v++) for (let l = 0; l < 8; l++) part[l] += acc[0][v * 8 + l];
  let fa = 0;
  for (let k = vecs * 8; k < n; k++) fa = fr(fa + p[start + k]);
  for (let l = 0; l < 8; l++) fa = fr(fa + part[l]);
  return fa;
}

/** How torch's `parallel_for` splits a reduction of n elements over `threads` threads: [begin, end) parts. */
export function torchSplit(n: number, threads: number): [number, number][] {
  if (n < GRAIN || threads <= 1) return [[0, n]];
  const nt = Math.min(threads, Math.ceil(n / GRAIN));
  const cs = Math.ceil(n / nt);
  const parts: [number, number][] = [];
  for (let t = 0; t < nt; t++) if (t * cs < n) parts.push([t * cs, Math.min(n, (t + 1) * cs)]);
  return parts;
}

/** torch's `sum` of a contiguous row of n float32 values, given a summer of sub-ranges (two-pass when split). */
export function torchRowSum(n: number, threads: number, sumRange: (s: number, m: number) => number): number {
  const parts = torchSplit(n, threads);
  if (parts.length === 1 && (n < GRAIN || threads <= 1)) return sumRange(0, n);
  const buf = new Float32Array(threads);
  parts.forEach(([s, e], t) => {
    buf[t] = sumRange(s, e - s);
  });
  return torchSum(buf, 0, threads);
}

/**
 * torch's `vector_norm` of the chunk norms (a [K, 1, 1] stack): the same 8-lane kernel; its scalar tail
 * (`buffer[0] += x * x`, x² not exact here) is emulated unfused when K < 8 and fused (FMA) when K ≥ 8. That
 * rule is empirical: it reproduces torch 2.13's norm of every tensor of the benchmark (K = 1, 4, 11, 63),
 * where either choice alone fails on some; on random short float32 vectors it agrees ~98% of the time, so
 * torch's code path for this small reduction is not fully pinned down (see bench/RESULTS.md, merge).
 */
export function torchNormOf(v: Float32Array): number {
  const lanes = new Float32Array(8);
  const m = v.length - (v.length % 8);
  for (let i = 0; i < m; i += 8) for (let k = 0; k < 8; k++) lanes[k] = lanes[k] + fr(v[i + k] * v[i + k]);
  let s = lanes[0];
  for (let k = 1; k < 8; k++) s = fr(s + lanes[k]);
  const fused = v.length >= 8;
  for (let i = m; i < v.length; i++) s = fused ? fma32(v[i], v[i], s) : fr(s + fr(v[i] * v[i]));
  return fr(Math.sqrt(s));
}

/**
 * SLERP statistics of float32 vectors exactly as mergekit computes them (see above): returns the
 * coefficients. `a`, `b` are the inputs already brought to float32 (after rounding to the work dtype).
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

/** torch compares the float32 norm with the Python float 1e-8 (promoted: compared as float32). */
const EPS32 = fr(1e-8);

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

/** Linear merge: Σ wᵢ·xᵢ in float32 (in input order), divided by Σ wᵢ when `normalize`. */
export function linearTensor(
  inputs: StoredTensor[],
  weights: number[],
  normalize: boolean,
  work: DType,
  out: DType,
): Uint8Array {
  const n = numelOfStored(inputs[0]);
  const w = weights.map(fr);
  let denom = 0;
  for (const x of w) denom = fr(denom + x);
  const acc = new Float32Array(Math.min(CHUNK, n));
  const tmp = new Float32Array(Math.min(CHUNK, n));
  const dst = outBytes(n, out);
  for (let s = 0; s < n; s += CHUNK) {
    const m = Math.min(CHUNK, n - s);
    const ac = acc.length === m ? acc : acc.subarray(0, m);
    ac.fill(0);
    for (let k = 0; k < inputs.length; k++) {
      const x = loadChunk(inputs[k], s, m, work, tmp);
      const wk = w[k];
      for (let i = 0; i < m; i++) ac[i] = ac[i] + fr(x[i] * wk);
    }
    if (normalize) for (let i = 0; i < m; i++) ac[i] = ac[i] / denom;
    storeChunk(ac, work, out, dst, s);
  }
  return dst;
}

function roundWork(x: Float32Array, work: DType): Float32Array {
  return work === "F32" ? x : roundToDtypeInPlace(x, work);
}

/** Keep the `density` fraction of largest-magnitude entries (at least one), as mergekit's `magnitude`. */
function magnitudeMask(delta: Float32Array, density: number): Uint8Array | null {
  const n = delta.length;
  if (density >= 1) return null;
  const mask = new Uint8Array(n);
  if (density <= 0 || n === 0) return mask;
  const k = Math.max(1, Math.trunc(density * n));
  const idx = new Uint32Array(n).map((_, i) => i);
  const mag = new Float32Array(n);
  for (let i = 0; i < n; i++) mag[i] = Math.abs(delta[i]);
  idx.sort((i, j) => mag[j] - mag[i] || i - j);
  for (let i = 0; i < k; i++) mask[idx[i]] = 1;
  return mask;
}

/** A Bernoulli(density) keep-mask from a seeded generator (DARE). */
function randomMask(n: number, density: number, rng: Rng): Uint8Array | null {
  if (density >= 1) return null;
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) mask[i] = rng.next() < density ? 1 : 0;
  return mask;
}

function applyMask(
  delta: Float32Array,
  mask: Uint8Array | null,
  rescale: boolean,
  work: DType,
): Float32Array {
  if (!mask) return delta;
  let before = 0;
  let after = 0;
  for (let i = 0; i < delta.length; i++) {
    const a = Math.abs(delta[i]);
    before += a;
    if (mask[i]) after += a;
    else delta[i] = 0;
  }
  before = fr(before);
  after = fr(after);
  if (!rescale || before < 1e-7 || after < 1e-7) return delta;
  const scale = fr(before / after);
  for (let i = 0; i < delta.length; i++) delta[i] = delta[i] * scale;
  return roundWork(delta, work);
}

export interface TaskArithmeticOptions {
  method: "task_arithmetic" | "ties" | "dare_ties" | "dare_linear";
  weights: number[];
  densities: number[];
  normalize: boolean;
  rescale: boolean;
  lambda: number;
  /** Generator for DARE's random masks (forked per tensor by the caller). */
  rng?: Rng;
}

/** Task arithmetic and its sparsified / sign-consensus variants (TIES, DARE), computed in `work`. */
export function taskArithmeticTensor(
  base: StoredTensor,
  others: StoredTensor[],
  o: TaskArithmeticOptions,
  work: DType,
  out: DType,
): Uint8Array {
  const b = loadAll(base, work);
  const n = b.length;
  const dst = outBytes(n, out);
  if (others.length === 0) {
    storeChunk(b, work, out, dst, 0);
    return dst;
  }
  const sparsify = o.method === "ties" ? "magnitude" : o.method.startsWith("dare") ? "random" : null;
  const consensus = o.method === "ties" || o.method === "dare_ties";
  const w = o.weights.map((x) =>
    work === "F32" ? fr(x) : roundToDtypeInPlace(new Float32Array([x]), work)[0],
  );
  const deltas: Float32Array[] = others.map((src, k) => {
    const x = loadAll(src, work);
    for (let i = 0; i < n; i++) x[i] = x[i] - b[i];
    roundWork(x, work);
    if (sparsify) {
      const mask =
        sparsify === "magnitude"
          ? magnitudeMask(x, o.densities[k])
          : randomMask(n, o.densities[k], o.rng ?? new Rng(0));
      applyMask(x, mask, o.rescale, work);
    }
    const wk = w[k];
    for (let i = 0; i < n; i++) x[i] = x[i] * wk;
    return roundWork(x, work);
  });
  const mixed = new Float32Array(n);
  const tmp = new Float32Array(1);
  if (consensus) {
    const divisor = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let sw = 0;
      for (const d of deltas) sw = fr(sw + d[i]);
      tmp[0] = sw;
      if (work !== "F32") roundToDtypeInPlace(tmp, work);
      const majority = tmp[0] >= 0 ? 1 : -1;
      let acc = 0;
      let div = 0;
      for (let k = 0; k < deltas.length; k++) {
        const d = deltas[k][i];
        if (Math.sign(d) === majority) {
          acc = fr(acc + d);
          div = fr(div + w[k]);
        }
      }
      mixed[i] = acc;
      divisor[i] = div;
    }
    roundWork(mixed, work);
    // mergekit sums the agreeing weights in the merge dtype (one rounding of the float32 sum), then 0 → 1
    roundWork(divisor, work);
    for (let i = 0; i < n; i++) if (divisor[i] === 0) divisor[i] = 1;
    if (o.normalize) {
      for (let i = 0; i < n; i++) mixed[i] = mixed[i] / divisor[i];
      roundWork(mixed, work);
    }
  } else {
    for (const d of deltas) for (let i = 0; i < n; i++) mixed[i] = mixed[i] + d[i];
    roundWork(mixed, work);
    let div = 0;
    for (const x of w) div = fr(div + x);
    div = roundWork(new Float32Array([div]), work)[0]; // the weights' sum, in the merge dtype
    if (Math.abs(div) < 1e-8) div = 1;
    if (o.normalize) {
      for (let i = 0; i < n; i++) mixed[i] = mixed[i] / div;
      roundWork(mixed, work);
    }
  }
  if (o.lambda !== 1) {
    const l = fr(o.lambda);
    for (let i = 0; i < n; i++) mixed[i] = mixed[i] * l;
    roundWork(mixed, work);
  }
  for (let i = 0; i < n; i++) mixed[i] = b[i] + mixed[i];
  storeChunk(mixed, work, out, dst, 0);
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
