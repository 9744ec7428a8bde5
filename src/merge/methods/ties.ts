/**
 * TIES (trim, elect sign, merge): keep each task vector's `density` fraction of largest-magnitude entries,
 * then mix by sign consensus (task_arithmetic.ts). normalize defaults to true.
 */
import { taParams, taskArithmeticMethod, variant } from "./task_arithmetic.ts";
import type { MergeMethod } from "./types.ts";

/** Keep the `density` fraction of largest-magnitude entries (at least one), as mergekit's `magnitude`. */
export function magnitudeMask(delta: Float32Array, density: number): Uint8Array | null {
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

/** TIES of one tensor (base, the other inputs). */
export const tiesTensor = variant({ sparsify: magnitudeMask, consensus: true });

export const ties: MergeMethod = taskArithmeticMethod(
  {
    name: "ties",
    prettyName: "TIES",
    referenceUrl: "https://arxiv.org/abs/2306.01708",
    params: taParams(true, false),
    baseRequired: true,
    minInputs: 1,
  },
  { consensus: true, sparsify: () => magnitudeMask },
);
