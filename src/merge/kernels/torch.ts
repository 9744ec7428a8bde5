/**
 * torch's CPU reduction order, emulated operation by operation in float32, so that statistics computed
 * here (SLERP's norms and cosine) are bit-identical to mergekit's. mergekit (0.1.5, the version the parity
 * fixtures and the benchmark run) reduces with torch's CPU kernels for AVX2 machines: `vector_norm` is the
 * 8-lane lastdim kernel (`torchSquares`), `sum` is `cascade_sum` (`torchSum`); a sum over ≥ 2^15 elements
 * is split by `at::parallel_for` into contiguous parts, one per intra-op thread, each summed alone, then the
 * per-thread results summed (`torchRowSum`). The thread count is torch's (`torch.get_num_threads()`, the
 * core count by default): `peerThreads`.
 */
import { availableParallelism } from "node:os";

export const fr = Math.fround;
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

/** mergekit's SLERP works on chunks of 2^20 elements of the flattened tensor. */
export const TORCH_CHUNK = 1 << 20;
/** `at::parallel_for`'s grain size for reductions. */
export const GRAIN = 32768;

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

/** Whether torch sums a row of n elements in two passes (per-thread parts, then their sum). */
export function torchTwoPass(n: number, threads: number): boolean {
  return n >= GRAIN && threads > 1;
}

/** How torch's `parallel_for` splits a reduction of n elements over `threads` threads: [begin, end) parts. */
export function torchSplit(n: number, threads: number): [number, number][] {
  if (!torchTwoPass(n, threads)) return [[0, n]];
  const nt = Math.min(threads, Math.ceil(n / GRAIN));
  const cs = Math.ceil(n / nt);
  const parts: [number, number][] = [];
  for (let t = 0; t < nt; t++) if (t * cs < n) parts.push([t * cs, Math.min(n, (t + 1) * cs)]);
  return parts;
}

/** torch's `sum` of a contiguous row of n float32 values, given a summer of sub-ranges (two-pass when split). */
export function torchRowSum(n: number, threads: number, sumRange: (s: number, m: number) => number): number {
  if (!torchTwoPass(n, threads)) return sumRange(0, n);
  const parts = torchSplit(n, threads);
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

/** torch compares a float32 norm with the Python float 1e-8 (promoted: compared as float32). */
export const EPS32 = fr(1e-8);
