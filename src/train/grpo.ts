/**
 * GRPO (and TTRL: GRPO rewarded by the majority vote of the policy's own samples), following TRL's
 * GRPOTrainer: group-relative advantages, the clipped importance-ratio objective against the sampling
 * policy, an optional k3 KL to a frozen reference, and the grpo / dr_grpo / dapo / bnpo loss aggregations.
 *
 * One trainer step = P prompts from the seeded data order → N samples each → rewards on whole groups →
 * M ≤ N completions per prompt with advantages → `num_iterations` AdamW updates on those sequences
 * (micro-batched, gradients accumulated). Everything random is derived from (seed, step), so a resumed run
 * repeats exactly what the uninterrupted run would have done.
 */
import { appendFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type GradeOptions, graderFor } from "../answers/index.ts";
import { writeJsonAtomic } from "../io/atomic.ts";
import { renderPrompt } from "../prompts/index.ts";
import {
  accuracyReward,
  formatReward,
  majorityReward,
  type RewardFn,
  weightedRewards,
} from "../rewards/index.ts";
import { type Array as JArray, jit, lax, numpy as np, tree, valueAndGrad } from "../runtime/jax.ts";
import { TtrlError } from "../util/errors.ts";
import { createProgress } from "../util/progress.ts";
import { hashString, Rng } from "../util/rng.ts";
import {
  bucketLength,
  chunkByGroups,
  fitMicroBatch,
  fitPrefixMicroBatch,
  type PackedBatch,
  type PackedPrefixBatch,
  packPrefixSequences,
  packSequences,
  type SeqSpec,
} from "./batch.ts";
import { type GrpoConfig, type LossType, rewardFuncs, type ScaleRewards } from "./config.ts";
import { DataOrder, type TrainRow } from "./data.ts";
import {
  adamwFromSettings,
  clipCoefficient,
  GradAccumulator,
  globalNorm,
  learningRate,
  type Params,
} from "./optim.ts";
import type { Policy, PrefixInputs, Sample } from "./policy.ts";
import {
  latestCheckpoint,
  readOptimizer,
  readTrainerState,
  saveTrainingCheckpoint,
  type TrainerState,
  truncateLog,
} from "./state.ts";

// ---------------------------------------------------------------------------------------------------------
// Advantages and loss (pure pieces, tested against hand-computed values)

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

// ---------------------------------------------------------------------------------------------------------
// The trainer

export interface GrpoRunOptions {
  policy: Policy;
  rows: TrainRow[];
  config: GrpoConfig;
  outDir: string;
  /** Data file name for error messages. */
  dataFile?: string;
  resume?: boolean;
  /** Frozen reference weights for beta > 0 (default: the policy's weights at the start of training). */
  refParams?: Params;
  /** Stop (as if killed) after this many steps of this process, without the final save. For tests. */
  stopAfter?: number;
  /** Called after every step with its log line. */
  onStep?: (log: Record<string, unknown>) => void;
  progressLabel?: string;
  /** Replace the configured reward functions (tests use toy rewards). */
  reward?: ReturnType<typeof weightedRewards>;
}

export interface GrpoRunResult {
  params: Params;
  steps: number;
  finalDir: string | null;
  log: Record<string, unknown>[];
}

interface Seq {
  /** Index of the sequence's prompt in the step (its group). */
  group: number;
  prompt: number[];
  completion: number[];
  adv: number;
  train: boolean;
  truncated: boolean;
  old?: Float32Array;
  ref?: Float32Array;
}

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}

function std0(xs: number[]): number {
  const s = stdUnbiased(xs);
  return Number.isFinite(s) ? s : 0;
}

/** Total trainer steps of a run. */
export function totalSteps(c: GrpoConfig, nRows: number): number {
  if (c.max_steps > 0) return c.max_steps;
  return Math.max(1, Math.ceil((c.num_train_epochs * nRows) / c.prompts_per_step));
}

