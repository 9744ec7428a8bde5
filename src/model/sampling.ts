/** Token sampling from one row of logits (JS side): greedy, temperature, top-k, top-p. */
import type { Rng } from "../util/rng.ts";

export interface SampleParams {
  greedy: boolean;
  temperature: number;
  topK: number; // 0 = off
  topP: number; // 1 = off
}

/**
 * Pick a token from `logits[off .. off+V)`. Returns the token and its log-prob under the temperature-scaled
 * (untruncated) distribution, log softmax(logits / T) — temperature 1 when greedy. `scratch` has length ≥ V.
 */
export function sampleRow(
  logits: Float32Array,
  off: number,
  V: number,
  p: SampleParams,
  rng: Rng,
  scratch: Float64Array,
): { token: number; logprob: number } {
  const T = p.greedy || !(p.temperature > 0) ? 1 : p.temperature;
  let max = Number.NEGATIVE_INFINITY;
  let arg = 0;
  for (let i = 0; i < V; i++) {
    const x = logits[off + i];
    if (x > max) {
      max = x;
      arg = i;
    }
  }
  let z = 0;
  for (let i = 0; i < V; i++) {
    const e = Math.exp((logits[off + i] - max) / T);
    scratch[i] = e;
    z += e;
  }
  const logZ = Math.log(z);
  const lp = (i: number) => (logits[off + i] - max) / T - logZ;
  if (p.greedy || !(p.temperature > 0)) return { token: arg, logprob: lp(arg) };
  // Candidates: all tokens, or the top-k / nucleus subset (descending probability).
  const useK = p.topK > 0 && p.topK < V;
  const useP = p.topP > 0 && p.topP < 1;
  if (!useK && !useP) {
    let u = rng.next() * z;
    for (let i = 0; i < V; i++) {
      u -= scratch[i];
      if (u < 0) return { token: i, logprob: lp(i) };
    }
    return { token: arg, logprob: lp(arg) };
  }
  let idx = Array.from({ length: V }, (_, i) => i);
  idx.sort((a, b) => scratch[b] - scratch[a] || a - b);
  if (useK) idx = idx.slice(0, p.topK);
  if (useP) {
    let mass = 0;
    let n = 0;
    let total = 0;
    for (const i of idx) total += scratch[i];
    for (const i of idx) {
      mass += scratch[i];
      n++;
      if (mass >= p.topP * total) break;
    }
    idx = idx.slice(0, Math.max(1, n));
  }
  let sum = 0;
  for (const i of idx) sum += scratch[i];
  let u = rng.next() * sum;
  for (const i of idx) {
    u -= scratch[i];
    if (u < 0) return { token: i, logprob: lp(i) };
  }
  const last = idx[idx.length - 1];
  return { token: last, logprob: lp(last) };
}
