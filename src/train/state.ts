/**
 * Run folders and checkpoints shared by `ttrl sft` and `ttrl train`: `checkpoints/step-N/` holds the
 * model (HF layout, via the policy's `save`), `optimizer.safetensors` (AdamW moments, float32) and
 * `trainer_state.json` (step counters, data position, RNG state). A checkpoint is written into a temp
 * folder and renamed, so a killed run never leaves a half-written `step-N`.
 */
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeJsonAtomic } from "../io/atomic.ts";
import { SafetensorsFile, SafetensorsWriter } from "../io/safetensors.ts";
import { TtrlError } from "../util/errors.ts";
import type { AdamW, OptimizerState, Params } from "./optim.ts";
import type { Policy } from "./policy.ts";

export interface TrainerState {
  /** Completed trainer steps (GRPO: generation batches; SFT: optimizer updates). */
  step: number;
  /** AdamW updates applied. */
  optimizerStep: number;
  /** Rows consumed from the seeded data order. */
  dataPosition: number;
  epoch: number;
  rng?: [number, number, number, number];
  [k: string]: unknown;
}

export const OPTIMIZER_FILE = "optimizer.safetensors";
export const STATE_FILE = "trainer_state.json";

export async function writeOptimizer(path: string, st: OptimizerState): Promise<void> {
  const tensors = st.names.flatMap((n, i) => [
    { name: `m.${n}`, dtype: "F32" as const, shape: st.shapes[i] },
    { name: `v.${n}`, dtype: "F32" as const, shape: st.shapes[i] },
  ]);
  const w = new SafetensorsWriter(path, tensors, { step: String(st.step) });
  for (let i = 0; i < st.names.length; i++) {
    await w.write(`m.${st.names[i]}`, st.m[i]);
    await w.write(`v.${st.names[i]}`, st.v[i]);
  }
  await w.close();
}

export async function readOptimizer(path: string): Promise<OptimizerState> {
  const f = await SafetensorsFile.open(path);
  try {
    const names = [...f.tensors.keys()]
      .filter((k) => k.startsWith("m."))
      .map((k) => k.slice(2))
      .sort();
    const st: OptimizerState = {
      step: Number(f.metadata.step ?? 0),
      names,
      shapes: names.map((n) => (f.tensors.get(`m.${n}`) as { shape: number[] }).shape),
      m: [],
      v: [],
    };
    for (const n of names) {
      st.m.push(await f.readF32(`m.${n}`));
      st.v.push(await f.readF32(`v.${n}`));
    }
    return st;
  } finally {
    await f.close();
  }
}

export async function saveTrainingCheckpoint(
  runDir: string,
  policy: Policy,
  params: Params,
  opt: AdamW,
  state: TrainerState,
  keep: number,
): Promise<string> {
  const root = join(runDir, "checkpoints");
  const final = join(root, `step-${state.step}`);
  const tmp = join(root, `.tmp-step-${state.step}`);
  rmSync(tmp, { recursive: true, force: true });
  await policy.save(params, tmp, { dtype: "F32" });
  await writeOptimizer(join(tmp, OPTIMIZER_FILE), await opt.getState());
  await writeJsonAtomic(join(tmp, STATE_FILE), state);
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  if (keep > 0) {
    const all = listCheckpoints(runDir);
    for (const s of all.slice(0, Math.max(0, all.length - keep)))
      rmSync(join(root, `step-${s}`), { recursive: true, force: true });
  }
  return final;
}

/** Completed checkpoint steps in ascending order. */
export function listCheckpoints(runDir: string): number[] {
  const root = join(runDir, "checkpoints");
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .map((n) => /^step-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null && existsSync(join(root, m[0], STATE_FILE)))
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

export function latestCheckpoint(runDir: string): string | null {
  const all = listCheckpoints(runDir);
  return all.length ? join(runDir, "checkpoints", `step-${all[all.length - 1]}`) : null;
}

export function readTrainerState(ckptDir: string): TrainerState {
  const p = join(ckptDir, STATE_FILE);
  try {
    return JSON.parse(readFileSync(p, "utf8")) as TrainerState;
  } catch (e) {
    throw new TtrlError(`${p}: cannot read trainer state (${(e as Error).message})`);
  }
}

/** Keep only log lines whose `step` is ≤ `step` (resuming drops what the killed run logged after it). */
export function truncateLog(path: string, step: number): void {
  if (!existsSync(path)) return;
  const keep = readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => {
      if (!l.trim()) return false;
      try {
        return (JSON.parse(l) as { step?: number }).step! <= step;
      } catch {
        return false;
      }
    });
  writeFileSync(path, keep.length ? `${keep.join("\n")}\n` : "");
}
