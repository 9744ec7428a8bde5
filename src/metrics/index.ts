/**
 * Evaluation metrics over questions with n sampled completions each, separately for strict and flexible
 * extraction: valid ratio, accuracy (with a seeded bootstrap 95% CI over questions), unbiased pass@k and
 * the seed's pass@k_first, cons@k (majority vote of k samples, exact expectation under random
 * tie-breaking) and cons@k_first.
 */
import {
  canonicalLabel,
  type GradedCompletion,
  type GradeOptions,
  type Grader,
  graderFor,
  isMissingLabel,
  type Mode,
  optionalLabel,
} from "../answers/index.ts";
import { TtrlError } from "../util/errors.ts";
import { Rng } from "../util/rng.ts";

/** Subsets enumerated exactly up to this many; above it, this many seeded random subsets. */
export const CONS_MAX_SUBSETS = 10_000;
export const BOOTSTRAP_RESAMPLES = 1000;

function checkNK(n: number, k: number, what: string): void {
  if (!Number.isInteger(n) || n < 0)
    throw new RangeError(`${what}: n must be a non-negative integer, got ${n}`);
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`${what}: k must be a positive integer, got ${k}`);
  if (k > n) throw new RangeError(`${what}: k=${k} exceeds n=${n}`);
}

/**
 * Unbiased pass@k = 1 − C(n−c, k)/C(n, k), computed stably as 1 − ∏_{i=n−c+1}^{n} (1 − k/i)
 * (Chen et al. 2021), with no large binomials.
 */
export function passAtK(n: number, c: number, k: number): number {
  checkNK(n, k, "passAtK");
  if (!Number.isInteger(c) || c < 0 || c > n)
    throw new RangeError(`passAtK: c must be in [0, ${n}], got ${c}`);
  if (n - c < k) return 1;
  let prod = 1;
  for (let i = n - c + 1; i <= n; i++) prod *= 1 - k / i;
  return 1 - prod;
}

/** C(n, k) as a float (exact while below 2^53), stopping early once it exceeds `cap`. */
export function binomial(n: number, k: number, cap = Number.POSITIVE_INFINITY): number {
  if (k < 0 || k > n) return 0;
  k = Math.min(k, n - k);
  let r = 1;
  for (let i = 1; i <= k; i++) {
    r = (r * (n - k + i)) / i;
    if (r > cap) return r;
  }
  return Math.round(r);
}

/**
 * Score of one majority vote against the label: invalid answers (id < 0) do not vote; the label's share
 * 1/|tied| when it is among the values with the top count; 0 with no valid answer.
 */
function voteScore(
  ids: Int32Array,
  idx: ArrayLike<number>,
  k: number,
  labelId: number,
  counts: Int32Array,
): number {
  let top = 0;
  for (let j = 0; j < k; j++) {
    const id = ids[idx[j]];
    if (id < 0) continue;
    const c = ++counts[id];
    if (c > top) top = c;
  }
  let score = 0;
  if (top > 0 && counts[labelId] === top) {
    let tied = 0;
    for (let j = 0; j < k; j++) {
      const id = ids[idx[j]];
      if (id >= 0 && counts[id] === top) {
        tied++;
        counts[id] = -1; // count each tied value once
      }
    }
    score = 1 / tied;
  }
  for (let j = 0; j < k; j++) {
    const id = ids[idx[j]];
    if (id >= 0) counts[id] = 0;
  }
  return score;
}

/**
 * cons@k of one question: the expected score of a majority vote over k of its samples (invalid answers,
 * null, do not vote; a tie scores 1/|tied| when the label is among the tied values), averaged over all
 * C(n, k) subsets when that is ≤ 10,000, else over 10,000 random subsets drawn with `rng`.
 * `answers` and `label` are canonical decimals.
 */
export function consAtK(answers: (string | null)[], label: string, k: number, rng: Rng): number {
  const n = answers.length;
  checkNK(n, k, "consAtK");
  const ids = new Int32Array(n);
  const idOf = new Map<string, number>([[label, 0]]);
  let labelVotes = 0;
  for (let i = 0; i < n; i++) {
    const a = answers[i];
    if (a === null) {
      ids[i] = -1;
      continue;
    }
    let id = idOf.get(a);
    if (id === undefined) {
      id = idOf.size;
      idOf.set(a, id);
    }
    ids[i] = id;
    if (id === 0) labelVotes++;
  }
  if (labelVotes === 0) return 0; // the label can never win a vote
  const counts = new Int32Array(idOf.size);
  const total = binomial(n, k, CONS_MAX_SUBSETS);
  let sum = 0;
  if (total <= CONS_MAX_SUBSETS) {
    const idx = new Int32Array(k);
    for (let j = 0; j < k; j++) idx[j] = j;
    for (;;) {
      sum += voteScore(ids, idx, k, 0, counts);
      let j = k - 1;
      while (j >= 0 && idx[j] === n - k + j) j--;
      if (j < 0) break;
      idx[j]++;
      for (let t = j + 1; t < k; t++) idx[t] = idx[t - 1] + 1;
    }
    return sum / total;
  }
  for (let s = 0; s < CONS_MAX_SUBSETS; s++) sum += voteScore(ids, rng.sampleIndices(n, k), k, 0, counts);
  return sum / CONS_MAX_SUBSETS;
}

