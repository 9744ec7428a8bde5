/**
 * Finding and reading the folders a report is made from: eval folders (`metrics.json`, `eval_config.json`,
 * `generations.jsonl`, optional `details.jsonl`) and train run folders (`train_log.jsonl`, `config.json`,
 * `generations.jsonl`). A folder given on the command line may be either, or a parent searched recursively.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join, relative, resolve } from "node:path";
import { type GradeOptions, gradeCompletion } from "../answers/index.ts";
import { readJsonl } from "../io/jsonl.ts";
import { InputError, UsageError } from "../util/errors.ts";

export type Mode = "strict" | "flexible";
export const MODES: Mode[] = ["strict", "flexible"];

/** One mode of a `ttrl grade` metrics.json; correctness fields are null when the rows had no labels. */
export interface ModeMetrics {
  valid_ratio: number | null;
  accuracy: number | null;
  "pass@k": Record<string, number | null> | null;
  "pass@k_first": Record<string, number | null> | null;
  "cons@k": Record<string, number | null> | null;
  "cons@k_first": Record<string, number | null> | null;
  ci95: { accuracy?: [number, number] | null; [k: string]: unknown } | null;
}

export interface MetricsJson {
  n_questions: number | null;
  n_completions: number | null;
  strict: ModeMetrics;
  flexible: ModeMetrics;
}

/** One completion of an eval example, with its parsed answers when details.jsonl (or grading) gave them. */
export interface EvalCompletion {
  text: string;
  strict?: { valid: boolean; answer: string | null; correct: boolean | null };
  flexible?: { valid: boolean; answer: string | null; correct: boolean | null };
}

export interface EvalExample {
  id: string;
  label: string | null;
  completions: EvalCompletion[];
}

export interface EvalRun {
  kind: "eval";
  dir: string;
  label: string;
  metrics: MetricsJson;
  config: Record<string, unknown> | null;
  examples: EvalExample[];
}

export interface TrainExample {
  step: number | null;
  promptId: string | null;
  prompt: string | null;
  completion: string;
  answer: string | null;
  rewards: Record<string, number | null>;
  pseudoLabel: string | null;
  label: string | null;
  advantage: number | null;
}

export type LogRow = Record<string, number | null>;

export interface TrainRun {
  kind: "train";
  dir: string;
  label: string;
  reward: string | null;
  config: Record<string, unknown> | null;
  log: LogRow[];
  /** Log lines skipped because they were not valid JSON (e.g. a line cut short by a crash). */
  skippedLogLines: number;
  examples: TrainExample[];
}

export interface LoadOptions {
  /** Eval questions read for the examples table (from the start of generations.jsonl). */
  evalExamples?: number;
  /** Train generations kept for the examples table (the last step's first ones). */
  trainExamples?: number;
}

const SKIP_DIRS = new Set(["node_modules", "checkpoints", "final", ".git"]);
const MAX_DEPTH = 8;

/** Folders under `dirs` that are eval folders or train run folders, in a stable order. */
export function discoverRuns(dirs: string[]): { evals: string[]; trains: string[] } {
  const evals: string[] = [];
  const trains: string[] = [];
  const seen = new Set<string>();
  for (const d of dirs) {
    const root = resolve(d);
    if (!existsSync(root)) throw new UsageError(`--runs ${d}: no such folder`);
    if (!statSync(root).isDirectory()) throw new UsageError(`--runs ${d}: not a folder`);
    const found: { evals: string[]; trains: string[] } = { evals: [], trains: [] };
    walk(root, 0, found);
    if (found.evals.length === 0 && found.trains.length === 0)
      throw new InputError(
        d,
        undefined,
        "no eval folder (metrics.json) or train run folder (train_log.jsonl) found in it or below it",
      );
    for (const e of sortRunDirs(found.evals, root))
      if (!seen.has(e)) {
        seen.add(e);
        evals.push(e);
      }
    for (const t of sortRunDirs(found.trains, root))
      if (!seen.has(t)) {
        seen.add(t);
        trains.push(t);
      }
  }
  return { evals, trains };
}

