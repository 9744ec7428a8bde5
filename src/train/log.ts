/**
 * What a GRPO step logs (stage 6): one `train_log.jsonl` line per step with TRL's metric names, and the
 * step's completions in `generations.jsonl`. The keys are fixed here so that every engine (the jax trainer,
 * src/engines/trl) writes the same log: build `GrpoStepStats` and call `grpoLogEntry`.
 */
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import type { GrpoConfig } from "./config.ts";
import type { TrainRow } from "./data.ts";
import { stdUnbiased } from "./loss.ts";
import type { SampledGroups } from "./sample.ts";
import type { ScoredGroup } from "./score.ts";
import type { UpdateResult } from "./update.ts";

/** The keys of a train_log.jsonl line, in order (per reward function: `rewards/<name>/mean|std`). */
export const GRPO_LOG_KEYS = {
  head: ["step", "epoch", "lr", "loss", "grad_norm", "reward", "reward_std"],
  perFunction: (name: string) => [`rewards/${name}/mean`, `rewards/${name}/std`],
  /** Present when the step had values for them (accuracy_reward and the label ones need labels). */
  monitors: ["accuracy_reward", "majority_ratio", "label_accuracy", "reward_accuracy"],
  tail: [
    "kl",
    "clip_ratio/low",
    "clip_ratio/high",
    "entropy",
    "completion_length/mean",
    "completion_length/min",
    "completion_length/max",
    "truncated_ratio",
    "frac_reward_zero_std",
    "tokens_per_s",
    "time/sampling",
    "time/reference",
    "time/update",
    "time/step",
    "prompt_ids",
  ],
} as const;

/** One step's numbers, from which `grpoLogEntry` builds the log line. */
export interface GrpoStepStats {
  step: number;
  epoch: number;
  lr: number;
  loss: number;
  gradNorm: number;
  /** Weighted reward of every trained completion. */
  rewards: number[];
  /** Each reward function's rewards of the trained completions. */
  perFunction: Record<string, number[]>;
  /** Monitors: accuracy of every sampled completion with a label; per group: majority ratio, and with a label pseudo-label accuracy and reward accuracy. */
  accuracy: number[];
  majorityRatio: number[];
  labelAccuracy: number[];
  rewardAccuracy: number[];
  /** Per trained token (0 without a KL term). */
  kl: number;
  clipLow: number;
  clipHigh: number;
  /** Mean negative sampling log-prob per sampled token. */
  entropy: number;
  completionLengths: number[];
  truncatedRatio: number;
  fracRewardZeroStd: number;
  tokensPerS: number;
  seconds: { sampling: number; reference: number; update: number; step: number };
  promptIds: string[];
}

export type GrpoLogEntry = Record<string, unknown>;

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}

function std0(xs: number[]): number {
  const s = stdUnbiased(xs);
  return Number.isFinite(s) ? s : 0;
}

export function grpoLogEntry(s: GrpoStepStats): GrpoLogEntry {
  const e: GrpoLogEntry = {
    step: s.step,
    epoch: s.epoch,
    lr: s.lr,
    loss: s.loss,
    grad_norm: s.gradNorm,
    reward: mean(s.rewards),
    reward_std: std0(s.rewards),
  };
  for (const [k, v] of Object.entries(s.perFunction)) {
    const [m, sd] = GRPO_LOG_KEYS.perFunction(k);
    e[m] = mean(v);
    e[sd] = std0(v);
  }
  const monitors = [s.accuracy, s.majorityRatio, s.labelAccuracy, s.rewardAccuracy];
  GRPO_LOG_KEYS.monitors.forEach((k, i) => {
    if (monitors[i].length) e[k] = mean(monitors[i]);
  });
  const tail = [
    s.kl,
    s.clipLow,
    s.clipHigh,
    s.entropy,
    mean(s.completionLengths),
    Math.min(...s.completionLengths),
    Math.max(...s.completionLengths),
    s.truncatedRatio,
    s.fracRewardZeroStd,
    s.tokensPerS,
    s.seconds.sampling,
    s.seconds.reference,
    s.seconds.update,
    s.seconds.step,
    s.promptIds,
  ];
  GRPO_LOG_KEYS.tail.forEach((k, i) => {
    e[k] = tail[i];
  });
  return e;
}

/** One completion in generations.jsonl (rewards and advantage are null for completions not trained). */
export interface GenerationLine {
  step: number;
  prompt_id: string;
  prompt: string;
  completion: string;
  answer: string | null;
  label: string | number | null;
  pseudo_label: string | null;
  rewards: Record<string, number> | null;
  reward: number | null;
  advantage: number | null;
  finish_reason: string;
}

export function appendJsonl(path: string, lines: unknown[]): void {
  if (lines.length) appendFileSync(path, `${lines.map((l) => JSON.stringify(l)).join("\n")}\n`);
}

