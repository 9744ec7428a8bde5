/**
 * GRPO (and TTRL: GRPO rewarded by the majority vote of the policy's own samples), following TRL's
 * GRPOTrainer: group-relative advantages, the clipped importance-ratio objective against the sampling
 * policy, an optional k3 KL to a frozen reference, and the grpo / dr_grpo / dapo / bnpo loss aggregations.
 *
 * One trainer step is a list of named stages, data flowing one way:
 *   stepRows (data.ts) → sampleGroups (sample.ts: N completions per prompt) → scoreGroups (score.ts: rewards
 *   on whole groups, the majority vote and its monitors, the M kept) → advantages (loss.ts) → toSequences
 *   (batch.ts) → update (update.ts: num_iterations AdamW updates, micro-batched) → logStep (log.ts) →
 *   maybeCheckpoint (state.ts).
 * Everything random is derived from (seed, step), so a resumed run repeats exactly what the uninterrupted
 * run would have done.
 */
import { renderPrompt } from "../prompts/index.ts";
import { rewardDef, type WeightedReward } from "../rewards/index.ts";
import { tree } from "../runtime/jax.ts";
import { TtrlError } from "../util/errors.ts";
import { createProgress } from "../util/progress.ts";
import { toSequences } from "./batch.ts";
import { type GrpoConfig, rewardFuncs } from "./config.ts";
import { DataOrder, type TrainRow } from "./data.ts";
import { GENERATIONS_LOG, type GrpoLogEntry, logStep, TRAIN_LOG } from "./log.ts";
import { advantages } from "./loss.ts";
import { adamwFromSettings, type Params } from "./optim.ts";
import type { Policy } from "./policy.ts";
import { rewardGroups, sampleGroups } from "./sample.ts";
import { type ScoreSettings, scoreGroups, scoreSettings } from "./score.ts";
import { finishRun, maybeCheckpoint, openRun } from "./state.ts";
import { compileGrpo, type UpdateContext, update } from "./update.ts";

export interface GrpoRunOptions {
  policy: Policy;
  rows: TrainRow[];
  config: GrpoConfig;
  outDir: string;
  /** Data file name for error messages. */
  dataFile?: string;
  resume?: boolean;
  /** Start over in a used run folder (deleting what it holds). */
  overwrite?: boolean;
  /** Frozen reference weights for beta > 0 (default: the policy's weights at the start of training). */
  refParams?: Params;
  /** Stop (as if killed) after this many steps of this process, without the final save. For tests. */
  stopAfter?: number;
  /** Called after every step with its log line. */
  onStep?: (log: GrpoLogEntry) => void;
  progressLabel?: string;
  /** Replace the configured reward functions (tests use toy rewards). */
  rewards?: WeightedReward[];
}

export interface GrpoRunResult {
  params: Params;
  steps: number;
  finalDir: string | null;
  log: GrpoLogEntry[];
}

/** Settings a resume may change: they do not change the weights. */
export const GRPO_RESUME_MAY_CHANGE = [
  "save_steps",
  "save_total_limit",
  "log_completions_steps",
  "save_dtype",
  "threads",
];

export async function trainGrpo(o: GrpoRunOptions): Promise<GrpoRunResult> {
  const t = await startGrpo(o);
  const { c, steps } = t;
  const log: GrpoLogEntry[] = [];
  try {
    for (let step = t.start; step < steps; step++) {
      const t0 = performance.now();
      const rowIdx = t.order.step(step, c.prompts_per_step);
      const prompts = rowIdx.map((i) => t.promptIds[i]);
      const sampled = await sampleGroups(t.policy, t.params, prompts, c, step);
      const groups = rewardGroups(
        sampled,
        rowIdx.map((i) => o.rows[i].answer),
      );
      const scored = scoreGroups(groups, t.scoring, step);
      const adv = advantages(scored, c.scale_rewards);
      const kept = scored.map((g) => g.kept);
      const seqs = toSequences(prompts, sampled.groups, kept, adv.advantages, c.mask_truncated_completions);
      const upd = await update(t, seqs, step);
      const wall = (performance.now() - t0) / 1000;
      const entry = logStep({ ...t, rows: o.rows, step, rowIdx, sampled, scored, adv, upd, wall });
      log.push(entry);
      o.onStep?.(entry);
      t.progress.update(step + 1, {
        reward: entry.reward as number,
        acc: (entry.accuracy_reward as number | undefined) ?? "",
        kl: entry.kl as number,
        loss: upd.loss,
      });
      const state = { step: step + 1, optimizerStep: t.opt.t, dataPosition: (step + 1) * c.prompts_per_step };
      await maybeCheckpoint(
        t,
        t.params,
        { ...state, epoch: entry.epoch as number, seed: c.seed, total_steps: steps },
        c,
        steps,
      );
      if (o.stopAfter !== undefined && step + 1 - t.start >= o.stopAfter)
        return { params: t.params, steps: step + 1, finalDir: null, log };
    }
  } finally {
    t.dispose();
  }
  const finalDir = await finishRun(o.outDir, t.policy, t.params, c.save_dtype);
  return { params: t.params, steps, finalDir, log };
}

