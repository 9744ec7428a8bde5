/** Deterministic row operations: sample, filter, split. */
import { TtrlError, UsageError } from "../util/errors.ts";
import { Rng } from "../util/rng.ts";
import { type DataRow, isIntegerAnswer } from "./schema.ts";

/** k rows drawn without replacement with a seeded Rng, kept in their source order. */
export function sampleRows(rows: DataRow[], k: number, seed: number | string): DataRow[] {
  if (k > rows.length) throw new TtrlError(`cannot sample ${k} rows from ${rows.length}`);
  const idx = new Rng(seed).fork("sample").sampleIndices(rows.length, k);
  idx.sort((a, b) => a - b);
  return idx.map((i) => rows[i]);
}

export interface FilterOptions {
  /** Keep rows whose answer is an integer (drops rows without an answer). */
  integersOnly?: boolean;
  /** Keep rows whose answer is a non-negative integer (the seed's "only digits"). */
  digitsOnly?: boolean;
  requireAnswer?: boolean;
  maxQuestionChars?: number;
  /** Drop rows whose question text repeats an earlier row's. */
  dedupe?: boolean;
}

export interface FilterResult {
  rows: DataRow[];
  dropped: Record<string, number>;
}

export function filterRows(rows: DataRow[], opts: FilterOptions): FilterResult {
  const dropped: Record<string, number> = {};
  const drop = (why: string) => {
    dropped[why] = (dropped[why] ?? 0) + 1;
  };
  const seen = new Set<string>();
  const out: DataRow[] = [];
  for (const r of rows) {
    const needAnswer = opts.requireAnswer || opts.integersOnly || opts.digitsOnly;
    if (needAnswer && r.answer === undefined) {
      drop("no answer");
      continue;
    }
    if ((opts.integersOnly || opts.digitsOnly) && !isIntegerAnswer(r.answer)) {
      drop("answer not an integer");
      continue;
    }
    if (opts.digitsOnly && r.answer!.startsWith("-")) {
      drop("answer negative");
      continue;
    }
    if (opts.maxQuestionChars !== undefined && r.question.length > opts.maxQuestionChars) {
      drop("question too long");
      continue;
    }
    if (opts.dedupe) {
      const key = r.question.trim();
      if (seen.has(key)) {
        drop("duplicate question");
        continue;
      }
      seen.add(key);
    }
    out.push(r);
  }
  return { rows: out, dropped };
}

export interface SplitSpec {
  /** Sizes; `null` means "all remaining rows" (at most one, the last). */
  sizes: (number | null)[];
  names: string[];
}

/** Parse "2000:598", "2000:rest" or "1000:200:rest" into sizes and default names. */
export function parseSplitSpec(spec: string, names?: string[]): SplitSpec {
  const parts = spec.split(":").map((s) => s.trim());
  if (parts.length < 2 || parts.length > 3)
    throw new UsageError(`--split must be TRAIN:TEST or TRAIN:VAL:TEST, got "${spec}"`);
  const sizes = parts.map((p, i) => {
    if (p === "rest" && i === parts.length - 1) return null;
    if (!/^\d+$/.test(p))
      throw new UsageError(`--split sizes must be integers (or a final "rest"), got "${spec}"`);
    return Number(p);
  });
  const defaults = parts.length === 2 ? ["train", "test"] : ["train", "val", "test"];
  const n = names ?? defaults;
  if (n.length !== parts.length)
    throw new UsageError(`--names needs ${parts.length} names for --split ${spec}, got ${n.length}`);
  checkPartNames(n);
  return { sizes, names: n };
}

/**
 * Part names become file names (NAME.jsonl) inside the output folder: each must be a plain name (letters,
 * digits, `_`, `-`, `.`, not starting with `.` or `-`: no path separators, no `..`, no hidden or empty name)
 * and unique, also ignoring case (parts "Test" and "test" would be one file on macOS and Windows).
 */
export function checkPartNames(names: string[]): void {
  const seen = new Map<string, string>();
  for (const name of names) {
    if (!/^[\p{L}\p{N}_][\p{L}\p{N}_.-]*$/u.test(name))
      throw new UsageError(
        `--names: ${JSON.stringify(name)} is not a plain file name (letters, digits, _ - . ; not starting with . or -; no / or \\)`,
      );
    const key = name.toLowerCase();
    const prev = seen.get(key);
    if (prev !== undefined)
      throw new UsageError(
        `--names: ${JSON.stringify(name)} given twice${prev !== name ? ` (as ${JSON.stringify(prev)}; file names that differ only in case collide on some systems)` : ""}: each part needs its own file`,
      );
    seen.set(key, name);
  }
}

/** Shuffle with the seed and cut consecutive parts. Errors if there are too few rows. */
export function splitRows(
  rows: DataRow[],
  spec: SplitSpec,
  seed: number | string,
): { parts: { name: string; rows: DataRow[] }[]; unused: number } {
  const fixed = spec.sizes.reduce<number>((s, x) => s + (x ?? 0), 0);
  if (fixed > rows.length)
    throw new TtrlError(
      `--split ${spec.sizes.map((s) => s ?? "rest").join(":")} needs ${fixed} rows, only ${rows.length} available`,
    );
  const order = new Rng(seed).fork("split").shuffle(rows.map((_, i) => i));
  const parts: { name: string; rows: DataRow[] }[] = [];
  let at = 0;
  spec.sizes.forEach((size, k) => {
    const take = size ?? rows.length - at;
    parts.push({ name: spec.names[k], rows: order.slice(at, at + take).map((i) => rows[i]) });
    at += take;
  });
  return { parts, unused: rows.length - at };
}
