/**
 * Scoring whole groups (stage 2 of a GRPO step): every completion of a group votes and is rewarded, then
 * the trainer keeps M of the N completions for the update (TTRL's "N vote, M trained"). Pure: no tensors,
 * no I/O; everything random comes from (seed, step, group), so a resumed run scores exactly as the
 * uninterrupted one. Other engines (src/engines/trl) reuse it to score TRL's samples the same way.
 */
import { graderFor, isMissingLabel } from "../answers/index.ts";
import {
  accuracyReward,
  type Group,
  groupVoter,
  type MajorityVote,
  type RewardFn,
  rewardDef,
  type VoteMonitors,
  voteMonitors,
  type WeightedReward,
  weightedRewards,
} from "../rewards/index.ts";
import { TtrlError } from "../util/errors.ts";
import { Rng } from "../util/rng.ts";
import { type GrpoConfig, rewardFuncs } from "./config.ts";

export interface ScoreSettings {
  seed: number;
  /** The weighted reward functions (TRL's reward_funcs / reward_weights). */
  rewards: WeightedReward[];
  /** How a group's majority vote is taken (answer extraction, tie policy): in every run, as a monitor. */
  vote: (group: Group, rng?: Rng) => MajorityVote;
  /** Accuracy against the label, as a monitor, when the row has a label. */
  accuracy: RewardFn;
  /** M completions of each group kept for the update, the first M or M at random (seeded). */
  keep: { count: number | null; pick: "first" | "random" };
}

export interface ScoredGroup {
  /** Weighted reward of every completion of the group (length N). */
  rewards: number[];
  /** Each reward function's rewards (length N). */
  perFunction: Record<string, number[]>;
  /** Completions (indices into the group) kept for the update, ascending (length M). */
  kept: number[];
  /** The group's majority vote (answers and pseudo-label). */
  vote: MajorityVote;
  /** Label-free monitors of the vote; `labelAccuracy` / `rewardAccuracy` (over `kept`) only with a label. */
  monitors: VoteMonitors & {
    /** Accuracy reward of every completion (length N), only with a label. */
    accuracy?: number[];
  };
}

/** The configured rewards, built from the registry (src/rewards). */
export function buildRewards(c: GrpoConfig): WeightedReward[] {
  const funcs = rewardFuncs(c);
  const weights = c.reward_weights ?? funcs.map(() => 1);
  const s = { format: c.answer_format, locale: c.locale, mode: c.reward_mode, tie: c.tie };
  return funcs.map((name, i) => ({ name, fn: rewardDef(name).make(s), weight: weights[i] }));
}

export function scoreSettings(c: GrpoConfig, rewards: WeightedReward[] = buildRewards(c)): ScoreSettings {
  const g = { format: c.answer_format, locale: c.locale };
  return {
    seed: c.seed,
    rewards,
    vote: groupVoter({ ...g, mode: c.reward_mode, tie: c.tie }),
    accuracy: accuracyReward({ ...g, mode: c.reward_mode }),
    keep: { count: c.rewarded_count, pick: c.rewarded_pick },
  };
}

/**
 * Score the step's groups. Per group, one seeded rng (`reward/<step>/<group>`) is used in this order: the
 * vote's random tie-break, then the random pick of the kept completions.
 */
export function scoreGroups(groups: Group[], s: ScoreSettings, step: number): ScoredGroup[] {
  const combine = weightedRewards(s.rewards);
  return groups.map((group, gi) => {
    const rng = new Rng(s.seed).fork(`reward/${step}/${gi}`);
    const vote = s.vote(group, rng);
    const { total, perFunction } = combine(group, { rng, step, vote });
    const kept = keepIndices(group.completions.length, s.keep, rng);
    const monitors: ScoredGroup["monitors"] = voteMonitors(vote, group.label, kept);
    if (!isMissingLabel(group.label)) monitors.accuracy = s.accuracy(group, { rng: new Rng(0) }).rewards;
    return { rewards: total, perFunction, kept, vote, monitors };
  });
}

function keepIndices(n: number, keep: ScoreSettings["keep"], rng: Rng): number[] {
  const m = keep.count ?? n;
  if (m > n) throw new TtrlError(`rewarded_count ${m} exceeds the group size ${n}`);
  if (m === n) return Array.from({ length: n }, (_, i) => i);
  if (keep.pick === "first") return Array.from({ length: m }, (_, i) => i);
  return rng.sampleIndices(n, m).sort((a, b) => a - b);
}

/** The answer a completion gives (for generations.jsonl), in the rewards' extraction mode. */
export function answerOf(c: GrpoConfig): (text: string) => string | null {
  const grader = graderFor({ format: c.answer_format, locale: c.locale });
  return (text) => grader.extractAnswer(text, c.reward_mode).answer;
}
