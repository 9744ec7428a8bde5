/**
 * Sampling (stage 1 of a GRPO step): N completions for each of the step's prompts, every one with its own
 * seed derived from (seed, step, row), so a resumed run samples exactly what the uninterrupted run did.
 */
import type { Group } from "../rewards/index.ts";
import { hashString } from "../util/rng.ts";
import type { GrpoConfig } from "./config.ts";
import type { Params } from "./optim.ts";
import type { Policy, Sample } from "./policy.ts";

export function sampleSeed(seed: number, step: number, row: number): number {
  return hashString(`${seed}/sample/${step}/${row}`);
}

export interface SampledGroups {
  /** N samples per prompt, in prompt order. */
  groups: Sample[][];
  /** Seconds spent sampling. */
  seconds: number;
}

export async function sampleGroups(
  policy: Policy,
  params: Params,
  prompts: number[][],
  c: Pick<
    GrpoConfig,
    "seed" | "num_generations" | "max_completion_length" | "temperature" | "top_p" | "top_k" | "stop"
  >,
  step: number,
): Promise<SampledGroups> {
  const N = c.num_generations;
  const rows = prompts.flatMap((p) => Array.from({ length: N }, () => p));
  const seeds = rows.map((_, i) => sampleSeed(c.seed, step, i));
  const t0 = performance.now();
  const samples = await policy.generate(params, rows, {
    maxNewTokens: c.max_completion_length,
    temperature: c.temperature,
    topP: c.top_p,
    topK: c.top_k,
    seeds,
    stop: c.stop,
  });
  const seconds = (performance.now() - t0) / 1000;
  return { groups: prompts.map((_, pi) => samples.slice(pi * N, (pi + 1) * N)), seconds };
}

/** The groups as the rewards see them: completion texts and the row's label (null when unlabeled). */
export function rewardGroups(
  sampled: SampledGroups,
  labels: (string | number | null | undefined)[],
): Group[] {
  return sampled.groups.map((g, pi) => ({ completions: g.map((s) => s.text), label: labels[pi] ?? null }));
}