// Never drawn from: consAtK only uses its rng when it samples subsets.
const SENTINEL_RNG = new Rng(0);

/** cons@k on the first k samples (ties scored 1/|tied| as in {@link consAtK}). */
export function consAtKFirst(answers: (string | null)[], label: string, k: number): number {
  checkNK(answers.length, k, "consAtKFirst");
  return consAtK(answers.slice(0, k), label, k, SENTINEL_RNG); // one subset: the rng is never drawn
}

/** Percentile bootstrap 95% CI of Σcorrect/Σn over questions (resampling questions with replacement). */
export function bootstrapCI(
  correct: ArrayLike<number>,
  total: ArrayLike<number>,
  rng: Rng,
  resamples = BOOTSTRAP_RESAMPLES,
): [number, number] | null {
  const q = correct.length;
  if (q === 0) return null;
  const stats = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    let c = 0;
    let t = 0;
    for (let i = 0; i < q; i++) {
      // One 32-bit draw per index (bias ≤ q / 2^32, negligible): the bootstrap is the costliest step.
      const j = Math.floor((rng.nextU32() / 4294967296) * q);
      c += correct[j];
      t += total[j];
    }
    stats[b] = t > 0 ? c / t : 0;
  }
  stats.sort();
  return [quantile(stats, 0.025), quantile(stats, 0.975)];
}

