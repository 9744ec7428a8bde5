/**
 * GRPO's advantages and objective (stages 3 and 5 of a step), as pure pieces tested against hand-computed
 * values: group-relative advantages (TRL's scale_rewards), per-row weights for the grpo / dr_grpo / dapo /
 * bnpo aggregations, and the clipped importance-ratio loss with an optional k3 KL to a frozen reference.
 */
import { type Array as JArray, jit, lax, numpy as np, valueAndGrad } from "../runtime/jax.ts";
import type { LossType, ScaleRewards } from "./config.ts";
import type { Params } from "./optim.ts";
import type { Policy, PrefixInputs } from "./policy.ts";
import type { ScoredGroup } from "./score.ts";

/** Sample standard deviation with Bessel's correction (torch.std); NaN for fewer than 2 values. */
export function stdUnbiased(xs: number[]): number {
  if (xs.length < 2) return Number.NaN;
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1));
}

/**
 * TRL's advantages: reward minus its group's mean, divided by (std + 1e-4) where std is the group's
 * (`group`) or the whole batch's (`batch`) unbiased std; `none` only centres. Returns one array per group
 * and, per group, whether its reward std is zero.
 */
export function computeAdvantages(
  groups: number[][],
  scale: ScaleRewards,
): { advantages: number[][]; zeroStd: boolean[] } {
  const all = groups.flat();
  const batchStd = all.length > 1 ? stdUnbiased(all) : 0;
  const advantages: number[][] = [];
  const zeroStd: boolean[] = [];
  for (const g of groups) {
    const mean = g.reduce((a, b) => a + b, 0) / g.length;
    const gStd = g.length > 1 ? stdUnbiased(g) : 0;
    const std = scale === "batch" ? batchStd : gStd;
    zeroStd.push(Math.abs(std) < 1e-8);
    advantages.push(g.map((r) => (scale === "none" ? r - mean : (r - mean) / (std + 1e-4))));
  }
  return { advantages, zeroStd };
}

/** Stage 3: advantages of the kept completions of each scored group (see computeAdvantages). */
export function advantages(
  scored: ScoredGroup[],
  scale: ScaleRewards,
): { advantages: number[][]; zeroStd: boolean[] } {
  return computeAdvantages(
    scored.map((g) => g.kept.map((i) => g.rewards[i])),
    scale,
  );
}

/**
 * Per-row weights that turn Σ(per-token loss × mask × weight) into TRL's aggregation over one optimizer
 * step of `numSeqs` sequences split into micro-batches: grpo = mean over sequences of the per-sequence token
 * mean; dr_grpo = Σ / (numSeqs × max_completion_length); dapo = Σ / (trained tokens in the step); bnpo =
 * per micro-batch Σ / tokens in it, averaged over the `numMicro` micro-batches.
 */
export function rowWeights(
  lossType: LossType,
  lengths: number[],
  ctx: {
    numSeqs: number;
    totalTokens: number;
    maxCompletionLength: number;
    numMicro: number;
    microTokens: number;
  },
): number[] {
  return lengths.map((len) => {
    switch (lossType) {
      case "grpo":
        return 1 / (Math.max(1, len) * ctx.numSeqs);
      case "dr_grpo":
        return 1 / (ctx.numSeqs * ctx.maxCompletionLength);
      case "dapo":
        return 1 / Math.max(1, ctx.totalTokens);
      default:
        return 1 / (Math.max(1, ctx.microTokens) * ctx.numMicro);
    }
  });
}

export type LossBatch = {
  /** [B,T] inputs and targets for `logprobs`, or `inputs` for the policy's shared-prompt log-probs. */
  ids?: JArray;
  targets?: JArray;
  inputs?: PrefixInputs;
  mask: JArray;
  /** [B,1] row weights from `rowWeights`. */
  weight: JArray;
  /** [B,1] advantages. */
  adv: JArray;
  /** [B,T] log-probs of the sampling policy (only when num_iterations > 1). */
  old?: JArray;
  /** [B,T] reference log-probs (only when beta > 0). */
  ref?: JArray;
};

export type LossAux = {
  klSum: JArray;
  lowSum: JArray;
  highSum: JArray;
};

/**
 * The GRPO objective for one micro-batch as a jitted value-and-grad: returns [[loss, aux], grads].
 * Per token: ratio r = exp(logp − old), loss = −min(r·A, clip(r, 1−ε_low, 1+ε_high)·A) + β·k3, where
 * k3 = exp(ref − logp) − (ref − logp) − 1; summed with mask × row weight. With num_iterations = 1 the old
 * log-probs are the current ones without gradient (ratio 1), as in TRL.
 */
export function makeGrpoLoss(
  logprobs: Policy["logprobs"],
  opts: {
    epsilonLow: number;
    epsilonHigh: number;
    beta: number;
    useOld: boolean;
    /** Log-probs of batches that carry `inputs` (Policy.prefix.logprobs). */
    prefixLogprobs?: (params: Params, inputs: PrefixInputs) => JArray;
  },
) {
  const { epsilonLow, epsilonHigh, beta, useOld } = opts;
  const f = (params: Params, b: LossBatch): [JArray, LossAux] => {
    const logp =
      b.inputs && opts.prefixLogprobs
        ? opts.prefixLogprobs(params, b.inputs)
        : logprobs(params, b.ids as JArray, b.targets as JArray);
    const old = useOld ? (b.old as JArray) : lax.stopGradient(logp.ref);
    const coef1 = np.exp(logp.ref.sub(old));
    const coef2 = np.clip(coef1.ref, 1 - epsilonLow, 1 + epsilonHigh);
    let perTok = np.minimum(coef1.ref.mul(b.adv.ref), coef2.mul(b.adv.ref)).mul(-1);
    let klSum: JArray;
    if (beta !== 0) {
      const d = (b.ref as JArray).sub(logp);
      const kl = np.exp(d.ref).sub(d).sub(1);
      klSum = np.sum(lax.stopGradient(kl.ref).mul(b.mask.ref));
      perTok = perTok.add(kl.mul(beta));
    } else {
      logp.dispose();
      if (b.ref) b.ref.dispose();
      klSum = np.zeros([]);
    }
    const sg = lax.stopGradient(coef1);
    const low = np
      .less(sg.ref, 1 - epsilonLow)
      .astype(np.float32)
      .mul(np.less(b.adv.ref, 0).astype(np.float32));
    const high = np
      .greater(sg, 1 + epsilonHigh)
      .astype(np.float32)
      .mul(np.greater(b.adv, 0).astype(np.float32));
    const lowSum = np.sum(low.mul(b.mask.ref));
    const highSum = np.sum(high.mul(b.mask.ref));
    const loss = np.sum(perTok.mul(b.mask).mul(b.weight));
    return [loss, { klSum, lowSum, highSum }];
  };
  return jit(valueAndGrad(f, { hasAux: true }));
}
