/**
 * Stages of an experiment, keyed by a hash of their inputs (settings + fingerprints of upstream outputs).
 * State lives in `<root>/stages/<name>.json`: `running` while a stage works, `done` with its output's
 * fingerprint after. Re-running skips a done stage whose key matches, resumes a stage left `running` with
 * the same key, and redoes (after clearing its output) a stage whose inputs changed.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { writeJsonAtomic } from "../io/atomic.ts";

export interface StageState {
  name: string;
  key: string;
  status: "running" | "done";
  started: string;
  finished?: string;
  seconds?: number;
  /** Fingerprint of the stage's output (what downstream keys are made from). */
  output_hash?: string;
  attempts: number;
}

export interface StageDef {
  name: string;
  /** Everything the stage's result depends on (JSON). */
  inputs: unknown;
  /** Folder the stage writes (cleared before a fresh run). */
  output: string;
  /** Do the work; `resume` is true when a previous attempt with the same key was interrupted. */
  run(resume: boolean): Promise<void>;
  /** Fingerprint of the finished output (default: hash of every file under `output`). */
  fingerprint?(): string;
}

export interface StageOutcome {
  name: string;
  status: "skipped" | "ran" | "resumed";
  key: string;
  outputHash: string;
  seconds: number;
}

export function hashJson(v: unknown): string {
  return createHash("sha256").update(stableStringify(v)).digest("hex");
}

/** JSON with object keys sorted, so equal values hash equally. */
export function stableStringify(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(",")}]`;
  if (v && typeof v === "object")
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stableStringify((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  return JSON.stringify(v) ?? "null";
}

/** Content hash of a file, or of every file under a folder (relative names + contents), skipping `skip`. */
export function hashPath(path: string, skip: (rel: string) => boolean = () => false): string {
  const h = createHash("sha256");
  if (!existsSync(path)) throw new Error(`${path}: not found`);
  if (statSync(path).isFile()) {
    h.update(readFileSync(path));
    return h.digest("hex");
  }
  const walk = (dir: string): string[] =>
    readdirSync(dir)
      .sort()
      .flatMap((n) => {
        const p = join(dir, n);
        return statSync(p).isDirectory() ? walk(p) : [p];
      });
  for (const f of walk(path)) {
    const rel = relative(path, f).split("\\").join("/");
    if (skip(rel)) continue;
    h.update(`${rel}\u0000${statSync(f).size}\u0000`);
    h.update(readFileSync(f));
  }
  return h.digest("hex");
}

export function stageStatePath(root: string, name: string): string {
  return join(root, "stages", `${name}.json`);
}

export function readStageState(root: string, name: string): StageState | null {
  const p = stageStatePath(root, name);
  if (!existsSync(p)) return null;
  try {
    return JSON.parse(readFileSync(p, "utf8")) as StageState;
  } catch {
    return null;
  }
}

export async function runStage(
  root: string,
  def: StageDef,
  log: (msg: string) => void = () => {},
): Promise<StageOutcome> {
  const key = hashJson(def.inputs);
  const prev = readStageState(root, def.name);
  const fingerprint = def.fingerprint ?? (() => hashPath(def.output));
  if (prev && prev.key === key && prev.status === "done" && existsSync(def.output)) {
    log(`${def.name}: done before (key ${key.slice(0, 10)}), skipped`);
    return {
      name: def.name,
      status: "skipped",
      key,
      outputHash: prev.output_hash ?? fingerprint(),
      seconds: 0,
    };
  }
  const resume = Boolean(prev && prev.key === key && prev.status === "running" && existsSync(def.output));
  if (!resume) rmSync(def.output, { recursive: true, force: true });
  log(
    `${def.name}: ${resume ? "resuming an interrupted run" : prev ? "inputs changed, running again" : "running"}`,
  );
  const started = new Date().toISOString();
  const state: StageState = {
    name: def.name,
    key,
    status: "running",
    started,
    attempts: (resume && prev ? prev.attempts : 0) + 1,
  };
  await writeJsonAtomic(stageStatePath(root, def.name), state);
  const t0 = Date.now();
  await def.run(resume);
  const seconds = (Date.now() - t0) / 1000;
  const outputHash = fingerprint();
  await writeJsonAtomic(stageStatePath(root, def.name), {
    ...state,
    status: "done",
    finished: new Date().toISOString(),
    seconds,
    output_hash: outputHash,
  });
  log(`${def.name}: finished in ${seconds.toFixed(1)} s`);
  return { name: def.name, status: resume ? "resumed" : "ran", key, outputHash, seconds };
}
