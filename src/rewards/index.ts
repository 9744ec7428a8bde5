/**
 * Reward functions for GRPO/TTRL. Every reward sees a whole group (all completions sampled for one
 * prompt), so a majority vote is never taken over a partial group; which completions are trained on is the
 * trainer's choice (src/train/score.ts), not the rewards'.
 *
 * A new reward is one file here exporting a `RewardDef`, plus one line in `REWARDS` below.
 */
import { TtrlError, UsageError } from "../util/errors.ts";
import { accuracy } from "./accuracy.ts";
import { format } from "./format.ts";
import { majority } from "./majority.ts";
import type { Group, RewardContext, RewardDef, RewardFn } from "./types.ts";

export { accuracyReward } from "./accuracy.ts";
export { formatReward } from "./format.ts";
export {
  groupVoter,
  majorityReward,
  majorityRewards,
  majorityVote,
  type VoteMonitors,
  voteMonitors,
} from "./majority.ts";
export type {
  Group,
  GroupReward,
  MajorityVote,
  RewardContext,
  RewardDef,
  RewardFn,
  RewardSettings,
  TiePolicy,
} from "./types.ts";

/** The rewards `reward_funcs` may name. */
export const REWARDS = {
  accuracy,
  format,
  majority,
} satisfies Record<string, RewardDef>;

export type RegisteredReward = keyof typeof REWARDS;
export const REWARD_NAMES = Object.keys(REWARDS) as RegisteredReward[];

export function rewardDef(name: string): RewardDef {
  const d = (REWARDS as Record<string, RewardDef>)[name];
  if (!d) throw new UsageError(`unknown reward function "${name}" (known: ${REWARD_NAMES.join(", ")})`);
  return d;
}

export interface WeightedReward {
  name: string;
  fn: RewardFn;
  weight: number;
}

export interface WeightedResult {
  /** Σ weight × reward per completion of the group. */
  total: number[];
  /** Each function's rewards per completion of the group. */
  perFunction: Record<string, number[]>;
}

/** Weighted sum of several rewards over a whole group, like TRL's `reward_weights`. */
export function weightedRewards(fns: WeightedReward[]): (group: Group, ctx: RewardContext) => WeightedResult {
  const names = new Set<string>();
  for (const f of fns) {
    if (names.has(f.name)) throw new UsageError(`reward "${f.name}" appears twice`);
    if (!Number.isFinite(f.weight)) throw new UsageError(`reward "${f.name}" has a non-finite weight`);
    names.add(f.name);
  }
  return (group, ctx) => {
    const n = group.completions.length;
    const total = new Array<number>(n).fill(0);
    const perFunction: Record<string, number[]> = {};
    for (const f of fns) {
      const rs = f.fn(group, ctx).rewards;
      if (rs.length !== n)
        throw new TtrlError(`reward "${f.name}" returned ${rs.length} rewards for a group of ${n}`);
      perFunction[f.name] = rs;
      for (let i = 0; i < n; i++) total[i] += f.weight * rs[i];
    }
    return { total, perFunction };
  };
}