/** A GRPO run in progress: its settings, weights, optimizer, compiled functions and fixed inputs. */
interface GrpoTrainer extends UpdateContext {
  steps: number;
  start: number;
  order: DataOrder;
  promptIds: number[][];
  prompts: string[];
  scoring: ScoreSettings;
  progress: ReturnType<typeof createProgress>;
  dispose(): void;
}

/** Check the inputs, open the run folder (resuming from its checkpoint) and compile the loss. */
async function startGrpo(o: GrpoRunOptions): Promise<GrpoTrainer> {
  const c = o.config;
  const policy = o.policy;
  const { promptIds, prompts } = checkTrainInputs(o.rows, c, policy, o.dataFile ?? c.data);
  const M = c.rewarded_count ?? c.num_generations;
  const steps = totalSteps(c, o.rows.length);
  const opt = adamwFromSettings(policy.params, c);
  const refParams = c.beta !== 0 ? (o.refParams ?? tree.ref(policy.params)) : null;
  const { params, start } = await openRun(
    {
      outDir: o.outDir,
      config: c,
      totalSteps: steps,
      resume: o.resume,
      overwrite: o.overwrite,
      resumeMayChange: GRPO_RESUME_MAY_CHANGE,
      logs: [TRAIN_LOG, GENERATIONS_LOG],
    },
    policy,
    policy.params,
    opt,
  );
  const fns = compileGrpo(policy, c);
  const progress = createProgress({
    label: o.progressLabel ?? "train",
    total: steps,
    unit: "step",
    fields: ["reward", "acc", "kl", "loss"],
  });
  progress.update(start);
  return {
    c,
    policy,
    params,
    opt,
    refParams,
    fns,
    micro:
      c.micro_batch_size > 0
        ? c.micro_batch_size
        : Math.ceil((c.prompts_per_step * M) / c.gradient_accumulation_steps),
    M,
    totalOptSteps: steps * c.num_iterations,
    outDir: o.outDir,
    steps,
    start,
    order: new DataOrder(o.rows.length, c.seed, c.shuffle_dataset),
    promptIds,
    prompts,
    scoring: scoreSettings(c, o.rewards),
    progress,
    dispose() {
      progress.stop();
      fns.dispose();
      opt.dispose();
    },
  };
}

/** Total trainer steps of a run. */
export function totalSteps(c: GrpoConfig, nRows: number): number {
  if (c.max_steps > 0) return c.max_steps;
  return Math.max(1, Math.ceil((c.num_train_epochs * nRows) / c.prompts_per_step));
}

/** Errors before any work starts: empty data, missing labels for a reward that needs them, prompts longer than the context. */
export function checkTrainInputs(
  rows: TrainRow[],
  c: GrpoConfig,
  policy: Policy,
  dataFile: string,
): { promptIds: number[][]; prompts: string[] } {
  if (rows.length === 0) throw new TtrlError(`${dataFile}: no training rows`);
  const needsLabel = rewardFuncs(c).find((f) => rewardDef(f).needsLabel);
  if (needsLabel) {
    const bad = rows.find((r) => r.answer === undefined || r.answer === null || r.answer === "");
    if (bad)
      throw new TtrlError(
        `${dataFile}:${bad.line}: row "${bad.id}" has no answer; --reward ${needsLabel} needs a label on every row (use --reward majority for unlabeled data)`,
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
