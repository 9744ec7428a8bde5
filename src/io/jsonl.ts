/** JSON Lines: streaming reader with line numbers, and writers. */
import { createReadStream, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { InputError } from "../util/errors.ts";
import { AtomicWriter, writeFileAtomic } from "./atomic.ts";

export interface JsonlRecord<T = unknown> {
  /** 1-based line number in the file. */
  line: number;
  value: T;
}

export interface ReadJsonlOptions {
  /** Skip (and count) malformed lines instead of throwing. */
  skipInvalid?: boolean;
  /** Called for each skipped line. */
  onSkip?: (line: number, error: string) => void;
}

function parseLine(file: string, lineNo: number, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InputError(file, lineNo, `malformed JSON: ${(e as Error).message}`);
  }
}

/**
 * Stream a JSONL file line by line in constant memory. Blank lines are ignored. A malformed line throws an
 * InputError naming the file and line, unless `skipInvalid`.
 */
export async function* readJsonl<T = unknown>(
  file: string,
  opts: ReadJsonlOptions = {},
): AsyncGenerator<JsonlRecord<T>> {
  const stream = createReadStream(file, { encoding: "utf8" });
  const rl = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  let lineNo = 0;
  try {
    for await (const raw of rl) {
      lineNo++;
      const text = lineNo === 1 ? raw.replace(/^\uFEFF/, "") : raw;
      if (text.trim() === "") continue;
      let value: unknown;
      try {
        value = parseLine(file, lineNo, text);
      } catch (e) {
        if (opts.skipInvalid) {
          opts.onSkip?.(lineNo, (e as Error).message);
          continue;
        }
        throw e;
      }
      yield { line: lineNo, value: value as T };
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT")
      throw new InputError(file, undefined, "file not found");
    throw e;
  } finally {
    rl.close();
    stream.destroy();
  }
}

/** Read a whole (small) JSONL file into memory. */
export function readJsonlSync<T = unknown>(file: string): JsonlRecord<T>[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT")
      throw new InputError(file, undefined, "file not found");
    throw e;
  }
  const out: JsonlRecord<T>[] = [];
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
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
