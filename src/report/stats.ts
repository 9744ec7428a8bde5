/**
 * Question-level statistics of eval folders for the report and the experiment's summary: every model's
 * pass@k / cons@k / valid ratio / accuracy given a valid answer with 95% percentile-bootstrap intervals over
 * questions, and each model's difference from the base model with a *paired* bootstrap (the same resampled
 * questions for both models), so a difference is judged against its own sampling noise rather than against
 * two overlapping single-model intervals.
 *
 *   const s = await evalStats([{ label: "base", dir: "runs/x/eval/base" }, ...], { ks: [1, 8] });
 *   s.models[1].modes.flexible.pass["1"]   // { value, lo, hi }
 *   s.diffs[0]                             // { model, metric: "pass@1", mode, diff, lo, hi, excludesZero }
 *
 * Per-question inputs come from `details.jsonl` (each completion's strict/flexible grading), else from
 * `generations.jsonl` graded here with the eval's format and locale.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type GradeOptions, graderFor, type Mode, optionalLabel } from "../answers/index.ts";
import { readJsonl } from "../io/jsonl.ts";
import { binomial, CONS_MAX_SUBSETS, consAtK, passAtK } from "../metrics/index.ts";
import { InputError } from "../util/errors.ts";
import { Rng } from "../util/rng.ts";

export const STAT_MODES: Mode[] = ["strict", "flexible"];
export const STATS_RESAMPLES = 2000;

/** One question of one model: per mode, the canonical answer of each completion (null: invalid). */
export interface QuestionAnswers {
  id: string;
  label: string | null;
  answers: Record<Mode, (string | null)[]>;
}

export interface Estimate {
  value: number;
  /** 95% percentile-bootstrap interval over questions. */
  lo: number;
  hi: number;
}

export interface ModeStats {
  valid: Estimate;
  /** Σ correct / Σ completions (= mean pass@1 when every question has the same number of samples). */
  accuracy: Estimate;
  /** Σ correct / Σ valid completions: how often an answer the parser found was right. */
  accuracyGivenValid: Estimate | null;
  pass: Record<string, Estimate>;
  cons: Record<string, Estimate>;
}

export interface ModelStats {
  label: string;
  dir: string;
  nQuestions: number;
  samples: number;
  modes: Record<Mode, ModeStats>;
}

export type DiffMetric = "pass@1" | `pass@${number}` | `cons@${number}` | "valid" | "accuracy|valid";

export interface Diff {
  model: string;
  base: string;
  mode: Mode;
  metric: DiffMetric;
  /** model − base, on the questions both answered. */
  diff: number;
  lo: number;
  hi: number;
  /** The 95% interval excludes 0. */
  excludesZero: boolean;
  nQuestions: number;
}

