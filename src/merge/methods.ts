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

/**
 * mergekit's SLERP coefficients for one tensor, in float32: the tensors' norms (used only when > 1e-8) give
 * the cosine `dot`; |dot| > 0.9995 → lerp (1−t, t); else θ = acos(dot), s0 = sin((1−t)θ)/sin θ,
 * s1 = sin(tθ)/sin θ.
 */
export function slerpCoefficients(
  t: number,
  sumAB: number,
  normA: number,
  normB: number,
): { c0: number; c1: number; dot: number; lerp: boolean } {
  const t32 = fr(t);
  let na = fr(normA);
  let nb = fr(normB);
  if (!(na > 1e-8)) na = 1;
  if (!(nb > 1e-8)) nb = 1;
  let dot = fr(sumAB / na / nb);
  if (dot > 1) dot = 1;
  if (dot < -1) dot = -1;
  if (Math.abs(dot) > 0.9995 || Number.isNaN(dot)) return { c0: fr(1 - t32), c1: t32, dot, lerp: true };
  const theta = fr(Math.acos(dot));
  const sinTheta = fr(Math.sin(theta));
  const c0 = fr(fr(Math.sin(fr(fr(1 - t32) * theta))) / sinTheta);
  const c1 = fr(fr(Math.sin(fr(t32 * theta))) / sinTheta);
  return { c0, c1, dot, lerp: false };
}

/**
 * The bf16 → bf16 SLERP kernel (the seed's case), as two self-contained passes over an element range (they
 * also run in worker threads, from their source text: no references outside the function bodies).
 * Pass 1 sums a², b², a·b in float64; pass 2 combines in float32 and rounds to bf16 (NaN → 0x7FC0).
 */
export function slerpBf16Pass1(ha: Uint16Array, hb: Uint16Array, start: number, end: number): number[] {
  const chunk = 1 << 16;
  const xa = new Float32Array(chunk);
  const xb = new Float32Array(chunk);
  const ua = new Uint32Array(xa.buffer);
  const ub = new Uint32Array(xb.buffer);
  let p0 = 0;
  let q0 = 0;
  let r0 = 0;
  let p1 = 0;
  let q1 = 0;
  let r1 = 0;
  for (let s = start; s < end; s += chunk) {
    const m = Math.min(chunk, end - s);
    const ca = ha.subarray(s, s + m);
    const cb = hb.subarray(s, s + m);
    let i = 0;
    for (; i + 1 < m; i += 2) {
      ua[i] = ca[i] << 16;
      ub[i] = cb[i] << 16;
      ua[i + 1] = ca[i + 1] << 16;
      ub[i + 1] = cb[i + 1] << 16;
      const x0 = xa[i];
      const y0 = xb[i];
      const x1 = xa[i + 1];
      const y1 = xb[i + 1];
      p0 += x0 * x0;
      q0 += y0 * y0;
      r0 += x0 * y0;
      p1 += x1 * x1;
      q1 += y1 * y1;
      r1 += x1 * y1;
    }
    for (; i < m; i++) {
      ua[i] = ca[i] << 16;
      ub[i] = cb[i] << 16;
      const x = xa[i];
      const y = xb[i];
      p0 += x * x;
      q0 += y * y;
      r0 += x * y;
    }
  }
  return [p0 + p1, q0 + q1, r0 + r1];
}

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

function slerpBf16(ha: Uint16Array, hb: Uint16Array, t: number, dst: Uint16Array): void {
  const [p, q, r] = slerpBf16Pass1(ha, hb, 0, ha.length);
  const { c0, c1 } = slerpCoefficients(t, r, Math.sqrt(p), Math.sqrt(q));
  slerpBf16Pass2(ha, hb, dst, 0, ha.length, c0, c1);
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
  if (isBf16Slerp(a, b, work, out)) {
    const dst = into ?? outBytes(n, out);
    const h = (x: Uint8Array) => new Uint16Array(x.buffer, x.byteOffset, n);
    slerpBf16(h(a.raw), h(b.raw), t, h(dst));
    return dst;
  }
  const xa = new Float32Array(Math.min(CHUNK, n));
  const xb = new Float32Array(Math.min(CHUNK, n));
  let saa = 0;
  let sbb = 0;
  let sab = 0;
  for (let s = 0; s < n; s += CHUNK) {
    const m = Math.min(CHUNK, n - s);
    const ca = loadChunk(a, s, m, work, xa);
    const cb = loadChunk(b, s, m, work, xb);
    let p = 0;
    let q = 0;
    let r = 0;
    for (let i = 0; i < m; i++) {
      const x = ca[i];
      const y = cb[i];
      p += x * x;
      q += y * y;
      r += x * y;
    }
    saa += p;
    sbb += q;
    sab += r;
  }
  const { c0, c1 } = slerpCoefficients(t, sab, Math.sqrt(saa), Math.sqrt(sbb));
  const dst = into ?? outBytes(n, out);
  for (let s = 0; s < n; s += CHUNK) {
    const m = Math.min(CHUNK, n - s);
    const ca = loadChunk(a, s, m, work, xa);
    const cb = loadChunk(b, s, m, work, xb);
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
      for (const d of deltas) sw += d[i];
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
      divisor[i] = div === 0 ? 1 : div;
    }
    roundWork(mixed, work);
    if (o.normalize) {
      for (let i = 0; i < n; i++) mixed[i] = mixed[i] / divisor[i];
      roundWork(mixed, work);
    }
  } else {
    for (const d of deltas) for (let i = 0; i < n; i++) mixed[i] = mixed[i] + d[i];
    roundWork(mixed, work);
    let div = 0;
    for (const x of w) div = fr(div + x);
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
