/**
 * The dataset row schema shared by every `ttrl data` step, training and evaluation:
 * `{"id", "question", "answer"?, "solution"?, "source"?, "meta"?}` with `answer` a canonical number string.
 */
import { canonicalLabel } from "../answers/index.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { readUtf8File } from "../io/jsonl.ts";
import { InputError } from "../util/errors.ts";

export interface DataRow {
  id: string;
  question: string;
  /** Canonical plain decimal ("1250", "-12.5"). */
  answer?: string;
  solution?: string;
  source?: string;
  meta?: Record<string, unknown>;
}

const KNOWN = new Set(["id", "question", "answer", "solution", "source", "meta"]);

/** Read a file as strict UTF-8, failing with the (1-based) line of the first invalid byte sequence. */
export const readUtf8 = readUtf8File;

/** Validate one parsed JSONL value against the row schema; errors name file:line. */
export function validateRow(value: unknown, file: string, line: number): DataRow {
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new InputError(file, line, "expected a JSON object row");
  const v = value as Record<string, unknown>;
  if (Object.keys(v).length === 0) throw new InputError(file, line, "empty row");
  for (const k of Object.keys(v))
    if (!KNOWN.has(k))
      throw new InputError(
        file,
        line,
        `unknown field "${k}" (row fields: id, question, answer, solution, source, meta; use \`ttrl data import\` for other schemas)`,
      );
  if (typeof v.id !== "string" || v.id.trim() === "")
    throw new InputError(file, line, `missing field "id" (a non-empty string)`);
  if (typeof v.question !== "string" || v.question.trim() === "")
    throw new InputError(file, line, `missing field "question" (a non-empty string)`);
  const row: DataRow = { id: v.id, question: v.question };
  if (v.answer !== undefined && v.answer !== null) {
    if (typeof v.answer !== "string" && typeof v.answer !== "number")
      throw new InputError(file, line, `field "answer" must be a number string`);
    try {
      row.answer = canonicalLabel(v.answer);
    } catch {
      throw new InputError(file, line, `field "answer" is not a number: ${JSON.stringify(v.answer)}`);
    }
  }
  if (v.solution !== undefined && v.solution !== null) {
    if (typeof v.solution !== "string") throw new InputError(file, line, `field "solution" must be a string`);
    row.solution = v.solution;
  }
  if (v.source !== undefined && v.source !== null) {
    if (typeof v.source !== "string") throw new InputError(file, line, `field "source" must be a string`);
    row.source = v.source;
  }
  if (v.meta !== undefined && v.meta !== null) {
    if (typeof v.meta !== "object" || Array.isArray(v.meta))
      throw new InputError(file, line, `field "meta" must be an object`);
    row.meta = v.meta as Record<string, unknown>;
  }
  return row;
}

export interface LoadedRows {
  rows: DataRow[];
  /** 1-based line of each row in the file. */
  lines: number[];
}

/** Load a dataset JSONL file in the row schema: strict UTF-8, validated rows, unique ids. */
export function loadRows(file: string): LoadedRows {
  const text = readUtf8(file);
  const rows: DataRow[] = [];
  const lines: number[] = [];
  const seen = new Map<string, number>();
  const parts = text.split("\n");
  for (let i = 0; i < parts.length; i++) {
    const t = parts[i].replace(/\r$/, "");
    if (t.trim() === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(t);
    } catch (e) {
      throw new InputError(file, i + 1, `malformed JSON: ${(e as Error).message}`);
    }
    const row = validateRow(value, file, i + 1);
    const prev = seen.get(row.id);
    if (prev !== undefined)
      throw new InputError(file, i + 1, `duplicate id "${row.id}" (first on line ${prev})`);
    seen.set(row.id, i + 1);
    rows.push(row);
    lines.push(i + 1);
  }
  return { rows, lines };
}

/** Serialise a row with a fixed key order, so outputs are byte-stable. */
export function rowToJson(r: DataRow): string {
  const o: Record<string, unknown> = { id: r.id, question: r.question };
  if (r.answer !== undefined) o.answer = r.answer;
  if (r.solution !== undefined) o.solution = r.solution;
  if (r.source !== undefined) o.source = r.source;
  if (r.meta !== undefined) o.meta = r.meta;
  return JSON.stringify(o);
}

/** Write rows as JSONL atomically (fixed key order, one row per line, trailing newline). */
export async function writeRows(file: string, rows: DataRow[]): Promise<void> {
  await writeFileAtomic(file, rows.map((r) => `${rowToJson(r)}\n`).join(""));
}

/** A canonical answer string is an integer ("12", "-3", "1250"). */
export function isIntegerAnswer(a: string | undefined): boolean {
  return a !== undefined && /^-?\d+$/.test(a);
}