/** Errors before any work starts: empty data, missing labels for accuracy, prompts longer than the context. */
export function checkTrainInputs(
  rows: TrainRow[],
  c: GrpoConfig,
  policy: Policy,
  dataFile: string,
): { promptIds: number[][]; prompts: string[] } {
  if (rows.length === 0) throw new TtrlError(`${dataFile}: no training rows`);
  const funcs = rewardFuncs(c);
  if (funcs.includes("accuracy")) {
    const bad = rows.find((r) => r.answer === undefined || r.answer === null || r.answer === "");
    if (bad)
      throw new TtrlError(
        `${dataFile}:${bad.line}: row "${bad.id}" has no answer; --reward accuracy needs a label on every row (use --reward majority for unlabeled data)`,
      );
  }
  const prompts = rows.map((r) => renderPrompt(r.question, c.prompt_template, policy.tokenizer as never));
  const promptIds = prompts.map((p) => policy.tokenizer.encode(p, { addSpecialTokens: true }));
  promptIds.forEach((ids, i) => {
    if (ids.length + c.max_completion_length > policy.maxContext)
      throw new TtrlError(
        `${dataFile}:${rows[i].line}: prompt of row "${rows[i].id}" has ${ids.length} tokens; with max_completion_length ${c.max_completion_length} that exceeds the model's context of ${policy.maxContext}`,
      );
  });
  return { promptIds, prompts };
}

export function buildReward(c: GrpoConfig): ReturnType<typeof weightedRewards> {
  const g: GradeOptions = { format: c.answer_format, locale: c.locale };
  const funcs = rewardFuncs(c);
  const weights = c.reward_weights ?? funcs.map(() => 1);
  const make = (name: string): RewardFn => {
    if (name === "accuracy") return accuracyReward({ ...g, mode: c.reward_mode });
    if (name === "format") return formatReward({ ...g, mode: c.reward_mode });
    return majorityReward({
      ...g,
      mode: c.reward_mode,
      tie: c.tie,
      rewardedCount: c.rewarded_count ?? c.num_generations,
      rewardedPick: c.rewarded_pick,
    });
  };
  return weightedRewards(funcs.map((name, i) => ({ name, fn: make(name), weight: weights[i] })));
}

export function sampleSeed(seed: number, step: number, row: number): number {
  return hashString(`${seed}/sample/${step}/${row}`);
}

