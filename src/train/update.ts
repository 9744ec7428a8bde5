/**
 * The update (stage 5 of a GRPO step, and SFT's step): log-probs of the reference and sampling policies,
 * `num_iterations` passes of micro-batched forward/backward with gradients accumulated, then one AdamW
 * update per pass through `applyUpdate` — the non-finite guard, learning-rate schedule and gradient
 * clipping that GRPO and SFT share.
 */
import { float32Matmuls, type Array as JArray, jit, numpy as np, tree } from "../runtime/jax.ts";
import { TtrlError } from "../util/errors.ts";
import { type GrpoSeq, grpoMicroBatches, type PackedBatch, type PackedPrefixBatch } from "./batch.ts";
import type { GrpoConfig } from "./config.ts";
import { type LossAux, type LossBatch, makeGrpoLoss, rowWeights } from "./loss.ts";
import {
  type AdamW,
  clipCoefficient,
  GradAccumulator,
  globalNorm,
  learningRate,
  type Params,
  type SchedulerType,
} from "./optim.ts";
import type { Policy, PrefixInputs } from "./policy.ts";
import { latestCheckpoint } from "./state.ts";

/** The optimisation settings GRPO and SFT share. */
export interface UpdateSettings {
  learning_rate: number;
  lr_scheduler_type: SchedulerType;
  warmup_steps: number;
  warmup_ratio: number;
  max_grad_norm: number;
}

/**
 * One optimizer update with accumulated `grads` (consumed) and their summed `loss`: stops with an error
 * naming the step and the last good checkpoint when the loss or the gradient norm is not finite (nothing is
 * saved), else steps AdamW at the scheduled learning rate with global-norm clipping. `params` is consumed.
 */
export async function applyUpdate(
  opt: AdamW,
  params: Params,
  grads: Params,
  loss: number,
  s: UpdateSettings,
  at: { step: number; totalOptSteps: number; outDir: string },
): Promise<{ params: Params; lr: number; gradNorm: number }> {
  const gradNorm = await globalNorm(grads);
  if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
    tree.dispose(grads);
    const [what, value] = Number.isFinite(loss) ? ["gradient norm", gradNorm] : ["loss", loss];
    throw new TtrlError(
      `non-finite ${what} (${value}) at step ${at.step + 1}; stopped without saving. Last good checkpoint: ${latestCheckpoint(at.outDir) ?? "none (no checkpoint was written yet)"}`,
    );
  }
  const lr = learningRate(opt.t, {
    type: s.lr_scheduler_type,
    lr: s.learning_rate,
    totalSteps: at.totalOptSteps,
    warmupSteps: s.warmup_steps,
    warmupRatio: s.warmup_ratio,
  });
  const next = await opt.step(params, grads, lr, clipCoefficient(gradNorm, s.max_grad_norm));
  return { params: next, lr, gradNorm };
}

/** GRPO's compiled functions for one run: the loss's value-and-grad and the log-prob forwards. */
export interface GrpoFunctions {
  loss: ReturnType<typeof makeGrpoLoss>;
  forward: (p: Params, ids: JArray, targets: JArray) => JArray;
  prefixForward: ((p: Params, inputs: PrefixInputs) => JArray) | null;
  dispose(): void;
}

export function compileGrpo(policy: Policy, c: GrpoConfig): GrpoFunctions {
  const loss = makeGrpoLoss(policy.logprobs, {
    epsilonLow: c.epsilon,
    epsilonHigh: c.epsilon_high ?? c.epsilon,
    beta: c.beta,
    useOld: c.num_iterations > 1,
    prefixLogprobs: policy.prefix?.logprobs,
  });
  // The reference and old-policy log-probs meet the loss's in the ratio and the KL: traced like the loss,
  // with float32 matmuls (--compute-dtype float16 speeds up sampling, not the update; see float32Matmuls).
  const forward = jit((p: Params, ids: JArray, targets: JArray) =>
    float32Matmuls(() => policy.logprobs(p, ids, targets)),
  );
  const prefix = policy.prefix;
  const prefixForward = prefix
    ? jit((p: Params, inputs: PrefixInputs) => float32Matmuls(() => prefix.logprobs(p, inputs)))
    : null;
  return {
    loss,
    forward: forward as unknown as GrpoFunctions["forward"],
    prefixForward: prefixForward as unknown as GrpoFunctions["prefixForward"],
    dispose() {
      loss.dispose();
      forward.dispose();
      prefixForward?.dispose();
    },
  };
}

/** What `update` reads and writes: the run's settings, policy, weights (replaced) and optimizer. */
export interface UpdateContext {
  c: GrpoConfig;
  policy: Policy;
  params: Params;
  opt: AdamW;
  refParams: Params | null;
  fns: GrpoFunctions;
  /** Rows per micro-batch wanted (fitted to memory by grpoMicroBatches). */
  micro: number;
  /** Kept completions per prompt. */
  M: number;
  totalOptSteps: number;
  outDir: string;
}

