/** Small numeric helpers shared across layers. */

/** Smallest power of two ≥ n (1 for n ≤ 1): the batch-size buckets that keep jit's compiled shapes few. */
export function pow2(n: number): number {
  let b = 1;
  while (b < n) b *= 2;
  return b;
}