export async function trainGrpo(o: GrpoRunOptions): Promise<GrpoRunResult> {
  const c = o.config;
  const policy = o.policy;
  const dataFile = o.dataFile ?? c.data;
  const { promptIds, prompts } = checkTrainInputs(o.rows, c, policy, dataFile);
  const N = c.num_generations;
  const M = c.rewarded_count ?? N;
  const P = c.prompts_per_step;
  const steps = totalSteps(c, o.rows.length);
  const totalOptSteps = steps * c.num_iterations;
  const rowsPerStep = P * M;
  const micro =
    c.micro_batch_size > 0 ? c.micro_batch_size : Math.ceil(rowsPerStep / c.gradient_accumulation_steps);
  const order = new DataOrder(o.rows.length, c.seed, c.shuffle_dataset);
  const reward = o.reward ?? buildReward(c);
  const hasLabels = o.rows.some((r) => r.answer !== undefined && r.answer !== null && r.answer !== "");
  const monitorAcc = accuracyReward({ format: c.answer_format, locale: c.locale, mode: c.reward_mode });
  const grader = graderFor({ format: c.answer_format, locale: c.locale });
  const padId = policy.tokenizer.padTokenId;

  mkdirSync(o.outDir, { recursive: true });
  const logPath = join(o.outDir, "train_log.jsonl");
  const genPath = join(o.outDir, "generations.jsonl");

  let params = policy.params;
  const opt = adamwFromSettings(params, c);
  let start = 0;
  let refParams: Params | null = null;
  if (c.beta !== 0) refParams = o.refParams ?? tree.ref(params);
  if (o.resume) {
    const ck = latestCheckpoint(o.outDir);
    if (ck) {
      const st = readTrainerState(ck);
      const loaded = await policy.loadParams(ck);
      tree.dispose(params);
      params = loaded;
      opt.setState(await readOptimizer(join(ck, "optimizer.safetensors")));
      start = st.step;
      truncateLog(logPath, start);
      truncateLog(genPath, start);
    } else {
      rmSync(logPath, { force: true });
      rmSync(genPath, { force: true });
    }
  } else {
    for (const p of [logPath, genPath]) if (existsSync(p)) rmSync(p);
  }
  await writeJsonAtomic(join(o.outDir, "config.json"), { ...c, total_steps: steps });

  const loss = makeGrpoLoss(policy.logprobs, {
    epsilonLow: c.epsilon,
    epsilonHigh: c.epsilon_high ?? c.epsilon,
    beta: c.beta,
    useOld: c.num_iterations > 1,
    prefixLogprobs: policy.prefix?.logprobs,
  });
  const forward = jit((p: Params, ids: JArray, targets: JArray) => policy.logprobs(p, ids, targets));
  const prefixForward = policy.prefix
    ? jit((p: Params, inputs: PrefixInputs) =>
        (policy.prefix as NonNullable<Policy["prefix"]>).logprobs(p, inputs),
      )
    : null;

  const progress = createProgress({
    label: o.progressLabel ?? "train",
    total: steps,
    unit: "step",
    fields: ["reward", "acc", "kl", "loss"],
  });
  progress.update(start);
  const log: Record<string, unknown>[] = [];
  let lastGood = latestCheckpoint(o.outDir);
  let ran = 0;
  try {
    for (let step = start; step < steps; step++) {
      const tStep = performance.now();
      // 1. prompts and samples
      const idx = Array.from({ length: P }, (_, i) => order.index(step * P + i));
      const batchPrompts: number[][] = [];
      const seeds: number[] = [];
      idx.forEach((ri, pi) => {
        for (let g = 0; g < N; g++) {
          batchPrompts.push(promptIds[ri]);
          seeds.push(sampleSeed(c.seed, step, pi * N + g));
        }
      });
      const t0 = performance.now();
      const samples: Sample[] = await policy.generate(params, batchPrompts, {
        maxNewTokens: c.max_completion_length,
        temperature: c.temperature,
        topP: c.top_p,
        topK: c.top_k,
        seeds,
        stop: c.stop,
      });
      const tSampling = (performance.now() - t0) / 1000;

      // 2. rewards on whole groups
      const totals: number[][] = [];
      const subsets: number[][] = [];
      const perFn: Record<string, number[]> = {};
      const accAll: number[] = [];
      const majRatio: number[] = [];
      const labelAcc: number[] = [];
      const rewardAcc: number[] = [];
      const pseudo: (string | null)[] = [];
      idx.forEach((ri, pi) => {
        const row = o.rows[ri];
        const group = samples.slice(pi * N, (pi + 1) * N);
        const texts = group.map((s) => s.text);
        const label = row.answer ?? null;
        const rng = new Rng(c.seed).fork(`reward/${step}/${pi}`);
        const res = reward({ completions: texts, label }, { rng, step });
        const sub = (res.diagnostics.rewarded_indices as number[] | undefined) ?? texts.map((_, i) => i);
        totals.push(res.total);
        subsets.push(sub);
        for (const [k, v] of Object.entries(res.perFunction)) {
          perFn[k] ??= [];
          perFn[k].push(...v);
        }
        if (hasLabels && label !== null && label !== "") {
          const acc = monitorAcc({ completions: texts, label }, { rng: new Rng(0) }).rewards;
          accAll.push(...acc);
        }
        const d = res.diagnostics;
        const num = (k: string) => (typeof d[k] === "number" ? (d[k] as number) : undefined);
        const mr = num("majority/majority_ratio");
        if (mr !== undefined) majRatio.push(mr);
        const la = num("majority/label_accuracy");
        if (la !== undefined) labelAcc.push(la);
        const ra = num("majority/reward_accuracy");
        if (ra !== undefined) rewardAcc.push(ra);
        pseudo.push((d["majority/pseudo_label"] as string | null | undefined) ?? null);
      });
      const { advantages, zeroStd } = computeAdvantages(totals, c.scale_rewards);

      // 3. sequences
      const seqs: Seq[] = [];
      const compLens: number[] = [];
      let truncatedCount = 0;
      let sampledTokens = 0;
      let entropySum = 0;
      let entropyCount = 0;
      idx.forEach((ri, pi) => {
        subsets[pi].forEach((gi, j) => {
          const s = samples[pi * N + gi];
          const truncated = s.finishReason === "length";
          seqs.push({
            group: pi,
            prompt: promptIds[ri],
            completion: s.tokens,
            adv: advantages[pi][j],
            train: !(c.mask_truncated_completions && truncated) && s.tokens.length > 0,
            truncated,
          });
        });
      });
      for (const s of samples) {
        compLens.push(s.tokens.length);
        if (s.finishReason === "length") truncatedCount++;
        sampledTokens += s.tokens.length;
        for (const lp of s.logprobs) {
          entropySum -= lp;
          entropyCount++;
        }
      }

      // 4. micro-batches and weights
      // Normalisers count every sequence of the step. Rows that cannot change the loss — zero advantage
      // and no KL term, or nothing to train — are left out of the forward/backward passes (their
      // gradient is exactly zero), except for bnpo whose normaliser depends on the micro-batch makeup.
      const totalTokens = seqs.reduce((a, s) => a + (s.train ? s.completion.length : 0), 0);
      const work =
        c.loss_type === "bnpo" ? seqs : seqs.filter((s) => s.train && (c.beta !== 0 || s.adv !== 0));
      const chunks: Seq[][] = [];
      let rowsCap = 0;
      if (work.length > 0) {
        if (prefixForward) {
          // Micro-batches of whole groups (at most rowsCap rows and ⌊rowsCap / M⌋ groups), so the number
          // of prompts per micro-batch — a compiled shape — stays the same from step to step.
          rowsCap = fitPrefixMicroBatch(micro, work, policy, M);
          chunks.push(...chunkByGroups(work, rowsCap, Math.max(1, Math.floor(rowsCap / M))));
        } else {
          const stepT = bucketLength(Math.max(...work.map((s) => s.prompt.length + s.completion.length)) - 1);
          rowsCap = fitMicroBatch(micro, stepT, policy);
          for (let i = 0; i < work.length; i += rowsCap) chunks.push(work.slice(i, i + rowsCap));
        }
      }
      // With a shared-prompt forward (Policy.prefix), each distinct prompt of a micro-batch runs once and
      // its completions attend to it; otherwise every row is a full prompt + completion sequence.
      // Shared-prompt micro-batches of a step all get the step's largest sizes and room for the most
      // groups a micro-batch may hold: one compiled shape, the same from step to step.
      const sizes = {
        Pg: Math.max(
          Math.floor(rowsCap / M),
          ...chunks.map((ch) => new Set(ch.map((s) => s.prompt.join(","))).size),
        ),
        Tp: Math.max(1, ...work.map((s) => s.prompt.length - 1)),
        Tc: Math.max(1, ...work.map((s) => s.completion.length)),
      };
      const packed: (PackedBatch | PackedPrefixBatch)[] = chunks.map((ch) => {
        let B = 1;
        while (B < ch.length) B *= 2;
        B = Math.min(B, Math.max(rowsCap, ch.length));
        const specs = ch.map(
          (s): SeqSpec => ({ prompt: s.prompt, completion: s.completion, train: s.train }),
        );
        if (prefixForward) return packPrefixSequences(specs, B, padId, sizes);
        const T = bucketLength(Math.max(...ch.map((s) => s.prompt.length + s.completion.length)) - 1);
        return packSequences(specs, B, T, padId);
      });
      const widthOf = (pb: PackedBatch | PackedPrefixBatch) => ("Tc" in pb ? pb.Tc : pb.T);
      const runForward = (p: Params, pb: PackedBatch | PackedPrefixBatch): JArray =>
        "Tc" in pb
          ? ((prefixForward as NonNullable<typeof prefixForward>)(
              p,
              policy.prefix?.inputs(pb) as PrefixInputs,
            ) as JArray)
          : (forward(p, ...idsArrays(pb)) as JArray);

      // 5. reference (beta > 0) and old (num_iterations > 1) log-probs
      const t1 = performance.now();
      const refLp: Float32Array[] = [];
      if (refParams) {
        for (const pb of packed)
          refLp.push(new Float32Array(await runForward(tree.ref(refParams), pb).data()));
      }
      const oldLp: Float32Array[] = [];
      if (c.num_iterations > 1) {
        for (const pb of packed) oldLp.push(new Float32Array(await runForward(tree.ref(params), pb).data()));
      }
      const tReference = (performance.now() - t1) / 1000;

      // 6. updates
      const t2 = performance.now();
      let lossSum = 0;
      let klSum = 0;
      let lowSum = 0;
      let highSum = 0;
      let lr = 0;
      let gradNorm = 0;
      for (let it = 0; it < c.num_iterations; it++) {
        const acc = new GradAccumulator();
        lossSum = 0;
        klSum = 0;
        lowSum = 0;
        highSum = 0;
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
          }).map((x, r) => (r < ch.length ? x : 0));
          const adv = new Float32Array(pb.B);
          ch.forEach((s, r) => {
            adv[r] = s.adv;
          });
          const T = widthOf(pb);
          const batch: LossBatch = {
            mask: np.array(pb.mask).reshape([pb.B, T]),
            weight: np.array(new Float32Array(w)).reshape([pb.B, 1]),
            adv: np.array(adv).reshape([pb.B, 1]),
          };
          if ("Tc" in pb) batch.inputs = policy.prefix?.inputs(pb);
          else [batch.ids, batch.targets] = idsArrays(pb);
          if (refParams) batch.ref = np.array(refLp[bi]).reshape([pb.B, T]);
          if (c.num_iterations > 1) batch.old = np.array(oldLp[bi]).reshape([pb.B, T]);
          const [[l, aux], grads] = loss(tree.ref(params), batch) as unknown as [[JArray, LossAux], Params];
          lossSum += (await l.data())[0];
          klSum += (await aux.klSum.data())[0];
          lowSum += (await aux.lowSum.data())[0];
          highSum += (await aux.highSum.data())[0];
          await acc.add(grads);
        }
        const grads = acc.count > 0 ? acc.take() : zerosLike(params);
        gradNorm = await globalNorm(grads);
        if (!Number.isFinite(lossSum) || !Number.isFinite(gradNorm)) {
          tree.dispose(grads);
          throw new TtrlError(
            `non-finite ${Number.isFinite(lossSum) ? "gradient norm" : "loss"} (${Number.isFinite(lossSum) ? gradNorm : lossSum}) at step ${step + 1}; stopped without saving. Last good checkpoint: ${lastGood ?? "none (no checkpoint was written yet)"}`,
          );
        }
        lr = learningRate(opt.t, {
          type: c.lr_scheduler_type,
          lr: c.learning_rate,
          totalSteps: totalOptSteps,
          warmupSteps: c.warmup_steps,
          warmupRatio: c.warmup_ratio,
        });
        params = await opt.step(params, grads, lr, clipCoefficient(gradNorm, c.max_grad_norm));
      }
      const tUpdate = (performance.now() - t2) / 1000;
      const wall = (performance.now() - tStep) / 1000;

      // 7. logs
      const tot = totals.flat();
      const entry: Record<string, unknown> = {
        step: step + 1,
        epoch: ((step + 1) * P) / o.rows.length,
        lr,
        loss: lossSum,
        grad_norm: gradNorm,
        reward: mean(tot),
        reward_std: std0(tot),
      };
      for (const [k, v] of Object.entries(perFn)) {
        entry[`rewards/${k}/mean`] = mean(v);
        entry[`rewards/${k}/std`] = std0(v);
      }
      if (accAll.length) entry.accuracy_reward = mean(accAll);
      if (majRatio.length) entry.majority_ratio = mean(majRatio);
      if (labelAcc.length) entry.label_accuracy = mean(labelAcc);
      if (rewardAcc.length) entry.reward_accuracy = mean(rewardAcc);
      const tokDen = Math.max(1, totalTokens);
      entry.kl = c.beta !== 0 ? klSum / tokDen : 0;
      entry["clip_ratio/low"] = lowSum / tokDen;
      entry["clip_ratio/high"] = highSum / tokDen;
      entry.entropy = entropyCount ? entropySum / entropyCount : 0;
      entry["completion_length/mean"] = mean(compLens);
      entry["completion_length/min"] = Math.min(...compLens);
      entry["completion_length/max"] = Math.max(...compLens);
      entry.truncated_ratio = truncatedCount / samples.length;
      entry.frac_reward_zero_std = zeroStd.filter(Boolean).length / zeroStd.length;
      entry.tokens_per_s = sampledTokens / Math.max(1e-9, wall);
      entry["time/sampling"] = tSampling;
      entry["time/reference"] = tReference;
      entry["time/update"] = tUpdate;
      entry["time/step"] = wall;
      entry.prompt_ids = idx.map((i) => o.rows[i].id);
      appendFileSync(logPath, `${JSON.stringify(entry)}\n`);
      log.push(entry);
      o.onStep?.(entry);

      if (c.log_completions_steps > 0 && (step + 1) % c.log_completions_steps === 0) {
        const lines: string[] = [];
        idx.forEach((ri, pi) => {
          const sub = subsets[pi];
          for (let g = 0; g < N; g++) {
            const s = samples[pi * N + g];
            const j = sub.indexOf(g);
            const rw: Record<string, number> = {};
            for (const k of Object.keys(perFn)) if (j >= 0) rw[k] = perFn[k][seqIndex(subsets, pi) + j];
            lines.push(
              JSON.stringify({
                step: step + 1,
                prompt_id: o.rows[ri].id,
                prompt: prompts[ri],
                completion: s.text,
                answer: grader.extractAnswer(s.text, c.reward_mode).answer,
                label: o.rows[ri].answer ?? null,
                pseudo_label: pseudo[pi],
                rewards: j >= 0 ? rw : null,
                reward: j >= 0 ? totals[pi][j] : null,
                advantage: j >= 0 ? advantages[pi][j] : null,
                finish_reason: s.finishReason,
              }),
            );
          }
        });
        appendFileSync(genPath, `${lines.join("\n")}\n`);
      }
      progress.update(step + 1, {
        reward: entry.reward as number,
        acc: (entry.accuracy_reward as number | undefined) ?? "",
        kl: entry.kl as number,
        loss: lossSum,
      });

      const state: TrainerState = {
        step: step + 1,
        optimizerStep: opt.t,
        dataPosition: (step + 1) * P,
        epoch: ((step + 1) * P) / o.rows.length,
        seed: c.seed,
        total_steps: steps,
      };
      if (c.save_steps > 0 && (step + 1) % c.save_steps === 0 && step + 1 < steps)
        lastGood = await saveTrainingCheckpoint(o.outDir, policy, params, opt, state, c.save_total_limit);
      ran++;
      if (o.stopAfter !== undefined && ran >= o.stopAfter) {
        return { params, steps: step + 1, finalDir: null, log };
      }
      if (step + 1 === steps) {
        lastGood = await saveTrainingCheckpoint(o.outDir, policy, params, opt, state, c.save_total_limit);
      }
    }
  } finally {
    progress.stop();
    loss.dispose();
    forward.dispose();
    prefixForward?.dispose();
    opt.dispose();
  }
  const finalDir = join(o.outDir, "final");
  rmSync(finalDir, { recursive: true, force: true });
  await policy.save(params, finalDir, { dtype: c.save_dtype });
  writeFileSync(join(o.outDir, "DONE"), `${new Date().toISOString()}\n`);
  return { params, steps, finalDir, log };
}

function idsArrays(pb: PackedBatch): [JArray, JArray] {
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

function seqIndex(subsets: number[][], pi: number): number {
  let n = 0;
  for (let i = 0; i < pi; i++) n += subsets[i].length;
  return n;
}
