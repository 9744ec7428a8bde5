/** The LLM data steps: translate questions, extract numeric answers from solutions. */
import { fileURLToPath } from "node:url";
import { parseLocaleNumber } from "../answers/index.ts";
import { createProgress } from "../util/progress.ts";
import { type ChatMessage, type LlmClient, LlmFatalError, LlmRowError, mapPool } from "./llm.ts";
import type { DataRow } from "./schema.ts";
import { readUtf8 } from "./schema.ts";

export const DEFAULT_PROMPTS_DIR = fileURLToPath(new URL("../../data/prompts/", import.meta.url));
export const DEFAULT_TRANSLATE_PROMPT = `${DEFAULT_PROMPTS_DIR}translate.txt`;
export const DEFAULT_EXTRACT_PROMPT = `${DEFAULT_PROMPTS_DIR}extract.txt`;

export interface PromptFile {
  file: string;
  system: string;
  user: string;
}

/** A template file: system text, a line `---`, user text. Without `---`, the whole file is the user text. */
export function loadPromptFile(file: string): PromptFile {
  const text = readUtf8(file).replace(/\r\n/g, "\n");
  const m = /^---[ \t]*$/m.exec(text);
  if (!m) return { file, system: "", user: text.trim() };
  return { file, system: text.slice(0, m.index).trim(), user: text.slice(m.index + m[0].length).trim() };
}

export function renderMessages(p: PromptFile, vars: Record<string, string>): ChatMessage[] {
  // Single pass so substituted text containing "{...}" is never expanded again.
  const fill = (s: string) => s.replace(/\{([a-z_]+)\}/g, (all, k: string) => (k in vars ? vars[k] : all));
  const msgs: ChatMessage[] = [];
  if (p.system) msgs.push({ role: "system", content: fill(p.system) });
  msgs.push({ role: "user", content: fill(p.user) });
  return msgs;
}

const LANGUAGES: Record<string, { name: string; numberFormat: string }> = {
  tr: { name: "Turkish", numberFormat: "thousands separator '.', decimal comma: 1.250 and 2,5" },
  en: { name: "English", numberFormat: "thousands separator ',', decimal point: 1,250 and 2.5" },
  de: { name: "German", numberFormat: "thousands separator '.', decimal comma: 1.250 and 2,5" },
  fr: { name: "French", numberFormat: "thousands separator ' ', decimal comma: 1 250 and 2,5" },
  es: { name: "Spanish", numberFormat: "thousands separator '.', decimal comma: 1.250 and 2,5" },
};

export function languageInfo(code: string): { name: string; numberFormat: string } {
  return LANGUAGES[code] ?? { name: code, numberFormat: "the usual one for that language" };
}

export interface StepResult {
  rows: DataRow[];
  /** Rows that went through the step successfully. */
  done: number;
  dropped: Record<string, number>;
}

function bump(m: Record<string, number>, k: string) {
  m[k] = (m[k] ?? 0) + 1;
}

type Outcome = { row: DataRow } | { drop: string };

/** Rejected requests (e.g. HTTP 400) in a row, with none served, that stop a step as misconfigured. */
export const ROW_ERRORS_BEFORE_STOP = 8;

async function runStep(
  label: string,
  rows: DataRow[],
  concurrency: number,
  one: (r: DataRow) => Promise<Outcome>,
): Promise<StepResult> {
  const dropped: Record<string, number> = {};
  const bar = createProgress({ label, total: rows.length, unit: "rows", fields: ["dropped"] });
  let nDropped = 0;
  let served = 0;
  let rowErrors = 0;
  try {
    const outcomes = await mapPool(
      rows,
      concurrency,
      async (r) => {
        try {
          const o = await one(r);
          served++;
          return o;
        } catch (e) {
          if (e instanceof LlmRowError) {
            // One rejected prompt drops its row; a server that rejects every request is misconfigured.
            if (++rowErrors >= ROW_ERRORS_BEFORE_STOP && served === 0)
              throw new LlmFatalError(
                `the first ${rowErrors} requests all failed (${e.reason}): ${e.message}`,
              );
            return { drop: `${label}: ${e.reason}` };
          }
          throw e;
        }
      },
      (_i, o) => {
        if ("drop" in o) nDropped++;
        bar.tick(1, { dropped: nDropped });
      },
    );
    const out: DataRow[] = [];
    for (const o of outcomes) {
      if ("drop" in o) bump(dropped, o.drop);
      else out.push(o.row);
    }
    return { rows: out, done: out.length, dropped };
  } finally {
    bar.stop();
  }
}

export interface TranslateOptions {
  language: string;
  prompt?: PromptFile;
  concurrency?: number;
  maxTokens?: number;
}

/** Translate each row's question; the original goes to meta.question_original. */
export async function translateRows(
  rows: DataRow[],
  llm: LlmClient,
  opts: TranslateOptions,
): Promise<StepResult> {
  const prompt = opts.prompt ?? loadPromptFile(DEFAULT_TRANSLATE_PROMPT);
  const lang = languageInfo(opts.language);
  return runStep("translate", rows, opts.concurrency ?? 8, async (r) => {
    const msgs = renderMessages(prompt, {
      language: lang.name,
      number_format: lang.numberFormat,
      text: r.question,
    });
    const reply = await llm.chat(msgs, { maxTokens: opts.maxTokens ?? 1024 });
    if (reply.finishReason === "length") return { drop: "translate: reply cut off (max tokens)" };
    const text = reply.text.trim();
    if (text === "") return { drop: "translate: empty reply" };
    return {
      row: {
        ...r,
        question: text,
        meta: { ...(r.meta ?? {}), question_original: r.question, translated_to: opts.language },
      },
    };
  });
}

/** Parse an extraction reply: a plain number (en-US style), tolerating "$", "**", a trailing period. */
export function parseExtractReply(reply: string): string | null {
  let s = reply.trim();
  s = s.replace(/^\*\*(.*)\*\*$/s, "$1").trim();
  s = s
    .replace(/^\$\s*/, "")
    .replace(/\.$/, "")
    .trim();
  if (s === "") return null;
  return parseLocaleNumber(s, "en-US");
}

export interface ExtractOptions {
  prompt?: PromptFile;
  concurrency?: number;
  maxTokens?: number;
}

/**
 * Ask the LLM for each row's final numeric answer from its (original-language) question and solution.
 * A reply that is not a number drops the row (counted). Rows without a solution are dropped too.
 */
export async function extractRows(
  rows: DataRow[],
  llm: LlmClient,
  opts: ExtractOptions = {},
): Promise<StepResult> {
  const prompt = opts.prompt ?? loadPromptFile(DEFAULT_EXTRACT_PROMPT);
  return runStep("extract", rows, opts.concurrency ?? 8, async (r) => {
    if (r.solution === undefined || r.solution.trim() === "") return { drop: "extract: no solution" };
    const original = typeof r.meta?.question_original === "string" ? r.meta.question_original : r.question;
    const msgs = renderMessages(prompt, { question: original, solution: r.solution });
    const reply = await llm.chat(msgs, { maxTokens: opts.maxTokens ?? 64 });
    const answer = parseExtractReply(reply.text);
    if (answer === null)
      return {
        drop: reply.finishReason === "length" ? "extract: reply cut off" : "extract: reply not a number",
      };
    const meta = { ...(r.meta ?? {}) };
    if (r.answer !== undefined && r.answer !== answer) meta.answer_before_extract = r.answer;
    return { row: { ...r, answer, meta } };
  });
}
