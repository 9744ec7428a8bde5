/**
 * Source readers for `ttrl data import`: JSONL, CSV (RFC 4180, header row) and Parquet (hyparquet). Each
 * yields plain records with the 1-based line (JSONL, CSV) or row number (Parquet) used in error messages.
 */
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from "hyparquet";
import { InputError } from "../util/errors.ts";
import { readUtf8 } from "./schema.ts";

export type SourceFormat = "jsonl" | "csv" | "parquet";

export interface SourceRecord {
  /** 1-based line (JSONL/CSV: where the record starts) or row number (Parquet). */
  line: number;
  record: Record<string, unknown>;
}

export interface SourceTable {
  format: SourceFormat;
  /** Column names when the format has a header/schema (CSV, Parquet). */
  columns?: string[];
  records: SourceRecord[];
}

export function detectFormat(file: string): SourceFormat {
  const f = file.toLowerCase();
  if (f.endsWith(".parquet") || f.endsWith(".pq")) return "parquet";
  if (f.endsWith(".csv")) return "csv";
  return "jsonl";
}

export async function readSource(file: string, format?: SourceFormat): Promise<SourceTable> {
  const fmt = format ?? detectFormat(file);
  if (fmt === "parquet") return readParquet(file);
  if (fmt === "csv") return readCsv(file);
  return readJsonlRecords(file);
}

export function readJsonlRecords(file: string): SourceTable {
  const text = readUtf8(file);
  const parts = text.split("\n");
  const records: SourceRecord[] = [];
  for (let i = 0; i < parts.length; i++) {
    const t = parts[i].replace(/\r$/, "");
    if (t.trim() === "") continue;
    let v: unknown;
    try {
      v = JSON.parse(t);
    } catch (e) {
      throw new InputError(file, i + 1, `malformed JSON: ${(e as Error).message}`);
    }
    if (v === null || typeof v !== "object" || Array.isArray(v))
      throw new InputError(file, i + 1, "expected a JSON object");
    if (Object.keys(v).length === 0) throw new InputError(file, i + 1, "empty row");
    records.push({ line: i + 1, record: v as Record<string, unknown> });
  }
  return { format: "jsonl", records };
}

/** Parse RFC 4180 CSV text into rows of fields, each with the line it starts on. */
export function parseCsv(text: string, file = "<csv>"): { line: number; fields: string[] }[] {
  const out: { line: number; fields: string[] }[] = [];
  let line = 1;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const startLine = line;
    const fields: string[] = [];
    let endOfRecord = false;
    while (!endOfRecord) {
      let field = "";
      if (text[i] === '"') {
        i++;
        for (;;) {
          if (i >= n) throw new InputError(file, startLine, "unterminated quoted field");
          const c = text[i];
          if (c === '"') {
            if (text[i + 1] === '"') {
              field += '"';
              i += 2;
            } else {
              i++;
              break;
            }
          } else {
            if (c === "\n") line++;
            field += c;
            i++;
          }
        }
        if (i < n && text[i] !== "," && text[i] !== "\n" && text[i] !== "\r")
          throw new InputError(file, line, "unexpected character after a closing quote");
      } else {
        while (i < n && text[i] !== "," && text[i] !== "\n" && text[i] !== "\r") {
          if (text[i] === '"') throw new InputError(file, line, "a quote inside an unquoted field");
          field += text[i];
          i++;
        }
      }
      fields.push(field);
      if (i >= n) endOfRecord = true;
      else if (text[i] === ",") i++;
      else {
        if (text[i] === "\r") i++;
        if (text[i] === "\n") i++;
        line++;
        endOfRecord = true;
      }
    }
    out.push({ line: startLine, fields });
  }
  return out;
}

export function readCsv(file: string): SourceTable {
  const rows = parseCsv(readUtf8(file), file);
  // A record that is one empty field is a blank line.
  const nonBlank = rows.filter((r) => !(r.fields.length === 1 && r.fields[0] === ""));
  if (nonBlank.length === 0) throw new InputError(file, undefined, "empty CSV file (no header row)");
  const header = nonBlank[0].fields.map((h) => h.trim());
  const dup = header.find((h, k) => header.indexOf(h) !== k);
  if (dup !== undefined) throw new InputError(file, nonBlank[0].line, `duplicate column "${dup}" in header`);
  const records: SourceRecord[] = [];
  for (const r of nonBlank.slice(1)) {
    if (r.fields.length !== header.length)
      throw new InputError(
        file,
        r.line,
        `expected ${header.length} fields (header), found ${r.fields.length}`,
      );
    if (r.fields.every((f) => f.trim() === "")) throw new InputError(file, r.line, "empty row");
    const rec: Record<string, unknown> = {};
    header.forEach((h, k) => {
      rec[h] = r.fields[k];
    });
    records.push({ line: r.line, record: rec });
  }
  return { format: "csv", columns: header, records };
}

function plain(v: unknown): unknown {
  if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (v instanceof Uint8Array) return new TextDecoder().decode(v);
  return v;
}

export async function readParquet(file: string, columns?: string[]): Promise<SourceTable> {
  // `columns`: the columns that must exist (a Parquet file of another schema fails here, before any data).
  let buf: Awaited<ReturnType<typeof asyncBufferFromFile>>;
  try {
    buf = await asyncBufferFromFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT")
      throw new InputError(file, undefined, "file not found");
    throw e;
  }
  let names: string[];
  let metadata: Awaited<ReturnType<typeof parquetMetadataAsync>>;
  try {
    metadata = await parquetMetadataAsync(buf);
    names = parquetSchema(metadata).children.map((c) => c.element.name);
  } catch (e) {
    throw new InputError(file, undefined, `not a readable Parquet file: ${(e as Error).message}`);
  }
  if (columns) {
    const missing = columns.filter((c) => !names.includes(c));
    if (missing.length > 0)
      throw new InputError(
        file,
        undefined,
        `Parquet schema has no column ${missing.map((m) => `"${m}"`).join(", ")} (columns: ${names.join(", ")})`,
      );
  }
  let objs: Record<string, unknown>[];
  try {
    objs = (await parquetReadObjects({ file: buf, metadata })) as Record<string, unknown>[];
  } catch (e) {
    throw new InputError(file, undefined, `cannot read Parquet data: ${(e as Error).message}`);
  }
  const records = objs.map((o, k) => {
    const rec: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(o)) rec[key] = plain(v);
    return { line: k + 1, record: rec };
  });
  return { format: "parquet", columns: names, records };
}
