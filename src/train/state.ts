/**
 * The run folder's life, shared by `ttrl train` (GRPO) and `ttrl sft`: opening it (a used folder needs
 * `resume` or `overwrite`; a resume must keep the settings that decide the weights), resuming from the
 * latest checkpoint, periodic checkpoints and the final save.
 *
 * `checkpoints/step-N/` holds the model (HF layout, via the policy's `save`), `optimizer.safetensors`
 * (AdamW moments, float32) and `trainer_state.json` (step counters and data position; no RNG state:
 * everything random is derived from the seed and the step). A checkpoint is written into a temp folder and
 * renamed, so a killed run never leaves a half-written `step-N`.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeJsonAtomic } from "../io/atomic.ts";
import { SafetensorsFile, SafetensorsWriter } from "../io/safetensors.ts";
import { tree } from "../runtime/jax.ts";
import { TtrlError, UsageError } from "../util/errors.ts";
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

export const CONFIG_FILE = "config.json";
/** Keys of config.json that are not settings. */
const RECORD_KEYS = ["total_steps", "resumed_changes"];

/** The settings saved in a run folder's config.json (without the run's own records), or null. */
export function savedSettings(outDir: string): Record<string, unknown> | null {
  const p = join(outDir, CONFIG_FILE);
  if (!existsSync(p)) return null;
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(p, "utf8"));
  } catch (e) {
    throw new TtrlError(`${p}: cannot read the saved settings (${(e as Error).message})`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new TtrlError(`${p}: expected a JSON object of settings`);
  const out = { ...(v as Record<string, unknown>) };
  for (const k of RECORD_KEYS) delete out[k];
  return out;
}

export interface OpenRunOptions<C extends object> {
  outDir: string;
  /** The run's resolved settings; written to config.json with `total_steps`. */
  config: C;
  totalSteps: number;
  resume?: boolean;
  /** Start over in a used folder, deleting what it holds. */
  overwrite?: boolean;
  /** Settings a resume may change without changing the weights (they are recorded in config.json). */
  resumeMayChange: readonly string[];
  /** JSONL logs of the run (cut back to the checkpoint's step on resume). */
  logs: string[];
  /** Where notes go (default stderr). */
  note?: (msg: string) => void;
}

/**
 * Open a run folder. Fresh (no `resume`): the folder must be new or empty, or `overwrite` clears it.
 * `resume` continues from the latest checkpoint (weights and optimizer state into `params` / `opt`) and
 * refuses settings that differ from the saved ones in anything but `resumeMayChange`, naming each; with no
 * checkpoint yet it starts over. Returns the weights to train (replacing `params`) and the first step.
 */
export async function openRun<C extends object>(
  o: OpenRunOptions<C>,
  policy: Policy,
  params: Params,
  opt: AdamW,
): Promise<{ params: Params; start: number }> {
  const note = o.note ?? ((m: string) => process.stderr.write(`${m}\n`));
  const record: Record<string, unknown> = { ...o.config, total_steps: o.totalSteps };
  if (!o.resume) {
    const used = existsSync(o.outDir) ? readdirSync(o.outDir) : [];
    if (used.length > 0) {
      if (!o.overwrite)
        throw new UsageError(
          `${o.outDir} already holds a run (${used.slice(0, 4).join(", ")}${used.length > 4 ? ", …" : ""}); use --resume to continue it or --overwrite to delete it and start over`,
        );
      rmSync(o.outDir, { recursive: true, force: true });
    }
  }
  mkdirSync(o.outDir, { recursive: true });
  const ck = o.resume ? latestCheckpoint(o.outDir) : null;
  let start = 0;
  if (ck) {
    const changes = resumeChanges(o.outDir, record, o.resumeMayChange);
    if (changes.length) {
      const prev = readRecord(o.outDir).resumed_changes;
      record.resumed_changes = [
        ...(Array.isArray(prev) ? prev : []),
        { at_step: readTrainerState(ck).step, changed: Object.fromEntries(changes) },
      ];
      for (const [k, [a, b]] of changes)
        note(
          `resume: ${k} ${JSON.stringify(a)} → ${JSON.stringify(b)} (does not change the weights; recorded in config.json)`,
        );
    } else if (readRecord(o.outDir).resumed_changes !== undefined) {
      record.resumed_changes = readRecord(o.outDir).resumed_changes;
    }
    const st = readTrainerState(ck);
    const loaded = await policy.loadParams(ck);
    tree.dispose(params);
    params = loaded;
    opt.setState(await readOptimizer(join(ck, OPTIMIZER_FILE)));
    start = st.step;
    for (const log of o.logs) truncateLog(join(o.outDir, log), start);
  } else {
    for (const log of o.logs) rmSync(join(o.outDir, log), { force: true });
  }
  await writeJsonAtomic(join(o.outDir, CONFIG_FILE), record);
  return { params, start };
}

function readRecord(outDir: string): Record<string, unknown> {
  const p = join(outDir, CONFIG_FILE);
  return existsSync(p) ? (JSON.parse(readFileSync(p, "utf8")) as Record<string, unknown>) : {};
}

/**
 * Settings of a resume that differ from the saved run: a UsageError naming each one that would change the
 * weights (the resumed run would not be the run that was started); the others, as [key, [old, new]].
 */
function resumeChanges(
  outDir: string,
  record: Record<string, unknown>,
  mayChange: readonly string[],
): [string, [unknown, unknown]][] {
  const saved = readRecord(outDir);
  // Keys the saved run does not have (settings added to ttrl since) are taken at their defaults.
  const keys = Object.keys(saved).filter((k) => k !== "resumed_changes");
  const diff = keys
    .filter((k) => JSON.stringify(saved[k]) !== JSON.stringify(record[k]))
    .map((k): [string, [unknown, unknown]] => [k, [saved[k], record[k]]]);
  const breaking = diff.filter(([k]) => !mayChange.includes(k));
  if (breaking.length)
    throw new UsageError(
      `--resume: ${breaking.map(([k, [a, b]]) => `${k} ${JSON.stringify(a)} → ${JSON.stringify(b)}`).join(", ")} differ from the run saved in ${join(outDir, CONFIG_FILE)}; a resumed run keeps the settings that decide the weights (drop the changed flags, or start a new run with --out elsewhere or --overwrite)`,
    );
  return diff;
}

/** Save a checkpoint every `saveSteps` steps (0: never) and after the last step. */
export async function maybeCheckpoint(
  run: { outDir: string; policy: Policy; opt: AdamW },
  params: Params,
  state: TrainerState,
  s: { save_steps: number; save_total_limit: number },
  totalSteps: number,
): Promise<void> {
  if ((s.save_steps > 0 && state.step % s.save_steps === 0) || state.step === totalSteps)
    await saveTrainingCheckpoint(run.outDir, run.policy, params, run.opt, state, s.save_total_limit);
}

/** The final save: `final/` (in `dtype`) and the DONE marker. Returns final/'s path. */
export async function finishRun(
  outDir: string,
  policy: Policy,
  params: Params,
  dtype: "F32" | "BF16" | "F16",
): Promise<string> {
  const finalDir = join(outDir, "final");
  rmSync(finalDir, { recursive: true, force: true });
  await policy.save(params, finalDir, { dtype });
  writeFileSync(join(outDir, "DONE"), `${new Date().toISOString()}\n`);
  return finalDir;
}