function quantile(sorted: Float64Array, p: number): number {
  const pos = (sorted.length - 1) * p;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export type ByK = Record<string, number | null>;

export interface ModeMetrics {
  /** Valid completions / all completions (labelled or not). */
  valid_ratio: number | null;
  /** Mean correctness over all samples of labelled questions. */
  accuracy: number | null;
  "pass@k": ByK;
  "pass@k_first": ByK;
  "cons@k": ByK;
  "cons@k_first": ByK;
  ci95: { accuracy: [number, number] | null };
}

export interface MetricsJson {
  n_questions: number;
  n_completions: number;
  /** Questions with a label (the ones accuracy, pass@k and cons@k are averaged over). */
  n_labelled: number;
  ks: number[];
  options: { format: string; extract: string; locale: string; seed: number };
  strict: ModeMetrics;
  flexible: ModeMetrics;
  /** Set by `ttrl grade --skip-invalid`. */
  skipped_lines?: number;
}

export interface MetricsRow {
  id: string;
  label?: string | number | null;
  completions: string[];
}

class ModeAccumulator {
  nValid = 0;
  nCompletions = 0;
  correct: number[] = [];
  totals: number[] = [];
  pass: number[];
  passFirst: number[];
  cons: number[];
  consFirst: number[];
  constructor(readonly ks: number[]) {
    this.pass = ks.map(() => 0);
    this.passFirst = ks.map(() => 0);
    this.cons = ks.map(() => 0);
    this.consFirst = ks.map(() => 0);
  }

  add(answers: (string | null)[], label: string | null, rngFor: (k: number) => Rng): void {
    const n = answers.length;
    this.nCompletions += n;
    let c = 0;
    for (const a of answers) {
      if (a !== null) this.nValid++;
      if (label !== null && a === label) c++;
    }
    if (label === null) return;
    this.correct.push(c);
    this.totals.push(n);
    for (let j = 0; j < this.ks.length; j++) {
      const k = this.ks[j];
      this.pass[j] += passAtK(n, c, k);
      let any = 0;
      for (let i = 0; i < k; i++) if (answers[i] === label) any = 1;
      this.passFirst[j] += any;
      if (c > 0) {
        const total = binomial(n, k, CONS_MAX_SUBSETS);
        this.cons[j] += consAtK(answers, label, k, total > CONS_MAX_SUBSETS ? rngFor(k) : SENTINEL_RNG);
        this.consFirst[j] += consAtKFirst(answers, label, k);
      }
    }
  }

  finish(rng: Rng): ModeMetrics {
    const q = this.correct.length;
    const byK = (xs: number[]): ByK =>
      Object.fromEntries(this.ks.map((k, j) => [String(k), q ? xs[j] / q : null]));
    let sc = 0;
    let st = 0;
    for (let i = 0; i < q; i++) {
      sc += this.correct[i];
      st += this.totals[i];
    }
    const resamples =
      q * BOOTSTRAP_RESAMPLES > 2e7 ? Math.max(200, Math.floor(2e7 / q)) : BOOTSTRAP_RESAMPLES;
    return {
      valid_ratio: this.nCompletions ? this.nValid / this.nCompletions : null,
      accuracy: st ? sc / st : null,
      "pass@k": byK(this.pass),
      "pass@k_first": byK(this.passFirst),
      "cons@k": byK(this.cons),
      "cons@k_first": byK(this.consFirst),
      ci95: { accuracy: bootstrapCI(this.correct, this.totals, rng, resamples) },
    };
  }
}

/** Validate one input row's shape; returns an error message or null. */
export function rowError(row: unknown): string | null {
  if (row === null || typeof row !== "object" || Array.isArray(row)) return "row must be a JSON object";
  const r = row as Record<string, unknown>;
  if (typeof r.id !== "string" && typeof r.id !== "number") return 'row needs an "id" (string)';
  if (!Array.isArray(r.completions)) return 'row needs "completions" (an array of strings)';
  if (r.completions.length === 0) return '"completions" is empty';
  for (let i = 0; i < r.completions.length; i++)
    if (typeof r.completions[i] !== "string") return `completions[${i}] is not a string`;
  const l = r.label;
  if (!isMissingLabel(l)) {
    if (typeof l !== "string" && typeof l !== "number") return '"label" must be a string, a number or null';
    try {
      canonicalLabel(l);
    } catch (e) {
      return (e as Error).message;
    }
  }
  return null;
}

export interface AddedRow {
  id: string;
  label: string | null;
  graded: GradedCompletion[];
}

/**
 * Streaming metrics: `add` one row at a time (memory grows only by two numbers per labelled question,
 * for the bootstrap), `finish` for the metrics.json object.
 */
export class MetricsAccumulator {
  readonly grader: Grader;
  readonly ks: number[];
  readonly seed: number;
  nQuestions = 0;
  private readonly modes: Record<Mode, ModeAccumulator>;
  private readonly baseRng: Rng;

  constructor(opts: GradeOptions & { ks: number[]; seed?: number }) {
    this.grader = graderFor(opts);
    if (opts.ks.length === 0 || opts.ks.some((k) => !Number.isInteger(k) || k < 1))
      throw new TtrlError(`ks must be positive integers, got ${JSON.stringify(opts.ks)}`);
    this.ks = [...new Set(opts.ks)].sort((a, b) => a - b);
    this.seed = opts.seed ?? 0;
    this.baseRng = new Rng(this.seed);
    this.modes = { strict: new ModeAccumulator(this.ks), flexible: new ModeAccumulator(this.ks) };
  }

  /** Grade and count one row; throws TtrlError (without touching the totals) on a malformed row. */
  add(row: MetricsRow): AddedRow {
    const err = rowError(row);
    if (err) throw new TtrlError(err);
    const n = row.completions.length;
    const maxK = this.ks[this.ks.length - 1];
    if (maxK > n)
      throw new TtrlError(`question ${JSON.stringify(row.id)} has ${n} completion(s), fewer than k=${maxK}`);
    const label = optionalLabel(row.label);
    const graded = row.completions.map((c) => this.grader.gradeCanonical(c, label));
    const q = this.nQuestions++;
    const rngFor = (mode: Mode) => (k: number) => this.baseRng.fork(`cons/${mode}/${q}/${k}`);
    const strict = graded.map((g) => g.strict.answer);
    this.modes.strict.add(strict, label, rngFor("strict"));
    this.modes.flexible.add(
      this.grader.modeIndependent ? strict : graded.map((g) => g.flexible.answer),
      label,
      rngFor(this.grader.modeIndependent ? "strict" : "flexible"),
    );
    return { id: String(row.id), label, graded };
  }

  finish(): MetricsJson {
    const f = this.grader.format;
    const strict = this.modes.strict.finish(this.baseRng.fork("bootstrap"));
    return {
      n_questions: this.nQuestions,
      n_completions: this.modes.strict.nCompletions,
      n_labelled: this.modes.strict.correct.length,
      ks: this.ks,
      options: { format: f.name, extract: this.grader.extract, locale: this.grader.locale, seed: this.seed },
      strict,
      // Identical inputs give identical results: skip the second bootstrap for mode-independent extractors.
      flexible: this.grader.modeIndependent
        ? structuredClone(strict)
        : this.modes.flexible.finish(this.baseRng.fork("bootstrap")),
    };
  }
}

/** Metrics over rows (sync or async iterable) — the `ttrl grade` metrics.json object. */
export async function computeMetrics(
  rows: AsyncIterable<MetricsRow> | Iterable<MetricsRow>,
  opts: GradeOptions & { ks: number[]; seed?: number },
): Promise<MetricsJson> {
  const acc = new MetricsAccumulator(opts);
  for await (const row of rows) acc.add(row);
  return acc.finish();
}
