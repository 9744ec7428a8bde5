/** Map any source table (JSONL, CSV, Parquet) into the row schema. */
import { basename, extname } from "node:path";
import {
  canonicalLabel,
  type Extractor,
  extractAnswer,
  type Locale,
  parseLocaleNumber,
} from "../answers/index.ts";
import { InputError, UsageError } from "../util/errors.ts";
import { readSource, type SourceFormat, type SourceRecord } from "./readers.ts";
import type { DataRow } from "./schema.ts";

export type Preset = "gsm8k" | "orca-math";
export const PRESETS: readonly Preset[] = ["gsm8k", "orca-math"];

export interface ImportOptions {
  preset?: Preset;
  questionField?: string;
  answerField?: string;
  solutionField?: string;
  idField?: string;
  /** How to pull a number out of a free-text answer field (the field is then kept as `solution`). */
  answerExtract?: Extractor;
  /** Locale of numbers in the source (default en-US). */
  locale?: Locale;
  /** id prefix for rows without an id field (default: the file's base name). */
  idPrefix?: string;
  source?: string;
  format?: SourceFormat;
  /** Skip bad records (counted in the summary) instead of failing. */
  skipInvalid?: boolean;
}

export interface ImportSummary {
  recordsIn: number;
  rowsOut: number;
  withAnswer: number;
  answerNotFound: number;
  skipped: Record<string, number>;
}

interface Resolved {
  questionField: string;
  answerField?: string;
  answerFieldExplicit: boolean;
  solutionField?: string;
  idField?: string;
  answerExtract?: Extractor;
  source?: string;
}

function resolve(opts: ImportOptions): Resolved {
  const p = opts.preset;
  if (p === "gsm8k")
    return {
      questionField: opts.questionField ?? "question",
      answerField: opts.answerField ?? "answer",
      answerFieldExplicit: true,
      solutionField: opts.solutionField,
      idField: opts.idField,
      answerExtract: opts.answerExtract ?? "gsm8k",
      source: opts.source ?? "gsm8k",
    };
  if (p === "orca-math")
    // mlabonne/orca-math-word-problems-80k: `question`, and `answer` a worked solution in prose. The number
    // is extracted later by an LLM (`ttrl data extract`) unless --answer-extract is given.
    return {
      questionField: opts.questionField ?? "question",
      answerField: opts.answerExtract ? (opts.answerField ?? "answer") : opts.answerField,
      answerFieldExplicit: opts.answerExtract !== undefined || opts.answerField !== undefined,
      solutionField: opts.solutionField ?? (opts.answerExtract ? undefined : "answer"),
      idField: opts.idField,
      answerExtract: opts.answerExtract,
      source: opts.source ?? "orca-math",
    };
  return {
    questionField: opts.questionField ?? "question",
    answerField: opts.answerField ?? "answer",
    answerFieldExplicit: opts.answerField !== undefined,
    solutionField: opts.solutionField,
    idField: opts.idField,
    answerExtract: opts.answerExtract,
    source: opts.source,
  };
}

function asText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "bigint") return String(v);
  return undefined;
}

/** Convert records to rows; throws InputError naming the line on bad records unless skipInvalid. */
export function recordsToRows(
  file: string,
  records: SourceRecord[],
  opts: ImportOptions = {},
): { rows: DataRow[]; summary: ImportSummary } {
  const r = resolve(opts);
  const locale: Locale = opts.locale ?? "en-US";
  const prefix = opts.idPrefix ?? basename(file, extname(file));
  const rows: DataRow[] = [];
  const seen = new Map<string, number>();
  const summary: ImportSummary = {
    recordsIn: records.length,
    rowsOut: 0,
    withAnswer: 0,
    answerNotFound: 0,
    skipped: {},
  };
  const fail = (line: number, reason: string, detail: string) => {
    if (opts.skipInvalid) {
      summary.skipped[reason] = (summary.skipped[reason] ?? 0) + 1;
      return;
    }
    throw new InputError(file, line, detail);
  };
  let k = 0;
  for (const { line, record } of records) {
    k++;
    const q = asText(record[r.questionField]);
    if (q === undefined) {
      fail(line, "missing question", `missing field "${r.questionField}" (the question)`);
      continue;
    }
    if (q.trim() === "") {
      fail(line, "empty question", `field "${r.questionField}" (the question) is empty`);
      continue;
    }
    const row: DataRow = { id: "", question: q.trim() };
    if (r.idField) {
      const id = asText(record[r.idField]);
      if (id === undefined || id.trim() === "") {
        fail(line, "missing id", `missing field "${r.idField}" (the id)`);
        continue;
      }
      row.id = id;
    } else row.id = `${prefix}-${k}`;
    const prev = seen.get(row.id);
    if (prev !== undefined) {
      fail(line, "duplicate id", `duplicate id "${row.id}" (first on line ${prev})`);
      continue;
    }
    if (r.answerField) {
      const raw = record[r.answerField];
      const text = asText(raw);
      if (text === undefined || text.trim() === "") {
        if (r.answerFieldExplicit) {
          fail(line, "missing answer", `missing field "${r.answerField}" (the answer)`);
          continue;
        }
      } else if (r.answerExtract) {
        if (!r.solutionField) row.solution = text;
        const got = extractAnswer(text, "flexible", { extract: r.answerExtract, locale });
        if (got.answer !== null) row.answer = got.answer;
        else summary.answerNotFound++;
      } else {
        try {
          // A number, or a string in the source locale ("1,250" en-US), or a plain decimal.
          row.answer =
            typeof raw === "number"
              ? canonicalLabel(raw)
              : (parseLocaleNumber(text.trim(), locale) ?? canonicalLabel(text.trim()));
        } catch {
          fail(
            line,
            "answer not a number",
            `field "${r.answerField}" is not a number: ${JSON.stringify(text.slice(0, 60))} (use --answer-extract or --solution-field)`,
          );
          continue;
        }
      }
    }
    if (r.solutionField) {
      const s = asText(record[r.solutionField]);
      if (s === undefined) {
        fail(line, "missing solution", `missing field "${r.solutionField}" (the solution)`);
        continue;
      }
      row.solution = s;
    }
    if (r.source) row.source = r.source;
    seen.set(row.id, line);
    if (row.answer !== undefined) summary.withAnswer++;
    rows.push(row);
  }
  summary.rowsOut = rows.length;
  return { rows, summary };
}

/** Read FILE (any supported format) and map it into rows. */
export async function importFile(
  file: string,
  opts: ImportOptions = {},
): Promise<{ rows: DataRow[]; summary: ImportSummary }> {
  const r = resolve(opts);
  if (opts.preset && !PRESETS.includes(opts.preset)) throw new UsageError(`unknown preset "${opts.preset}"`);
  const fmt = opts.format;
  const isParquet = fmt === "parquet" || (!fmt && /\.(parquet|pq)$/i.test(file));
  let table: Awaited<ReturnType<typeof readSource>>;
  if (isParquet) {
    const { readParquet } = await import("./readers.ts");
    const needed = [
      r.questionField,
      r.answerFieldExplicit ? r.answerField : undefined,
      r.solutionField,
      r.idField,
    ]
      .filter((x): x is string => typeof x === "string")
      .filter((x, i, a) => a.indexOf(x) === i);
    table = await readParquet(file, needed);
  } else table = await readSource(file, fmt);
  if (table.columns && !table.columns.includes(r.questionField))
    throw new InputError(
      file,
      undefined,
      `no column "${r.questionField}" for the question (columns: ${table.columns.join(", ")}); use --question-field`,
    );
  return recordsToRows(file, table.records, opts);
}
