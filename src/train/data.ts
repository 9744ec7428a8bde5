/** Reading training rows for `ttrl train` and `ttrl sft`, with errors that name the file and line. */
import { existsSync } from "node:fs";
import { readJsonl } from "../io/jsonl.ts";
import { InputError, TtrlError } from "../util/errors.ts";
import type { TrainRow } from "./grpo.ts";
import type { SftRow } from "./sft.ts";

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
    rows.push({
      line,
      question: typeof value.question === "string" ? value.question : undefined,
      solution: typeof value.solution === "string" ? value.solution : undefined,
      text: typeof value.text === "string" ? value.text : undefined,
    });
  }
  return rows;
}