export interface EvalStats {
  ks: number[];
  models: ModelStats[];
  /** Each non-base model against the base (the first model), per mode and metric. */
  diffs: Diff[];
  resamples: number;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function gradeOptionsOf(dir: string): GradeOptions {
  const f = join(dir, "eval_config.json");
  if (!existsSync(f)) return {};
  try {
    const cfg = JSON.parse(readFileSync(f, "utf8")) as Record<string, unknown>;
    const o: GradeOptions = {};
    if (typeof cfg.format === "string") o.format = cfg.format;
    if (typeof cfg.extract === "string") o.extract = cfg.extract as GradeOptions["extract"];
    if (cfg.locale === "tr-TR" || cfg.locale === "en-US") o.locale = cfg.locale;
    return o;
  } catch {
    return {};
  }
}

/** Every question of an eval folder with its answers per mode (details.jsonl, else graded generations). */
export async function loadQuestionAnswers(dir: string): Promise<QuestionAnswers[]> {
  const det = join(dir, "details.jsonl");
  const out: QuestionAnswers[] = [];
  if (existsSync(det)) {
    for await (const { line, value } of readJsonl(det)) {
      if (!isObject(value) || !Array.isArray(value.completions))
        throw new InputError(det, line, 'expected {"id", "label", "completions": [{"strict", "flexible"}]}');
      const label = optionalLabel(value.label as string | number | null | undefined);
      const answers: Record<Mode, (string | null)[]> = { strict: [], flexible: [] };
      for (const c of value.completions) {
        for (const mode of STAT_MODES) {
          const g = isObject(c) ? c[mode] : null;
          if (!isObject(g) || g.valid !== true) {
            answers[mode].push(null);
            continue;
          }
          // a correct answer is the label (canonical); else the parsed answer (already canonical)
          const a =
            g.correct === true && label !== null ? label : typeof g.answer === "string" ? g.answer : null;
          answers[mode].push(a);
        }
      }
      out.push({ id: String(value.id), label, answers });
    }
    return out;
  }
  const gen = join(dir, "generations.jsonl");
  if (!existsSync(gen)) throw new InputError(dir, undefined, "neither details.jsonl nor generations.jsonl");
  const grader = graderFor(gradeOptionsOf(dir));
  for await (const { line, value } of readJsonl(gen)) {
    if (!isObject(value) || !Array.isArray(value.completions))
      throw new InputError(gen, line, 'expected {"id", "label", "completions": [...]}');
    const label = optionalLabel(value.label as string | number | null | undefined);
    const answers: Record<Mode, (string | null)[]> = { strict: [], flexible: [] };
    for (const c of value.completions) {
      const g = grader.gradeCanonical(typeof c === "string" ? c : "", label);
      answers.strict.push(g.strict.answer);
      answers.flexible.push(g.flexible.answer);
    }
    out.push({ id: String(value.id), label, answers });
  }
  return out;
}

/** Per-question columns of one model and mode (labelled questions only). */
interface Columns {
  n: Float64Array;
  valid: Float64Array;
  correct: Float64Array;
  pass: Float64Array[];
  cons: Float64Array[];
}

function columns(qs: QuestionAnswers[], mode: Mode, ks: number[], rng: Rng): Columns {
  const q = qs.length;
  const c: Columns = {
    n: new Float64Array(q),
    valid: new Float64Array(q),
    correct: new Float64Array(q),
    pass: ks.map(() => new Float64Array(q)),
    cons: ks.map(() => new Float64Array(q)),
  };
  qs.forEach((x, i) => {
    const a = x.answers[mode];
    const n = a.length;
    let v = 0;
    let r = 0;
    for (const s of a) {
      if (s !== null) v++;
      if (s !== null && s === x.label) r++;
    }
    c.n[i] = n;
    c.valid[i] = v;
    c.correct[i] = r;
    ks.forEach((k, j) => {
      if (k > n || x.label === null) return;
      c.pass[j][i] = passAtK(n, r, k);
      if (r > 0) {
        const sub = binomial(n, k, CONS_MAX_SUBSETS) > CONS_MAX_SUBSETS ? rng.fork(`${mode}/${i}/${k}`) : rng;
        c.cons[j][i] = consAtK(a, x.label, k, sub);
      }
    });
  });
  return c;
}

function sumOf(xs: Float64Array, idx: Int32Array | null): number {
  let s = 0;
  if (idx) for (let i = 0; i < idx.length; i++) s += xs[idx[i]];
  else for (let i = 0; i < xs.length; i++) s += xs[i];
  return s;
}

/** The scalar statistics of one model/mode on a set of question indices (null: all). */
function statsOn(c: Columns, idx: Int32Array | null): number[] {
  const q = idx ? idx.length : c.n.length;
  const n = sumOf(c.n, idx);
  const valid = sumOf(c.valid, idx);
  const correct = sumOf(c.correct, idx);
  return [
    n > 0 ? valid / n : 0,
    n > 0 ? correct / n : 0,
    valid > 0 ? correct / valid : Number.NaN,
    ...c.pass.map((p) => (q > 0 ? sumOf(p, idx) / q : 0)),
    ...c.cons.map((p) => (q > 0 ? sumOf(p, idx) / q : 0)),
  ];
}

function quantile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * p;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

function interval(samples: number[]): [number, number] {
  const s = samples.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return [quantile(s, 0.025), quantile(s, 0.975)];
}

/**
 * Statistics of eval folders; the first is the base every other model is compared with. `ks` defaults to
 * the k's every model has samples for (1, 2, 4, … up to the smallest sample count).
 */
export async function evalStats(
  evals: { label: string; dir: string }[],
  opts: { ks?: number[]; resamples?: number; seed?: number } = {},
): Promise<EvalStats> {
  const resamples = opts.resamples ?? STATS_RESAMPLES;
  const loaded = await Promise.all(
    evals.map(async (e) => (await loadQuestionAnswers(e.dir)).filter((q) => q.label !== null)),
  );
  const minN = Math.min(
    ...loaded.map((qs) => (qs.length ? Math.min(...qs.map((q) => q.answers.strict.length)) : 0)),
  );
  const ks = (opts.ks ?? [1, 2, 4, 8, 16, 32, 64]).filter((k) => k >= 1 && k <= minN);
  if (!ks.includes(1) && minN >= 1) ks.unshift(1);
  const rng = new Rng(opts.seed ?? 0);
  const cols = loaded.map(
    (qs, m) =>
      Object.fromEntries(
        STAT_MODES.map((mode) => [mode, columns(qs, mode, ks, rng.fork(`cons/${m}`))]),
      ) as Record<Mode, Columns>,
  );
  const nStats = 3 + 2 * ks.length;
  const names: DiffMetric[] = [
    "valid",
    "pass@1",
    "accuracy|valid",
    ...ks.map((k) => `pass@${k}` as DiffMetric),
    ...ks.map((k) => `cons@${k}` as DiffMetric),
  ];

  // single-model intervals: each model's own resamples
  const models: ModelStats[] = evals.map((e, m) => {
    const q = loaded[m].length;
    const boot: Record<Mode, number[][]> = { strict: [], flexible: [] };
    const brng = rng.fork(`boot/${m}`);
    const idx = new Int32Array(q);
    for (let b = 0; b < resamples && q > 0; b++) {
      for (let i = 0; i < q; i++) idx[i] = Math.floor((brng.nextU32() / 4294967296) * q);
      for (const mode of STAT_MODES) boot[mode].push(statsOn(cols[m][mode], idx));
    }
    const modes = Object.fromEntries(
      STAT_MODES.map((mode) => {
        const point = statsOn(cols[m][mode], null);
        const est = (j: number): Estimate => {
          const [lo, hi] = interval(boot[mode].map((s) => s[j]));
          return { value: point[j], lo, hi };
        };
        const ms: ModeStats = {
          valid: est(0),
          accuracy: est(1),
          accuracyGivenValid: Number.isFinite(point[2]) ? est(2) : null,
          pass: Object.fromEntries(ks.map((k, j) => [String(k), est(3 + j)])),
          cons: Object.fromEntries(ks.map((k, j) => [String(k), est(3 + ks.length + j)])),
        };
        return [mode, ms];
      }),
    ) as Record<Mode, ModeStats>;
    return {
      label: e.label,
      dir: e.dir,
      nQuestions: q,
      samples: q ? Math.round(sumOf(cols[m].strict.n, null) / q) : 0,
      modes,
    };
  });

  // paired differences against the base, on the questions both have
  const diffs: Diff[] = [];
  if (evals.length > 1) {
    const baseIdx = new Map(loaded[0].map((q, i) => [q.id, i]));
    for (let m = 1; m < evals.length; m++) {
      const pairs: [number, number][] = [];
      loaded[m].forEach((q, i) => {
        const b = baseIdx.get(q.id);
        if (b !== undefined) pairs.push([b, i]);
      });
      if (pairs.length === 0) continue;
      const p = pairs.length;
      const bIdx = Int32Array.from(pairs, (x) => x[0]);
      const mIdx = Int32Array.from(pairs, (x) => x[1]);
      const drng = rng.fork(`paired/${m}`);
      const samples: Record<Mode, number[][]> = { strict: [], flexible: [] };
      const rb = new Int32Array(p);
      const rm = new Int32Array(p);
      for (let b = 0; b < resamples; b++) {
        for (let i = 0; i < p; i++) {
          const j = Math.floor((drng.nextU32() / 4294967296) * p);
          rb[i] = bIdx[j];
          rm[i] = mIdx[j];
        }
        for (const mode of STAT_MODES) {
          const sb = statsOn(cols[0][mode], rb);
          const sm = statsOn(cols[m][mode], rm);
          samples[mode].push(sm.map((x, j) => x - sb[j]));
        }
      }
      for (const mode of STAT_MODES) {
        const sb = statsOn(cols[0][mode], bIdx);
        const sm = statsOn(cols[m][mode], mIdx);
        for (let j = 0; j < nStats; j++) {
          if (j >= 3 && j < 3 + ks.length && ks[j - 3] === 1) continue; // pass@1 is the accuracy (j = 1)
          const d = sm[j] - sb[j];
          if (!Number.isFinite(d)) continue;
          const [lo, hi] = interval(samples[mode].map((s) => s[j]));
          diffs.push({
            model: evals[m].label,
            base: evals[0].label,
            mode,
            metric: names[j],
            diff: d,
            lo,
            hi,
            excludesZero: lo > 0 || hi < 0,
            nQuestions: p,
          });
        }
      }
    }
  }
  return { ks, models, diffs, resamples };
}

export function findDiff(s: EvalStats, model: string, mode: Mode, metric: DiffMetric): Diff | null {
  return s.diffs.find((d) => d.model === model && d.mode === mode && d.metric === metric) ?? null;
}

/** Signed percentage points with one decimal; a value that rounds to 0 is "+0.0" (never "−0.0"). */
const pp = (x: number) => {
  const t = (Math.abs(x) * 100).toFixed(1);
  return `${x < 0 && t !== "0.0" ? "−" : "+"}${t}`;
};
const pc = (x: number) => `${(x * 100).toFixed(1)}%`;

/** "+12.3 pts [95% CI +8.1, +16.0]" */
export function fmtDiff(d: Diff): string {
  return `${pp(d.diff)} pts [95% CI ${pp(d.lo)}, ${pp(d.hi)}]`;
}

/** Roles of the models in a TTRL study, found from their labels: label-trained and majority-trained. */
export function studyRoles(labels: string[]): { accuracy: string | null; majority: string | null } {
  const rest = labels.slice(1);
  const majority = rest.find((l) => /majority|ttrl/i.test(l)) ?? null;
  const accuracy =
    rest.find((l) => l !== majority && !/merge/i.test(l) && /accuracy|label|grpo/i.test(l)) ?? null;
  return { accuracy, majority };
}

/**
 * A few sentences from the numbers (flexible parsing, the study's headline mode): the base model's vote
 * signal, each model's pass@1 change with its paired interval, the share of the label-trained gain that
 * majority-vote training reached, and format vs accuracy-given-valid.
 */
export function findings(s: EvalStats, mode: Mode = "flexible"): string[] {
  if (s.models.length === 0) return [];
  const out: string[] = [];
  const base = s.models[0];
  const kMax = s.ks[s.ks.length - 1];
  const b = base.modes[mode];
  const bc = b.cons[String(kMax)];
  const baseLine =
    `The base model (${base.label}, ${base.nQuestions} questions × ${base.samples} samples, ${mode} parsing) had pass@1 ${pc(b.accuracy.value)} ` +
    `(95% CI ${pc(b.accuracy.lo)}–${pc(b.accuracy.hi)})` +
    (bc && kMax > 1
      ? ` and cons@${kMax} ${pc(bc.value)}: a majority vote of ${kMax} samples was ${bc.value >= b.accuracy.value ? "right" : "wrong"} ${Math.abs((bc.value - b.accuracy.value) * 100).toFixed(1)} points more often than one sample` +
        (bc.value - b.accuracy.value >= 0.1
          ? " — the votes carry signal, the regime where TTRL can help."
          : " — little signal in the votes for majority-vote training to use.")
      : ".");
  out.push(baseLine);
  for (const m of s.models.slice(1)) {
    const d = findDiff(s, m.label, mode, "pass@1");
    if (!d) continue;
    const v = findDiff(s, m.label, mode, "valid");
    const g = findDiff(s, m.label, mode, "accuracy|valid");
    const mv = m.modes[mode];
    let line = `${m.label}: pass@1 ${pc(mv.accuracy.value)}, ${fmtDiff(d)} vs base${d.excludesZero ? "" : " — not distinguishable from the base at 95%"}.`;
    if (v && g && mv.accuracyGivenValid && b.accuracyGivenValid)
      line +=
        ` Valid answers ${pc(b.valid.value)} → ${pc(mv.valid.value)} (${pp(v.diff)} pts, the format gain); ` +
        `accuracy given a valid answer ${pc(b.accuracyGivenValid.value)} → ${pc(mv.accuracyGivenValid.value)} (${fmtDiff(g)}).`;
    out.push(line);
  }
  const roles = studyRoles(s.models.map((m) => m.label));
  if (roles.accuracy && roles.majority) {
    const a = findDiff(s, roles.accuracy, mode, "pass@1");
    const m = findDiff(s, roles.majority, mode, "pass@1");
    if (a && m && a.diff > 0 && m.diff <= 0)
      out.push(
        `Majority-vote training (no labels) did not raise pass@1 (${pp(m.diff)} points) while label training gained ${pp(a.diff)}: ` +
          "its votes were wrong too often to serve as labels (see the TTRL diagnostics).",
      );
    else if (a && m && a.diff > 0)
      out.push(
        `Majority-vote training (no labels) reached ${Math.round((m.diff / a.diff) * 100)}% of the label-trained gain in pass@1 ` +
          `(${pp(m.diff)} vs ${pp(a.diff)} points).`,
      );
    else if (a && m)
      out.push(
        `Label-trained pass@1 did not rise above the base (${pp(a.diff)} points), so the majority run's ${pp(m.diff)} points cannot be compared with a label-trained gain.`,
      );
  }
  return out;
}

/** Plain-text table of the paired differences vs base (for summaries printed in a terminal). */
export function diffTable(s: EvalStats, mode: Mode = "flexible"): string[][] {
  const kMax = s.ks[s.ks.length - 1];
  const metrics: DiffMetric[] = ["pass@1", `cons@${kMax}`, "valid", "accuracy|valid"];
  const head = ["vs base", ...metrics.map((m) => `Δ ${m} (${mode === "flexible" ? "flex" : mode})`)];
  const rows = s.models.slice(1).map((m) => [
    m.label,
    ...metrics.map((metric) => {
      const d = findDiff(s, m.label, mode, metric);
      return d ? `${pp(d.diff)} [${pp(d.lo)}, ${pp(d.hi)}]${d.excludesZero ? " *" : ""}` : "—";
    }),
  ]);
  return [head, ...rows];
}
