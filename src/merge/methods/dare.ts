/**
 * DARE (drop and rescale): keep each task-vector entry with probability `density` (a seeded generator
 * forked per tensor, so a merge is reproducible), rescale the rest to keep the L1 norm; then mix by sign
 * consensus (`dare_ties`) or by plain sum (`dare_linear`), as in task_arithmetic.ts.
 */
import type { Rng } from "../../util/rng.ts";
import { type Sparsify, taParams, taskArithmeticMethod, variant } from "./task_arithmetic.ts";
import type { MergeMethod } from "./types.ts";

/** A Bernoulli(density) keep-mask drawn from `rng`. */
export function randomMask(n: number, density: number, rng: Rng): Uint8Array | null {
  if (density >= 1) return null;
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) mask[i] = rng.next() < density ? 1 : 0;
  return mask;
}

/** DARE's sparsifier: masks drawn one task vector after another from `rng`. */
export const dareSparsify =
  (rng: Rng): Sparsify =>
  (delta, density) =>
    randomMask(delta.length, density, rng);

/** DARE of one tensor: sign consensus for dare_ties, plain sum for dare_linear; masks drawn from `rng`. */
export const dareTensor = (rng: Rng, consensus: boolean) =>
  variant({ sparsify: dareSparsify(rng), consensus });

const dareSpec = (name: string, prettyName: string) => ({
  name,
  prettyName,
  referenceUrl: "https://arxiv.org/abs/2311.03099",
  params: taParams(false, true),
  baseRequired: true,
  minInputs: 1,
});

const perTensor = {
  sparsify: (job: { name: string }, ctx: { rng: Rng }) => dareSparsify(ctx.rng.fork(job.name)),
};

export const dareTies: MergeMethod = taskArithmeticMethod(dareSpec("dare_ties", "DARE TIES"), {
  consensus: true,
  ...perTensor,
});

export const dareLinear: MergeMethod = taskArithmeticMethod(dareSpec("dare_linear", "Linear DARE"), {
  consensus: false,
  ...perTensor,
});
