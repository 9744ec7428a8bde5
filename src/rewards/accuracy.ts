/** Accuracy reward: agreement with the row's label (GRPO with labels). */
import { canonicalLabel, type GradeOptions, graderFor, isMissingLabel, type Mode } from "../answers/index.ts";
import { TtrlError } from "../util/errors.ts";
import { gradeOpts, type RewardDef, type RewardFn } from "./types.ts";

/** 1 when the completion's answer (in `mode`, default strict) equals the group's label, else 0. */
export function accuracyReward(opts: GradeOptions & { mode?: Mode } = {}): RewardFn {
  const mode = opts.mode ?? "strict";
  const grader = graderFor(gradeOpts(opts));
  return (group) => {
    if (isMissingLabel(group.label))
      throw new TtrlError("accuracy reward needs a label, but the group has none");
    const label = canonicalLabel(group.label);
    return {
      rewards: group.completions.map((c) => (grader.extractAnswer(c, mode).answer === label ? 1 : 0)),
    };
  };
}

export const accuracy: RewardDef = {
  description: "1 when the answer equals the row's label, else 0 (needs labels)",
  needsLabel: true,
  make: (s) => accuracyReward(s),
};
