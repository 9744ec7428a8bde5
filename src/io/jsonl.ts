/**
 * JSON Lines: streaming reader with line numbers, and writers. Every command that reads JSONL goes through
 * here (or `readUtf8File`), so they share one rule for bad input: a missing file, a folder, invalid UTF-8 or
 * malformed JSON is an InputError naming the file and (where there is one) the 1-based line.
 */
import { createReadStream, readFileSync } from "node:fs";
import { InputError } from "../util/errors.ts";
import { AtomicWriter, writeFileAtomic } from "./atomic.ts";

export interface JsonlRecord<T = unknown> {
  /** 1-based line number in the file. */
  line: number;
  value: T;
}

export interface ReadJsonlOptions {
  /** Skip (and count) malformed lines (bad JSON or invalid UTF-8) instead of throwing. */
  skipInvalid?: boolean;
  /** Called for each skipped line. */
  onSkip?: (line: number, error: string) => void;
}

/** The InputError for a failed open/read of `file`, or the error itself when it is not about the path. */
export function fileError(file: string, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === "ENOENT") return new InputError(file, undefined, "file not found");
  if (code === "EISDIR") return new InputError(file, undefined, "is a folder, expected a file");
  if (code === "EACCES" || code === "EPERM") return new InputError(file, undefined, "permission denied");
  if (code === "ENOTDIR")
    return new InputError(file, undefined, "a part of the path is a file, not a folder");
  return e instanceof Error ? e : new Error(String(e));
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** Decode one line's bytes as strict UTF-8; throws an InputError naming the file and line. */
function decodeLine(file: string, lineNo: number, bytes: Uint8Array): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    throw new InputError(file, lineNo, "not valid UTF-8");
  }
}

/** Read a whole file as strict UTF-8 (BOM dropped); invalid bytes fail naming the file and line. */
export function readUtf8File(file: string): string {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw fileError(file, e);
  }
  try {
    return UTF8.decode(buf).replace(/^\uFEFF/, "");
  } catch {
    let line = 1;
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, start);
      const end = nl < 0 ? buf.length : nl;
      decodeLine(file, line, buf.subarray(start, end));
      if (nl < 0) break;
      line++;
      start = nl + 1;
    }
    throw new InputError(file, undefined, "not valid UTF-8");
  }
}

function parseLine(file: string, lineNo: number, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InputError(file, lineNo, `malformed JSON: ${(e as Error).message}`);
  }
}

/** The raw lines of a file as bytes (without the newline), streamed in constant memory. */
async function* byteLines(file: string): AsyncGenerator<Buffer> {
  const stream = createReadStream(file);
  let rest: Buffer | null = null;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let buf: Buffer = rest ? Buffer.concat([rest, chunk]) : chunk;
      let start = 0;
      for (;;) {
        const nl = buf.indexOf(0x0a, start);
        if (nl < 0) break;
        yield buf.subarray(start, nl);
        start = nl + 1;
      }
      buf = buf.subarray(start);
      rest = buf.length ? Buffer.from(buf) : null;
    }
    if (rest) yield rest;
  } finally {
    stream.destroy();
  }
}

/**
 * Stream a JSONL file line by line in constant memory. Blank lines are ignored; a BOM on the first line is
 * dropped; CRLF is accepted. A line with invalid UTF-8 or malformed JSON throws an InputError naming the
 * file and line, unless `skipInvalid`.
 */
export async function* readJsonl<T = unknown>(
  file: string,
  opts: ReadJsonlOptions = {},
): AsyncGenerator<JsonlRecord<T>> {
  let lineNo = 0;
  const lines = byteLines(file);
  try {
    for (;;) {
      let next: IteratorResult<Buffer>;
      try {
        next = await lines.next();
      } catch (e) {
        throw fileError(file, e);
      }
      if (next.done) break;
      lineNo++;
      let value: unknown;
      try {
        let text = decodeLine(file, lineNo, next.value);
        if (lineNo === 1) text = text.replace(/^\uFEFF/, "");
        if (text.trim() === "") continue;
        value = parseLine(file, lineNo, text.endsWith("\r") ? text.slice(0, -1) : text);
      } catch (e) {
        if (opts.skipInvalid) {
          opts.onSkip?.(lineNo, (e as Error).message);
          continue;
        }
        throw e;
      }
      yield { line: lineNo, value: value as T };
    }
  } finally {
    await lines.return(undefined);
  }
}

/** Read a whole (small) JSONL file into memory (same rules as readJsonl, without skipping). */
export function readJsonlSync<T = unknown>(file: string): JsonlRecord<T>[] {
  const text = readUtf8File(file);
  const out: JsonlRecord<T>[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() === "") continue;
    out.push({ line: i + 1, value: parseLine(file, i + 1, lines[i]) as T });
  }
  return out;
}

/** Write rows as JSONL atomically. */
export async function writeJsonl(file: string, rows: Iterable<unknown>): Promise<void> {
  let s = "";
  for (const r of rows) s += `${JSON.stringify(r)}\n`;
  await writeFileAtomic(file, s);
}

/** Streaming atomic JSONL writer. */
export class JsonlWriter {
  private readonly w: AtomicWriter;
  count = 0;
  constructor(file: string) {
    this.w = new AtomicWriter(file);
  }
  async write(row: unknown): Promise<void> {
    this.count++;
    await this.w.write(`${JSON.stringify(row)}\n`);
  }
  commit(): Promise<void> {
    return this.w.commit();
  }
  abort(): Promise<void> {
    return this.w.abort();
  }
}

/** Edit distance with adjacent transpositions counted as one edit (optimal string alignment; key names). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.length][b.length];
}

/**
 * The known key `key` is most likely a misspelling of: the same but for case, or (keys of four or more
 * characters) one edit away ignoring case (a letter added, dropped, changed or two neighbours swapped). For readers that allow extra keys
 * (datasets carry fields of their own) but must not let "lable" or "anwser" leave a row unlabelled.
 */
export function likelyTypo(key: string, known: readonly string[]): string | undefined {
  if (known.includes(key)) return undefined;
  const lower = key.toLowerCase();
  return (
    known.find((k) => k.toLowerCase() === lower) ??
    (key.length >= 4 ? known.find((k) => editDistance(lower, k.toLowerCase()) === 1) : undefined)
  );
}

/** The known name closest to `name` (case-insensitive edit distance ≤ 2), if any. */
export function closestName(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best;
}

/** Throw an InputError naming file, line and key when a key of `row` is a likely misspelling of a known one. */
export function rejectTypos(
  file: string,
  line: number,
  row: Record<string, unknown>,
  known: readonly string[],
): void {
  for (const key of Object.keys(row)) {
    const meant = likelyTypo(key, known);
    if (meant)
      throw new InputError(file, line, `unknown key ${JSON.stringify(key)} (did you mean "${meant}"?)`);
  }
}

/** The message for an unknown key: names it, suggests the close match and lists the known keys. */
export function unknownKeyMessage(key: string, known: readonly string[]): string {
  const near = closestName(key, known);
  return `unknown key ${JSON.stringify(key)}${near ? ` (did you mean "${near}"?)` : ""}; known keys: ${known.join(", ")}`;
}

/** The first key of a JSON object row that is not in `known`, as an error message; null when all are known. */
export function unknownKeyError(row: Record<string, unknown>, known: readonly string[]): string | null {
  for (const k of Object.keys(row)) if (!known.includes(k)) return unknownKeyMessage(k, known);
  return null;
}