/** What stage 6 needs from the step. */
export interface StepRecord {
  c: Pick<GrpoConfig, "beta" | "prompts_per_step" | "log_completions_steps">;
  outDir: string;
  rows: TrainRow[];
  /** Rendered prompt text of every row. */
  prompts: string[];
  step: number;
  /** The step's rows (indices into `rows`). */
  rowIdx: number[];
  sampled: SampledGroups;
  scored: ScoredGroup[];
  adv: { advantages: number[][]; zeroStd: boolean[] };
  upd: UpdateResult;
  /** Seconds from the step's start to the end of its update. */
  wall: number;
}

/** The step's log numbers from its samples, scores and update. */
export function stepStats(r: StepRecord): GrpoStepStats {
  const samples = r.sampled.groups.flat();
  const kept = <T>(per: (g: ScoredGroup) => T[]) => r.scored.flatMap((g) => g.kept.map((i) => per(g)[i]));
  const perFunction: Record<string, number[]> = {};
  for (const k of Object.keys(r.scored[0]?.perFunction ?? {})) perFunction[k] = kept((g) => g.perFunction[k]);
  const defined = (xs: (number | undefined)[]) => xs.filter((x): x is number => x !== undefined);
  let entropySum = 0;
  let entropyCount = 0;
  for (const s of samples)
    for (const lp of s.logprobs) {
      entropySum -= lp;
      entropyCount++;
    }
  const tokDen = Math.max(1, r.upd.totalTokens);
  return {
    step: r.step + 1,
    epoch: ((r.step + 1) * r.c.prompts_per_step) / r.rows.length,
    lr: r.upd.lr,
    loss: r.upd.loss,
    gradNorm: r.upd.gradNorm,
    rewards: kept((g) => g.rewards),
    perFunction,
    accuracy: r.scored.flatMap((g) => g.monitors.accuracy ?? []),
    majorityRatio: r.scored.map((g) => g.monitors.majorityRatio),
    labelAccuracy: defined(r.scored.map((g) => g.monitors.labelAccuracy)),
    rewardAccuracy: defined(r.scored.map((g) => g.monitors.rewardAccuracy)),
    kl: r.c.beta !== 0 ? r.upd.klSum / tokDen : 0,
    clipLow: r.upd.lowSum / tokDen,
    clipHigh: r.upd.highSum / tokDen,
    entropy: entropyCount ? entropySum / entropyCount : 0,
    completionLengths: samples.map((s) => s.tokens.length),
    truncatedRatio: samples.filter((s) => s.finishReason === "length").length / samples.length,
    fracRewardZeroStd: r.adv.zeroStd.filter(Boolean).length / r.adv.zeroStd.length,
    tokensPerS: samples.reduce((a, s) => a + s.tokens.length, 0) / Math.max(1e-9, r.wall),
    seconds: {
      sampling: r.sampled.seconds,
      reference: r.upd.tReference,
      update: r.upd.tUpdate,
      step: r.wall,
    },
    promptIds: r.rowIdx.map((i) => r.rows[i].id),
  };
}

/** Every completion of the step, with its rewards and advantage when it was trained. */
export function generationLines(r: StepRecord): GenerationLine[] {
  return r.rowIdx.flatMap((ri, pi) => {
    const g = r.scored[pi];
    return r.sampled.groups[pi].map((s, gi): GenerationLine => {
      const j = g.kept.indexOf(gi);
      return {
        step: r.step + 1,
        prompt_id: r.rows[ri].id,
        prompt: r.prompts[ri],
        completion: s.text,
        answer: g.vote.answers[gi],
        label: r.rows[ri].answer ?? null,
        pseudo_label: g.vote.pseudoLabel,
        rewards:
          j >= 0 ? Object.fromEntries(Object.entries(g.perFunction).map(([k, v]) => [k, v[gi]])) : null,
        reward: j >= 0 ? g.rewards[gi] : null,
        advantage: j >= 0 ? r.adv.advantages[pi][j] : null,
        finish_reason: s.finishReason,
      };
    });
  });
}

/** Stage 6: append the step's line to train_log.jsonl (and its completions to generations.jsonl). */
export function logStep(r: StepRecord): GrpoLogEntry {
  const entry = grpoLogEntry(stepStats(r));
  appendJsonl(join(r.outDir, TRAIN_LOG), [entry]);
  const every = r.c.log_completions_steps;
  if (every > 0 && (r.step + 1) % every === 0)
    appendJsonl(join(r.outDir, GENERATIONS_LOG), generationLines(r));
  return entry;
}

export const TRAIN_LOG = "train_log.jsonl";
export const GENERATIONS_LOG = "generations.jsonl";
