/**
 * Reward functions for GRPO/TTRL. Every reward sees a whole group (all completions sampled for one
 * prompt), so a majority vote is never taken over a partial group.
 */
import { canonicalLabel, type GradeOptions, graderFor, isMissingLabel, type Mode } from "../answers/index.ts";
import { TtrlError, UsageError } from "../util/errors.ts";
import type { Rng } from "../util/rng.ts";

export interface Group {
  completions: string[];
  label?: string | number | null;
}

export type Diagnostic = number | string | null | number[];

export interface GroupReward {
  rewards: number[];
  diagnostics?: Record<string, Diagnostic>;
}

export interface RewardContext {
  rng: Rng;
  step?: number;
}

export type RewardFn = (group: Group, ctx: RewardContext) => GroupReward;

export type TiePolicy = "random" | "first" | "none";
export type PickPolicy = "first" | "random";

function gradeOpts(opts: GradeOptions): GradeOptions {
  // A fresh object per reward function, so graderFor caches one grader per reward.
  return { format: opts.format, extract: opts.extract, locale: opts.locale };
}

function hasLabel(label: Group["label"]): label is string | number {
  return !isMissingLabel(label);
}

/** `value` for a valid completion (in `mode`), else `otherwise`. Defaults: strict, 1, 0. */
export function formatReward(
  opts: { mode?: Mode; value?: number; otherwise?: number } & GradeOptions = {},
): RewardFn {
  const mode = opts.mode ?? "strict";
  const value = opts.value ?? 1;
  const otherwise = opts.otherwise ?? 0;
  const grader = graderFor(gradeOpts(opts));
  return (group) => ({
    rewards: group.completions.map((c) => (grader.extractAnswer(c, mode).valid ? value : otherwise)),
  });
}

/** 1 when the completion's answer (in `mode`, default strict) equals the group's label, else 0. */
export function accuracyReward(opts: GradeOptions & { mode?: Mode } = {}): RewardFn {
  const mode = opts.mode ?? "strict";
  const grader = graderFor(gradeOpts(opts));
  return (group) => {
    if (!hasLabel(group.label)) throw new TtrlError("accuracy reward needs a label, but the group has none");
    const label = canonicalLabel(group.label);
    return {
      rewards: group.completions.map((c) => (grader.extractAnswer(c, mode).answer === label ? 1 : 0)),
    };
  };
}

export interface MajorityVote {
  /** Canonical answer of each completion, null when invalid. */
  answers: (string | null)[];
  /** The winning value, or null (no valid answer, or a tie under the `none` policy). */
  pseudoLabel: string | null;
  /** Votes for the top value (0 when nothing valid). */
  topCount: number;
  /** Values sharing the top count, sorted (so the random pick does not depend on group order). */
  tied: string[];
}

/**
 * Majority vote over canonical answers: invalid (null) answers do not vote; a tie (several values share
 * the top count, including "all different") is broken by `tie`: `random` picks uniformly with `rng` among
 * the tied values in sorted order, `first` takes the tied value that appears first, `none` gives no label.
 */
export function majorityVote(answers: (string | null)[], tie: TiePolicy, rng?: Rng): MajorityVote {
  const counts = new Map<string, number>();
  let top = 0;
  for (const a of answers) {
    if (a === null) continue;
    const c = (counts.get(a) ?? 0) + 1;
    counts.set(a, c);
    if (c > top) top = c;
  }
  if (top === 0) return { answers, pseudoLabel: null, topCount: 0, tied: [] };
  // Map iteration order is first-appearance order.
  const tiedInOrder: string[] = [];
  for (const [v, c] of counts) if (c === top) tiedInOrder.push(v);
  const tied = tiedInOrder.length > 1 ? [...tiedInOrder].sort() : tiedInOrder;
  let pseudoLabel: string | null;
  if (tied.length === 1) pseudoLabel = tied[0];
  else if (tie === "first") pseudoLabel = tiedInOrder[0];
  else if (tie === "none") pseudoLabel = null;
  else {
    if (!rng) throw new TtrlError("majority vote with tie=random needs an rng");
    pseudoLabel = tied[rng.int(tied.length)];
  }
  return { answers, pseudoLabel, topCount: top, tied };
}

/**
 * TTRL majority reward: completions whose answer equals the group's majority-voted answer get 1, others 0.
 * All N completions vote; with `rewardedCount` M < N only M of them (the first M, or M chosen at random
 * with the seeded rng) are returned for training, and `diagnostics.rewarded_indices` lists which.
 * Diagnostics: `pseudo_label`, `majority_ratio` (top count / N), and only when the group carries a true
 * label (monitoring, never used for the reward): `label_accuracy` and `reward_accuracy` (share of the
 * rewarded completions whose majority reward equals their accuracy reward).
 */