function walk(dir: string, depth: number, found: { evals: string[]; trains: string[] }): void {
  const isEval = existsSync(join(dir, "metrics.json"));
  const isTrain = existsSync(join(dir, "train_log.jsonl"));
  if (isEval) found.evals.push(dir);
  if (isTrain) found.trains.push(dir);
  if (isEval || depth >= MAX_DEPTH) return; // an eval folder holds no other runs
  let entries: string[];
  try {
    entries = readdirSync(dir).sort();
  } catch {
    return;
  }
  for (const name of entries) {
    if (name.startsWith(".") || SKIP_DIRS.has(name)) continue;
    const p = join(dir, name);
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(p);
    } catch {
      continue;
    }
    if (st.isDirectory()) walk(p, depth + 1, found);
  }
}

/** Alphabetical by path, except that a folder whose name mentions the base model comes first. */
function sortRunDirs(dirs: string[], root: string): string[] {
  const key = (d: string) => {
    const rel = relative(root, d).toLowerCase();
    return /(^|[^a-z])base([^a-z]|$)/.test(rel) ? 0 : 1;
  };
  return [...dirs].sort((a, b) => key(a) - key(b) || (a < b ? -1 : a > b ? 1 : 0));
}

function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new InputError(file, undefined, `cannot read: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text.replace(/^\uFEFF/, ""));
  } catch (e) {
    throw new InputError(file, undefined, `malformed JSON: ${(e as Error).message}`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function num(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

function str(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return null;
}

function numRecord(v: unknown, file: string, where: string): Record<string, number | null> | null {
  if (v === null || v === undefined) return null;
  if (!isObject(v)) throw new InputError(file, undefined, `${where} must be an object keyed by k`);
  const out: Record<string, number | null> = {};
  for (const [k, x] of Object.entries(v)) {
    if (!/^\d+$/.test(k)) throw new InputError(file, undefined, `${where} has a key "${k}" that is not a k`);
    if (x !== null && typeof x !== "number")
      throw new InputError(file, undefined, `${where}["${k}"] must be a number or null`);
    out[k] = num(x);
  }
  return out;
}

function checkRatio(v: unknown, file: string, where: string): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > 1)
    throw new InputError(
      file,
      undefined,
      `${where} must be a ratio in [0, 1] or null, got ${JSON.stringify(v)}`,
    );
  return v;
}

/** Validate a `ttrl grade` metrics.json. */
export function parseMetrics(value: unknown, file: string): MetricsJson {
  if (!isObject(value))
    throw new InputError(file, undefined, "not a ttrl grade metrics.json (not an object)");
  const modes = {} as Record<Mode, ModeMetrics>;
  for (const mode of MODES) {
    const m = value[mode];
    if (!isObject(m))
      throw new InputError(
        file,
        undefined,
        `not a ttrl grade metrics.json: "${mode}" is missing or not an object`,
      );
    const ci = isObject(m.ci95) ? m.ci95 : null;
    let acc: [number, number] | null = null;
    if (ci && Array.isArray(ci.accuracy) && ci.accuracy.length === 2) {
      const [lo, hi] = ci.accuracy.map(num);
      if (lo !== null && hi !== null) acc = [lo, hi];
    }
    modes[mode] = {
      valid_ratio: checkRatio(m.valid_ratio, file, `${mode}.valid_ratio`),
      accuracy: checkRatio(m.accuracy, file, `${mode}.accuracy`),
      "pass@k": numRecord(m["pass@k"], file, `${mode}["pass@k"]`),
      "pass@k_first": numRecord(m["pass@k_first"], file, `${mode}["pass@k_first"]`),
      "cons@k": numRecord(m["cons@k"], file, `${mode}["cons@k"]`),
      "cons@k_first": numRecord(m["cons@k_first"], file, `${mode}["cons@k_first"]`),
      ci95: ci ? { ...ci, accuracy: acc } : null,
    };
  }
  return {
    n_questions: num(value.n_questions),
    n_completions: num(value.n_completions),
    strict: modes.strict,
    flexible: modes.flexible,
  };
}

function parseGrade(v: unknown): EvalCompletion["strict"] {
  if (!isObject(v)) return undefined;
  return {
    valid: v.valid === true,
    answer: str(v.answer),
    correct: typeof v.correct === "boolean" ? v.correct : null,
  };
}

export async function loadEvalRun(dir: string, opts: LoadOptions = {}): Promise<Omit<EvalRun, "label">> {
  const nEx = opts.evalExamples ?? 6;
  const metricsFile = join(dir, "metrics.json");
  const metrics = parseMetrics(readJsonFile(metricsFile), metricsFile);
  const cfgFile = join(dir, "eval_config.json");
  const cfgRaw = existsSync(cfgFile) ? readJsonFile(cfgFile) : null;
  if (cfgRaw !== null && !isObject(cfgRaw)) throw new InputError(cfgFile, undefined, "must be a JSON object");
  const examples: EvalExample[] = [];
  const genFile = join(dir, "generations.jsonl");
  if (nEx > 0 && existsSync(genFile)) {
    for await (const { line, value } of readJsonl(genFile)) {
      if (!isObject(value) || !Array.isArray(value.completions))
        throw new InputError(genFile, line, 'expected {"id", "label", "completions": [...]}');
      examples.push({
        id: str(value.id) ?? `line ${line}`,
        label: str(value.label),
        completions: value.completions.map((c) => ({ text: typeof c === "string" ? c : JSON.stringify(c) })),
      });
      if (examples.length >= nEx) break;
    }
  }
  const detFile = join(dir, "details.jsonl");
  if (examples.length > 0 && existsSync(detFile)) {
    const byId = new Map(examples.map((e) => [e.id, e]));
    let read = 0;
    for await (const { line, value } of readJsonl(detFile)) {
      if (!isObject(value) || !Array.isArray(value.completions))
        throw new InputError(
          detFile,
          line,
          'expected {"id", "label", "completions": [{"strict", "flexible"}]}',
        );
      const ex = byId.get(str(value.id) ?? "");
      if (ex)
        value.completions.forEach((c, i) => {
          const target = ex.completions[i];
          if (!target || !isObject(c)) return;
          target.strict = parseGrade(c.strict);
          target.flexible = parseGrade(c.flexible);
        });
      if (++read >= examples.length * 4) break; // details follow generations' order; don't read a huge file
    }
  }
  gradeMissing(examples, cfgRaw);
  return { kind: "eval", dir, metrics, config: cfgRaw, examples };
}

/** Parse the examples that details.jsonl did not cover with the grading core (format/locale from eval_config). */
function gradeMissing(examples: EvalExample[], cfg: Record<string, unknown> | null): void {
  const opts: GradeOptions = {};
  if (typeof cfg?.format === "string") opts.format = cfg.format;
  if (typeof cfg?.extract === "string") opts.extract = cfg.extract as GradeOptions["extract"];
  if (cfg?.locale === "tr-TR" || cfg?.locale === "en-US") opts.locale = cfg.locale;
  for (const ex of examples)
    for (const c of ex.completions) {
      if (c.strict && c.flexible) continue;
      try {
        const g = gradeCompletion(c.text, ex.label, opts);
        c.strict = g.strict;
        c.flexible = g.flexible;
      } catch {
        return; // e.g. an unknown format name in eval_config: leave the answers unparsed
      }
    }
}

function rewardsOf(v: Record<string, unknown>): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  const r = v.rewards;
  if (isObject(r)) for (const [k, x] of Object.entries(r)) out[k] = num(x);
  else if (typeof r === "number") out.reward = r;
  if (typeof v.reward === "number" && !("reward" in out)) out.total = v.reward;
  return out;
}

/** Pick the step rows of a train generations.jsonl: the first `n` of the last step seen. */
async function loadTrainExamples(file: string, n: number): Promise<TrainExample[]> {
  if (n <= 0 || !existsSync(file)) return [];
  let lastStep: number | null = null;
  let keep: TrainExample[] = [];
  for await (const { line, value } of readJsonl(file, { skipInvalid: true })) {
    if (!isObject(value)) throw new InputError(file, line, "expected a JSON object per line");
    const step = num(value.step);
    if (step !== lastStep) {
      lastStep = step;
      keep = [];
    }
    if (keep.length >= n) continue;
    const completion = str(value.completion) ?? str(value.text);
    if (completion === null) throw new InputError(file, line, 'no "completion" string');
    keep.push({
      step,
      promptId: str(value.prompt_id ?? value.id ?? value.promptId),
      prompt: str(value.prompt),
      completion,
      answer: str(value.parsed_answer ?? value.answer ?? value.parsed),
      rewards: rewardsOf(value),
      pseudoLabel: str(value.pseudo_label ?? value.pseudoLabel),
      label: str(value.label),
      advantage: num(value.advantage),
    });
  }
  return keep;
}

export async function loadTrainRun(dir: string, opts: LoadOptions = {}): Promise<Omit<TrainRun, "label">> {
  const cfgFile = join(dir, "config.json");
  const cfgRaw = existsSync(cfgFile) ? readJsonFile(cfgFile) : null;
  if (cfgRaw !== null && !isObject(cfgRaw)) throw new InputError(cfgFile, undefined, "must be a JSON object");
  const logFile = join(dir, "train_log.jsonl");
  const log: LogRow[] = [];
  let skipped = 0;
  for await (const { line, value } of readJsonl(logFile, { skipInvalid: true, onSkip: () => skipped++ })) {
    if (!isObject(value)) throw new InputError(logFile, line, "expected a JSON object per line");
    const row: LogRow = {};
    for (const [k, v] of Object.entries(value)) if (typeof v === "number" || v === null) row[k] = num(v);
    if (row.step === undefined || row.step === null) row.step = log.length + 1;
    log.push(row);
  }
  const reward = cfgRaw ? str((cfgRaw as Record<string, unknown>).reward) : null;
  const examples = await loadTrainExamples(join(dir, "generations.jsonl"), opts.trainExamples ?? 6);
  return { kind: "train", dir, reward, config: cfgRaw, log, skippedLogLines: skipped, examples };
}

/** Label of a run: the model name of an eval, the run name of a train run, else the folder name. */
export function runLabel(run: Omit<EvalRun, "label"> | Omit<TrainRun, "label">): string {
  const cfg = run.config ?? {};
  const names =
    run.kind === "eval"
      ? [cfg.model_name, cfg.modelName]
      : [cfg.name, cfg.run_name, cfg.runName, cfg.model_name];
  for (const n of names) if (typeof n === "string" && n.trim() !== "") return n.trim();
  return basename(run.dir);
}

/** Make labels unique by adding the parent folder's name (then a counter) to repeated ones. */
export function uniqueLabels(dirs: string[], labels: string[]): string[] {
  const count = new Map<string, number>();
  for (const l of labels) count.set(l, (count.get(l) ?? 0) + 1);
  const out = labels.map((l, i) =>
    (count.get(l) ?? 0) > 1 ? `${l} (${basename(resolve(dirs[i], ".."))})` : l,
  );
  const seen = new Map<string, number>();
  return out.map((l) => {
    const n = (seen.get(l) ?? 0) + 1;
    seen.set(l, n);
    return n > 1 ? `${l} #${n}` : l;
  });
}

export interface LoadedRuns {
  evals: EvalRun[];
  trains: TrainRun[];
}

export async function loadRuns(dirs: string[], opts: LoadOptions = {}): Promise<LoadedRuns> {
  const found = discoverRuns(dirs);
  const evals0 = await Promise.all(found.evals.map((d) => loadEvalRun(d, opts)));
  const trains0 = await Promise.all(found.trains.map((d) => loadTrainRun(d, opts)));
  const el = uniqueLabels(found.evals, evals0.map(runLabel));
  const tl = uniqueLabels(found.trains, trains0.map(runLabel));
  return {
    evals: evals0.map((r, i) => ({ ...r, label: el[i] })),
    trains: trains0.map((r, i) => ({ ...r, label: tl[i] })),
  };
}