export interface UpdateResult {
  /** Sums over the step's micro-batches of the last pass. */
  loss: number;
  klSum: number;
  lowSum: number;
  highSum: number;
  lr: number;
  gradNorm: number;
  /** Trained completion tokens of the step. */
  totalTokens: number;
  /** Seconds for the reference / old log-probs and for the updates. */
  tReference: number;
  tUpdate: number;
}

/** Stage 5: `num_iterations` AdamW updates on the step's sequences; `ctx.params` is replaced. */
export async function update(ctx: UpdateContext, seqs: GrpoSeq[], step: number): Promise<UpdateResult> {
  const { c, policy, fns } = ctx;
  const totalTokens = seqs.reduce((a, s) => a + (s.train ? s.completion.length : 0), 0);
  const { chunks, packed } = grpoMicroBatches(seqs, {
    micro: ctx.micro,
    M: ctx.M,
    keepZero: c.loss_type === "bnpo",
    beta: c.beta,
    prefix: fns.prefixForward !== null,
    policy,
  });
  const runForward = (p: Params, pb: PackedBatch | PackedPrefixBatch): JArray =>
    "Tc" in pb
      ? (fns.prefixForward as NonNullable<GrpoFunctions["prefixForward"]>)(
          p,
          policy.prefix?.inputs(pb) as PrefixInputs,
        )
      : fns.forward(p, ...idsArrays(pb));

  // Reference (beta > 0) and sampling-policy (num_iterations > 1) log-probs.
  const t1 = performance.now();
  const refLp: Float32Array[] = [];
  if (ctx.refParams)
    for (const pb of packed)
      refLp.push(new Float32Array(await runForward(tree.ref(ctx.refParams), pb).data()));
  const oldLp: Float32Array[] = [];
  if (c.num_iterations > 1)
    for (const pb of packed) oldLp.push(new Float32Array(await runForward(tree.ref(ctx.params), pb).data()));
  const tReference = (performance.now() - t1) / 1000;

  const t2 = performance.now();
  const r = { loss: 0, klSum: 0, lowSum: 0, highSum: 0, lr: 0, gradNorm: 0 };
  for (let it = 0; it < c.num_iterations; it++) {
    const acc = new GradAccumulator();
    r.loss = 0;
    r.klSum = 0;
    r.lowSum = 0;
    r.highSum = 0;
    for (let bi = 0; bi < packed.length; bi++) {
      const pb = packed[bi];
      const ch = chunks[bi];
      const microTokens = pb.lengths.reduce((a, b) => a + b, 0);
      const w = rowWeights(c.loss_type, pb.lengths, {
        numSeqs: seqs.length,
        totalTokens,
        maxCompletionLength: c.max_completion_length,
        numMicro: packed.length,
        microTokens,
      }).map((x, row) => (row < ch.length ? x : 0));
      const adv = new Float32Array(pb.B);
      ch.forEach((s, row) => {
        adv[row] = s.adv;
      });
      const T = "Tc" in pb ? pb.Tc : pb.T;
      const batch: LossBatch = {
        mask: np.array(pb.mask).reshape([pb.B, T]),
        weight: np.array(new Float32Array(w)).reshape([pb.B, 1]),
        adv: np.array(adv).reshape([pb.B, 1]),
      };
      if ("Tc" in pb) batch.inputs = policy.prefix?.inputs(pb);
      else [batch.ids, batch.targets] = idsArrays(pb);
      if (ctx.refParams) batch.ref = np.array(refLp[bi]).reshape([pb.B, T]);
      if (c.num_iterations > 1) batch.old = np.array(oldLp[bi]).reshape([pb.B, T]);
      const [[l, aux], grads] = fns.loss(tree.ref(ctx.params), batch) as unknown as [
        [JArray, LossAux],
        Params,
      ];
      r.loss += (await l.data())[0];
      r.klSum += (await aux.klSum.data())[0];
      r.lowSum += (await aux.lowSum.data())[0];
      r.highSum += (await aux.highSum.data())[0];
      await acc.add(grads);
    }
    const grads = acc.count > 0 ? acc.take() : zerosLike(ctx.params);
    const u = await applyUpdate(ctx.opt, ctx.params, grads, r.loss, c, {
      step,
      totalOptSteps: ctx.totalOptSteps,
      outDir: ctx.outDir,
    });
    ctx.params = u.params;
    r.lr = u.lr;
    r.gradNorm = u.gradNorm;
  }
  return { ...r, totalTokens, tReference, tUpdate: (performance.now() - t2) / 1000 };
}

export function idsArrays(pb: PackedBatch): [JArray, JArray] {
  return [
    np.array(pb.ids, { dtype: np.int32 }).reshape([pb.B, pb.T]),
    np.array(pb.targets, { dtype: np.int32 }).reshape([pb.B, pb.T]),
  ];
}

function zerosLike(p: Params): Params {
  const out: Params = {};
  for (const [k, v] of Object.entries(p)) out[k] = np.zeros(v.shape);
  return out;
}
