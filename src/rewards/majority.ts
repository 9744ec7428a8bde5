/**
 * TTRL's majority reward: agreement with the majority-voted answer of the group's own completions. The vote
 * is taken over the whole group (all N completions), never over a partial one.
 */
import { canonicalLabel, type GradeOptions, graderFor, isMissingLabel, type Mode } from "../answers/index.ts";
import { TtrlError, UsageError } from "../util/errors.ts";
import type { Rng } from "../util/rng.ts";
import {
  type Group,
  gradeOpts,
  type MajorityVote,
  type RewardDef,
  type RewardFn,
  type TiePolicy,
} from "./types.ts";

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

function checkTie(tie: TiePolicy): void {
  if (!["random", "first", "none"].includes(tie))
    throw new UsageError(`unknown tie policy "${tie}" (known: random, first, none)`);
}

/** A group's vote as the majority reward takes it: answers extracted in `mode`, ties broken by `tie`. */
export function groupVoter(
  opts: GradeOptions & { mode?: Mode; tie?: TiePolicy } = {},
): (group: Group, rng?: Rng) => MajorityVote {
  const mode = opts.mode ?? "strict";
  const tie = opts.tie ?? "random";
  checkTie(tie);
  const grader = graderFor(gradeOpts(opts));
  return (group, rng) =>
    majorityVote(
      group.completions.map((c) => grader.extractAnswer(c, mode).answer),
      tie,
      rng,
    );
}

/** 1 for each completion whose answer is the vote's pseudo-label, else 0 (all 0 without a pseudo-label). */
export function majorityRewards(vote: MajorityVote): number[] {
  return vote.answers.map((a) => (vote.pseudoLabel !== null && a === vote.pseudoLabel ? 1 : 0));
}

/**
 * TTRL majority reward over the whole group: completions whose answer equals the group's majority-voted
 * answer get 1, others 0. Uses `ctx.vote` when the caller has taken the vote already (the trainer does, so
 * the vote, its monitors and this reward agree), else votes itself with `ctx.rng` for ties.
 */
export function majorityReward(opts: GradeOptions & { mode?: Mode; tie?: TiePolicy } = {}): RewardFn {
  const vote = groupVoter(opts);
  return (group, ctx) => ({ rewards: majorityRewards(ctx.vote ?? vote(group, ctx.rng)) });
}

/** Label-free monitors of a vote (never used for a reward). */
export interface VoteMonitors {
  /** Votes for the pseudo-label's value / group size (0 with no valid answer). */
  majorityRatio: number;
  /** Only with a label: 1 when the pseudo-label equals it. */
  labelAccuracy?: number;
  /** Only with a label: share of the `indices` completions whose majority reward equals their accuracy. */
  rewardAccuracy?: number;
}

export function voteMonitors(
  vote: MajorityVote,
  label: Group["label"],
  indices: number[] = vote.answers.map((_, i) => i),
): VoteMonitors {
  const n = vote.answers.length;
  const out: VoteMonitors = { majorityRatio: n > 0 ? vote.topCount / n : 0 };
  if (!isMissingLabel(label)) {
    const l = canonicalLabel(label);
    out.labelAccuracy = vote.pseudoLabel === l ? 1 : 0;
    const maj = majorityRewards(vote);
    let agree = 0;
    for (const i of indices) if (maj[i] === (vote.answers[i] === l ? 1 : 0)) agree++;
    out.rewardAccuracy = indices.length > 0 ? agree / indices.length : 0;
  }
  return out;
}

export const majority: RewardDef = {
  description: "TTRL: 1 when the answer equals the group's majority vote, else 0 (no label)",
  needsLabel: false,
  make: (s) => majorityReward(s),
};
