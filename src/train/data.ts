/**
 * Training data (stage 1 of a step): reading rows for `ttrl train` and `ttrl sft`, with errors that name the
 * file and line, and the seeded data order both trainers (and every engine) follow.
 */
import { existsSync } from "node:fs";
import { readJsonl, rejectTypos } from "../io/jsonl.ts";
import { InputError, TtrlError } from "../util/errors.ts";
import { Rng } from "../util/rng.ts";
import type { SftRow } from "./sft.ts";

export interface TrainRow {
  id: string;
  question: string;
  answer?: string | number | null;
  /** 1-based line in the data file, for error messages. */
  line: number;
}

/**
 * The seeded data order: prompt k of the run is row perm_e[k mod n] of epoch e = ⌊k / n⌋. It depends only
 * on the seed and the data size — never on rewards or samples — so accuracy and majority runs see the
 * same prompts in the same order.
 */
export class DataOrder {
  private perms = new Map<number, number[]>();
  constructor(
    readonly n: number,
    readonly seed: number,
    readonly shuffle: boolean,
  ) {}
  index(k: number): number {
    const e = Math.floor(k / this.n);
    let p = this.perms.get(e);
    if (!p) {
      p = Array.from({ length: this.n }, (_, i) => i);
      if (this.shuffle) new Rng(this.seed).fork(`data/epoch-${e}`).shuffle(p);
      this.perms.clear();
      this.perms.set(e, p);
    }
    return p[k % this.n];
  }
  /** Rows k·size … k·size + size − 1 of the order: the rows of step k when each step takes `size` rows. */
  step(k: number, size: number): number[] {
    return Array.from({ length: size }, (_, i) => this.index(k * size + i));
  }
}

/**
 * The rows (indices into the data) of GRPO step `step`: a pure function of the seed, the step, the
 * settings and the data size, shared by every engine.
 */
export function stepRows(
  step: number,
  nRows: number,
  c: { seed: number; prompts_per_step: number; shuffle_dataset: boolean },
): number[] {
  return new DataOrder(nRows, c.seed, c.shuffle_dataset).step(step, c.prompts_per_step);
}

function checkFile(file: string): void {
  if (!existsSync(file)) throw new TtrlError(`${file}: data file not found`);
}

/** Rows {id, question, answer?}; a missing id becomes the line number. */
export async function readTrainRows(file: string): Promise<TrainRow[]> {
  checkFile(file);
  const rows: TrainRow[] = [];
  for await (const { line, value } of readJsonl<Record<string, unknown>>(file)) {
    if (typeof value !== "object" || value === null || Array.isArray(value))
      throw new InputError(file, line, "expected a JSON object");
    rejectTypos(file, line, value, ["id", "question", "answer", "solution", "source", "meta"]);
    if (typeof value.question !== "string" || value.question.trim() === "")
      throw new InputError(file, line, 'row has no "question" string');
    const a = value.answer;
    if (a !== undefined && a !== null && typeof a !== "string" && typeof a !== "number")
      throw new InputError(file, line, '"answer" must be a string or number');
    rows.push({
      id: value.id === undefined ? `line-${line}` : String(value.id),
      question: value.question,
      answer: a === undefined || a === null || a === "" ? undefined : (a as string | number),
      line,
    });
  }
  return rows;
}

export async function readSftRows(file: string): Promise<SftRow[]> {
  checkFile(file);
  const rows: SftRow[] = [];
  for await (const { line, value } of readJsonl<Record<string, unknown>>(file)) {
    if (typeof value !== "object" || value === null || Array.isArray(value))
      throw new InputError(file, line, "expected a JSON object");
    rejectTypos(file, line, value, ["id", "question", "answer", "solution", "text", "source", "meta"]);
    rows.push({
      line,
      question: typeof value.question === "string" ? value.question : undefined,
      solution: typeof value.solution === "string" ? value.solution : undefined,
      text: typeof value.text === "string" ? value.text : undefined,
    });
  }
  return rows;
}
