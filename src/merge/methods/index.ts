/**
 * The merge methods, by the name a mergekit config gives in `merge_method`. A new method is one file in
 * this folder (its spec and per-tensor function, a `MergeMethod`) plus one line here.
 */
import { dareLinear, dareTies } from "./dare.ts";
import { linear } from "./linear.ts";
import { slerp } from "./slerp.ts";
import { taskArithmetic } from "./task_arithmetic.ts";
import { ties } from "./ties.ts";
import type { MergeMethod } from "./types.ts";

export type { MergeContext, MergeMethod, MethodSpec, TensorJob, TensorParams } from "./types.ts";

export const METHODS: Record<string, MergeMethod> = Object.fromEntries(
  [slerp, linear, taskArithmetic, ties, dareTies, dareLinear].map((m) => [m.name, m]),
);
