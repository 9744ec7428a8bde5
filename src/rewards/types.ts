/** What every reward function sees and returns (src/rewards). */
import type { GradeOptions, Mode } from "../answers/index.ts";
import type { Rng } from "../util/rng.ts";

/** All completions sampled for one prompt, and its label when the data has one. */
export interface Group {
  completions: string[];
  label?: string | number | null;
}

export type TiePolicy = "random" | "first" | "none";

/** The majority vote over a whole group (see majorityVote). */
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

export interface RewardContext {
  rng: Rng;
  step?: number;
  /** The group's majority vote, when the caller (the trainer's scoreGroups) has taken it already. */
  vote?: MajorityVote;
}

/** One reward per completion of the group, in group order. */
export interface GroupReward {
  rewards: number[];
}

export type RewardFn = (group: Group, ctx: RewardContext) => GroupReward;

/** Settings every reward is built from (the trainer's answer format, locale, extraction mode, tie policy). */
export interface RewardSettings extends GradeOptions {
  mode?: Mode;
  tie?: TiePolicy;
}

/** A registered reward: how to build it, and whether it reads the label (refused on unlabeled rows). */
export interface RewardDef {
  description: string;
  needsLabel: boolean;
  make(s: RewardSettings): RewardFn;
}

export function gradeOpts(opts: GradeOptions): GradeOptions {
  // A fresh object per reward function, so graderFor caches one grader per reward.
  return { format: opts.format, extract: opts.extract, locale: opts.locale };
}