export function majorityReward(
  opts: GradeOptions & {
    mode?: Mode;
    tie?: TiePolicy;
    rewardedCount?: number;
    rewardedPick?: PickPolicy;
  } = {},
): RewardFn {
  const mode = opts.mode ?? "strict";
  const tie = opts.tie ?? "random";
  const pick = opts.rewardedPick ?? "first";
  if (!["random", "first", "none"].includes(tie))
    throw new UsageError(`unknown tie policy "${tie}" (known: random, first, none)`);
  if (!["first", "random"].includes(pick))
    throw new UsageError(`unknown rewarded pick "${pick}" (known: first, random)`);
  if (opts.rewardedCount !== undefined && !(Number.isInteger(opts.rewardedCount) && opts.rewardedCount >= 1))
    throw new UsageError(`rewardedCount must be a positive integer, got ${opts.rewardedCount}`);
  const grader = graderFor(gradeOpts(opts));
  return (group, ctx) => {
    const n = group.completions.length;
    const answers = group.completions.map((c) => grader.extractAnswer(c, mode).answer);
    const vote = majorityVote(answers, tie, ctx.rng);
    const m = opts.rewardedCount ?? n;
    if (m > n) throw new TtrlError(`majority reward: rewardedCount ${m} exceeds the group size ${n}`);
    let indices: number[] | null = null;
    if (m < n) {
      indices =
        pick === "first"
          ? Array.from({ length: m }, (_, i) => i)
          : ctx.rng.sampleIndices(n, m).sort((a, b) => a - b);
    }
    const idx = indices ?? Array.from({ length: n }, (_, i) => i);
    const rewards = idx.map((i) => (vote.pseudoLabel !== null && answers[i] === vote.pseudoLabel ? 1 : 0));
    const diagnostics: Record<string, Diagnostic> = {
      pseudo_label: vote.pseudoLabel,
      majority_ratio: n > 0 ? vote.topCount / n : 0,
    };
    if (hasLabel(group.label)) {
      const label = canonicalLabel(group.label);
      diagnostics.label_accuracy = vote.pseudoLabel === label ? 1 : 0;
      let agree = 0;
      for (let j = 0; j < idx.length; j++) if (rewards[j] === (answers[idx[j]] === label ? 1 : 0)) agree++;
      diagnostics.reward_accuracy = idx.length > 0 ? agree / idx.length : 0;
    }
    if (indices) diagnostics.rewarded_indices = indices;
    return { rewards, diagnostics };
  };
}

export interface WeightedResult {
  /** Σ weight × reward per (rewarded) completion. */
  total: number[];
  perFunction: Record<string, number[]>;
  /** Each function's diagnostics as `name/key`; `rewarded_indices` when a function rewarded a subset. */
  diagnostics: Record<string, unknown>;
}

/**
 * Weighted sum of several rewards, like TRL's `reward_weights`. When one function (a majority reward with
 * `rewardedCount`) rewards only a subset of the group, every function's rewards are restricted to that
 * subset; two different subsets are an error.
 */
export function weightedRewards(
  fns: { name: string; fn: RewardFn; weight: number }[],
): (group: Group, ctx: RewardContext) => WeightedResult {
  const names = new Set<string>();
  for (const f of fns) {
    if (names.has(f.name)) throw new UsageError(`reward "${f.name}" appears twice`);
    if (!Number.isFinite(f.weight)) throw new UsageError(`reward "${f.name}" has a non-finite weight`);
    names.add(f.name);
  }
  return (group, ctx) => {
    const n = group.completions.length;
    const results = fns.map((f) => ({ f, r: f.fn(group, ctx) }));
    let subset: number[] | null = null;
    for (const { f, r } of results) {
      const ri = r.diagnostics?.rewarded_indices;
      if (Array.isArray(ri)) {
        if (subset && (subset.length !== ri.length || subset.some((v, i) => v !== ri[i])))
          throw new TtrlError(
            `reward "${f.name}" rewards a different subset of the group than another reward`,
          );
        subset = ri;
      } else if (r.rewards.length !== n) {
        throw new TtrlError(`reward "${f.name}" returned ${r.rewards.length} rewards for a group of ${n}`);
      }
    }
    const len = subset ? subset.length : n;
    const total = new Array<number>(len).fill(0);
    const perFunction: Record<string, number[]> = {};
    const diagnostics: Record<string, unknown> = {};
    for (const { f, r } of results) {
      const rs =
        subset && !Array.isArray(r.diagnostics?.rewarded_indices)
          ? subset.map((i) => r.rewards[i])
          : r.rewards;
      perFunction[f.name] = rs;
      for (let i = 0; i < len; i++) total[i] += f.weight * rs[i];
      for (const [k, v] of Object.entries(r.diagnostics ?? {}))
        if (k !== "rewarded_indices") diagnostics[`${f.name}/${k}`] = v;
    }
    if (subset) diagnostics.rewarded_indices = subset;
    return { total, perFunction, diagnostics };
  };
}
