/** Format reward: a fixed value for a completion whose answer is extractable in `mode`. */
import { type GradeOptions, graderFor, type Mode } from "../answers/index.ts";
import { gradeOpts, type RewardDef, type RewardFn } from "./types.ts";

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

export const format: RewardDef = {
  description: "1 for a completion in the answer format, else 0 (no label)",
  needsLabel: false,
  make: (s) => formatReward(s),
};
