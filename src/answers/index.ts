/**
 * Answer extraction and exact numeric grading — the one place in ttrl that decides what a completion
 * answered and whether it is right.
 *
 * - Formats are data ({@link AnswerFormat}): a reasoning tag and an answer tag.
 * - `strict` mode: the trimmed completion is exactly `<R>…</R>` ws `<A>answer</A>`; `flexible` mode: the
 *   last closed `<A>…</A>` pair anywhere.
 * - The answer must be one number in the locale's strict grammar ({@link parseLocaleNumber}).
 * - Answers are canonical plain decimal strings ("1250", "-12.5", "0"), so equality is string equality:
 *   never floats.
 */
import { TtrlError, UsageError } from "../util/errors.ts";

export type Locale = "tr-TR" | "en-US";
export type Mode = "strict" | "flexible";
export type Extractor = "tags" | "gsm8k" | "last-number" | `regex:${string}`;

export interface AnswerFormat {
  name: string;
  reasoningTag: string;
  answerTag: string;
}

export const FORMATS: Record<"mantik-cevap" | "reasoning-answer", AnswerFormat> = {
  "mantik-cevap": { name: "mantik-cevap", reasoningTag: "mantık", answerTag: "cevap" },
  "reasoning-answer": { name: "reasoning-answer", reasoningTag: "reasoning", answerTag: "answer" },
};

export const LOCALES: readonly Locale[] = ["tr-TR", "en-US"];
export const MODES: readonly Mode[] = ["strict", "flexible"];

/** Defaults: mantik-cevap, tags, tr-TR. */
export interface GradeOptions {
  format?: AnswerFormat | string;
  extract?: Extractor;
  locale?: Locale;
}

export interface Extracted {
  valid: boolean;
  /** Canonical plain decimal ("1250", "-12.5") or null when invalid. */
  answer: string | null;
}

export interface Graded {
  valid: boolean;
  answer: string | null;
  /** null when there is no label. */
  correct: boolean | null;
}

export interface GradedCompletion {
  strict: Graded;
  flexible: Graded;
}

const INVALID: Extracted = Object.freeze({ valid: false, answer: null }) as Extracted;

// ---------------------------------------------------------------------------------------------------
// Canonical decimals

const C0 = 48; // '0'
const C9 = 57; // '9'
const MINUS = 45; // '-'

function isDigit(c: number): boolean {
  return c >= C0 && c <= C9;
}

/**
 * Canonical form of a sign, integer digits and fraction digits: no leading zeros (one "0" kept), no
 * trailing fractional zeros, no "." without decimals, and no "-" on zero.
 */
function canonicalFromParts(neg: boolean, intDigits: string, fracDigits: string): string {
  let a = 0;
  while (a < intDigits.length - 1 && intDigits.charCodeAt(a) === C0) a++;
  if (a > 0) intDigits = intDigits.slice(a);
  let b = fracDigits.length;
  while (b > 0 && fracDigits.charCodeAt(b - 1) === C0) b--;
  if (b < fracDigits.length) fracDigits = fracDigits.slice(0, b);
  const body = b > 0 ? `${intDigits}.${fracDigits}` : intDigits;
  if (neg && !(b === 0 && intDigits === "0")) return `-${body}`;
  return body;
}

/** Parse a plain decimal `-?\d+(\.\d+)?` (no grouping) to canonical form, or null. */
function parsePlainDecimal(s: string): string | null {
  const n = s.length;
  let i = 0;
  let neg = false;
  if (i < n && s.charCodeAt(i) === MINUS) {
    neg = true;
    i++;
  }
  const intStart = i;
  while (i < n && isDigit(s.charCodeAt(i))) i++;
  if (i === intStart) return null;
  const intDigits = s.slice(intStart, i);
  let frac = "";
  if (i < n) {
    if (s.charCodeAt(i) !== 46) return null; // '.'
    i++;
    const fs = i;
    while (i < n && isDigit(s.charCodeAt(i))) i++;
    if (i === fs || i !== n) return null;
    frac = s.slice(fs, i);
  }
  return canonicalFromParts(neg, intDigits, frac);
}

/** Expand a JavaScript number's shortest round-trip string (maybe with an exponent) to a plain decimal. */
function numberToPlainDecimal(x: number): string {
  const s = String(x);
  const e = s.indexOf("e");
  if (e < 0) return s;
  const mant = s.slice(0, e);
  const exp = Number(s.slice(e + 1));
  const neg = mant.startsWith("-");
  const m = neg ? mant.slice(1) : mant;
  const dot = m.indexOf(".");
  const digits = dot < 0 ? m : m.slice(0, dot) + m.slice(dot + 1);
  const pointPos = (dot < 0 ? m.length : dot) + exp; // digits before the point
  let intPart: string;
  let fracPart: string;
  if (pointPos <= 0) {
    intPart = "0";
    fracPart = "0".repeat(-pointPos) + digits;
  } else if (pointPos >= digits.length) {
    intPart = digits + "0".repeat(pointPos - digits.length);
    fracPart = "";
  } else {
    intPart = digits.slice(0, pointPos);
    fracPart = digits.slice(pointPos);
  }
  return canonicalFromParts(neg, intPart, fracPart);
}

/**
 * A label (digit string or number) as a canonical decimal. Strings must be plain decimals
 * (`-?\d+(\.\d+)?`, surrounding whitespace allowed); numbers must be finite. Throws otherwise.
 */
export function canonicalLabel(label: string | number): string {
  if (typeof label === "number") {
    if (!Number.isFinite(label)) throw new TtrlError(`label is not a finite number: ${label}`);
    return parsePlainDecimal(numberToPlainDecimal(label)) as string;
  }
  if (typeof label !== "string") throw new TtrlError(`label must be a string or number, got ${typeof label}`);
  const c = parsePlainDecimal(label.trim());
  if (c === null) throw new TtrlError(`label is not a plain decimal number: ${JSON.stringify(label)}`);
  return c;
}

/** Whether a label means "no label": null, undefined, or an empty/blank string. */
export function isMissingLabel(label: unknown): label is null | undefined | "" {
  return label === null || label === undefined || (typeof label === "string" && label.trim() === "");
}

/** Canonical label, or null for a missing one (see {@link isMissingLabel}); throws on a non-number. */
export function optionalLabel(label: string | number | null | undefined): string | null {
  return isMissingLabel(label) ? null : canonicalLabel(label);
}

/** Exact decimal equality of two plain decimal strings (canonical or not: "40.0" equals "40", "-0" equals "0"). */
export function answersEqual(a: string, b: string): boolean {
  if (a === b) return true;
  const ca = parsePlainDecimal(a.trim());
  const cb = parsePlainDecimal(b.trim());
  return ca !== null && ca === cb;
}

// ---------------------------------------------------------------------------------------------------
// Locale numbers

interface LocaleSeps {
  group: number;
  decimal: number;
}

const SEPS: Record<Locale, LocaleSeps> = {
  "tr-TR": { group: 46, decimal: 44 }, // '.' groups, ',' decimals
  "en-US": { group: 44, decimal: 46 }, // ',' groups, '.' decimals
};

function sepsFor(locale: Locale): LocaleSeps {
  const s = SEPS[locale];
  if (!s) throw new UsageError(`unknown locale "${locale}" (known: ${LOCALES.join(", ")})`);
  return s;
}

/**
 * Parse `s[start, end)` as one number in the locale's strict grammar: optional `-`, integer digits either
 * ungrouped (`1234`) or grouped in exact groups of three (`1.234`, `12.345.678` in tr-TR; the first group has
 * 1–3 digits and no leading zero), then optionally the decimal separator and at least one digit. Nothing
 * else (no spaces, currency, percent, exponent, `+`).
 */
function parseNumberRange(s: string, start: number, end: number, seps: LocaleSeps): string | null {
  let i = start;
  let neg = false;
  if (i < end && s.charCodeAt(i) === MINUS) {
    neg = true;
    i++;
  }
  const intStart = i;
  while (i < end && isDigit(s.charCodeAt(i))) i++;
  let firstLen = i - intStart;
  if (firstLen === 0) return null;
  let intDigits: string;
  if (i < end && s.charCodeAt(i) === seps.group) {
    if (firstLen > 3 || s.charCodeAt(intStart) === C0) return null;
    intDigits = s.slice(intStart, i);
    while (i < end && s.charCodeAt(i) === seps.group) {
      const gs = i + 1;
      if (
        gs + 3 > end ||
        !isDigit(s.charCodeAt(gs)) ||
        !isDigit(s.charCodeAt(gs + 1)) ||
        !isDigit(s.charCodeAt(gs + 2))
      )
        return null;
      if (gs + 3 < end && isDigit(s.charCodeAt(gs + 3))) return null;
      intDigits += s.slice(gs, gs + 3);
      i = gs + 3;
    }
    firstLen = 0;
  } else {
    intDigits = s.slice(intStart, i);
  }
  let frac = "";
  if (i < end) {
    if (s.charCodeAt(i) !== seps.decimal) return null;
    i++;
    const fs = i;
    while (i < end && isDigit(s.charCodeAt(i))) i++;
    if (i === fs || i !== end) return null;
    frac = s.slice(fs, end);
  }
  return canonicalFromParts(neg, intDigits, frac);
}

function isSpace(c: number): boolean {
  // The characters String.prototype.trim removes.
  return (
    c === 32 ||
    (c >= 9 && c <= 13) ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  );
}

/** Parse `s[start,end)` trimmed. */
function parseTrimmedRange(s: string, start: number, end: number, seps: LocaleSeps): string | null {
  while (start < end && isSpace(s.charCodeAt(start))) start++;
  while (end > start && isSpace(s.charCodeAt(end - 1))) end--;
  if (start === end) return null;
  return parseNumberRange(s, start, end, seps);
}

/**
 * One number in the locale's format (surrounding whitespace allowed) → canonical decimal, or null.
 * tr-TR: `1.234,5`; en-US: `1,234.5`. Grouping must be in exact groups of three.
 */
export function parseLocaleNumber(text: string, locale: Locale): string | null {
  return parseTrimmedRange(text, 0, text.length, sepsFor(locale));
}

// ---------------------------------------------------------------------------------------------------
// Extraction

const TAG_NAME = /^[^\s<>/]+$/u;

/**
 * A format by built-in name (`mantik-cevap`, `reasoning-answer`), as `REASONING/ANSWER` tag names (e.g.
 * `think/answer` for `<think>…</think><answer>…</answer>`), or as an {@link AnswerFormat} object.
 */
export function resolveFormat(format: AnswerFormat | string | undefined): AnswerFormat {
  if (format === undefined) return FORMATS["mantik-cevap"];
  if (typeof format === "string") {
    const f = (FORMATS as Record<string, AnswerFormat>)[format];
    if (f) return f;
    const parts = format.split("/");
    if (parts.length === 2 && parts.every((p) => TAG_NAME.test(p)))
      return { name: format, reasoningTag: parts[0], answerTag: parts[1] };
    throw new UsageError(
      `unknown answer format "${format}" (known: ${Object.keys(FORMATS).join(", ")}, or REASONING/ANSWER tag names such as think/answer)`,
    );
  }
  if (!TAG_NAME.test(format.reasoningTag ?? "") || !TAG_NAME.test(format.answerTag ?? ""))
    throw new UsageError(
      `answer format "${format.name}" needs a reasoning tag and an answer tag (names without spaces, <, > or /)`,
    );
  return format;
}

/** A compiled grader: options resolved once, then cheap per completion. */
export interface Grader {
  readonly format: AnswerFormat;
  readonly extract: Extractor;
  readonly locale: Locale;
  /** Whether strict and flexible give the same result (extractors other than `tags`). */
  readonly modeIndependent: boolean;
  extractAnswer(completion: string, mode: Mode): Extracted;
  /** Grade against a label already in canonical form (or null). */
  gradeCanonical(completion: string, label: string | null): GradedCompletion;
  grade(completion: string, label: string | number | null | undefined): GradedCompletion;
}

function makeResult(answer: string | null): Extracted {
  return answer === null ? INVALID : { valid: true, answer };
}

function tagExtractors(format: AnswerFormat, seps: LocaleSeps) {
  const oR = `<${format.reasoningTag}>`;
  const cR = `</${format.reasoningTag}>`;
  const oA = `<${format.answerTag}>`;
  const cA = `</${format.answerTag}>`;

  const strict = (s: string): string | null => {
    let start = 0;
    let end = s.length;
    while (start < end && isSpace(s.charCodeAt(start))) start++;
    while (end > start && isSpace(s.charCodeAt(end - 1))) end--;
    if (!s.startsWith(oR, start)) return null;
    const rBody = start + oR.length;
    const rClose = s.indexOf(cR, rBody);
    if (rClose < 0 || rClose + cR.length > end) return null;
    // The reasoning must not contain any of the tags.
    const rOpen2 = s.indexOf(oR, rBody);
    if (rOpen2 >= 0 && rOpen2 < rClose) return null;
    const aOpen0 = s.indexOf(oA, rBody);
    if (aOpen0 >= 0 && aOpen0 < rClose) return null;
    const aClose0 = s.indexOf(cA, rBody);
    if (aClose0 >= 0 && aClose0 < rClose) return null;
    let i = rClose + cR.length;
    while (i < end && isSpace(s.charCodeAt(i))) i++;
    if (!s.startsWith(oA, i)) return null;
    const aBody = i + oA.length;
    const aEnd = end - cA.length;
    if (aEnd < aBody || !s.startsWith(cA, aEnd)) return null;
    // Exactly one answer pair: the first closing tag is the final one, and no second opening tag.
    if (s.indexOf(cA, aBody) !== aEnd) return null;
    const o2 = s.indexOf(oA, aBody);
    if (o2 >= 0 && o2 < aEnd) return null;
    return parseTrimmedRange(s, aBody, aEnd, seps);
  };

  const flexible = (s: string): string | null => {
    const lastClose = s.lastIndexOf(cA);
    if (lastClose < oA.length) return null;
    const open = s.lastIndexOf(oA, lastClose - oA.length);
    if (open < 0) return null;
    const body = open + oA.length;
    const close = s.indexOf(cA, body);
    return parseTrimmedRange(s, body, close, seps);
  };
  return { strict, flexible };
}

/** GSM8K: the first `####` marker; the rest of its line, trimmed, must be one number. */
function gsm8kExtractor(seps: LocaleSeps) {
  return (s: string): string | null => {
    const m = s.indexOf("####");
    if (m < 0) return null;
    let end = s.indexOf("\n", m + 4);
    if (end < 0) end = s.length;
    return parseTrimmedRange(s, m + 4, end, seps);
  };
}

/**
 * Last number in the text (like lm-evaluation-harness's flexible-extract, but locale-aware): the last
 * maximal run of digits and separators that contains a digit, with leading/trailing separators dropped
 * (sentence punctuation) and a directly preceding `-` kept when it does not follow a letter or digit.
 * The run must be a valid number in the locale, else the completion is invalid.
 */
function lastNumberExtractor(seps: LocaleSeps) {
  const isRunChar = (c: number) => isDigit(c) || c === seps.group || c === seps.decimal;
  return (s: string): string | null => {
    let i = s.length - 1;
    while (i >= 0 && !isDigit(s.charCodeAt(i))) i--;
    if (i < 0) return null;
    const end = i + 1; // run ends at a digit (trailing separators dropped)
    while (i >= 0 && isRunChar(s.charCodeAt(i))) i--;
    let start = i + 1;
    while (!isDigit(s.charCodeAt(start))) start++; // leading separators dropped
    if (start === i + 1 && i >= 0 && s.charCodeAt(i) === MINUS) {
      const before = i > 0 ? s.charCodeAt(i - 1) : 32;
      if (!/[\p{L}\p{N}]/u.test(String.fromCharCode(before))) start = i;
    }
    return parseNumberRange(s, start, end, seps);
  };
}

const regexCache = new Map<string, RegExp>();

function regexExtractor(pattern: string, seps: LocaleSeps) {
  let re = regexCache.get(pattern);
  if (!re) {
    try {
      re = new RegExp(pattern, "g"); // no "u": lm-eval style patterns like `\,` must stay valid
    } catch (e) {
      throw new UsageError(`invalid regex extractor "${pattern}": ${(e as Error).message}`);
    }
    regexCache.set(pattern, re);
  }
  const r = re;
  return (s: string): string | null => {
    let last: RegExpExecArray | null = null;
    r.lastIndex = 0;
    for (let m = r.exec(s); m !== null; m = r.exec(s)) {
      last = m;
      if (m[0].length === 0) r.lastIndex++;
    }
    if (!last) return null;
    const text = last.length > 1 ? last[1] : last[0];
    if (text === undefined) return null;
    return parseTrimmedRange(text, 0, text.length, seps);
  };
}

/** Build a {@link Grader} for the options (throws UsageError for unknown format, locale or extractor). */
export function createGrader(opts: GradeOptions = {}): Grader {
  const format = resolveFormat(opts.format);
  const extract: Extractor = opts.extract ?? "tags";
  const locale: Locale = opts.locale ?? "tr-TR";
  const seps = sepsFor(locale);
  let strictFn: (s: string) => string | null;
  let flexFn: (s: string) => string | null;
  if (extract === "tags") {
    const t = tagExtractors(format, seps);
    strictFn = t.strict;
    flexFn = t.flexible;
  } else if (extract === "gsm8k") {
    strictFn = flexFn = gsm8kExtractor(seps);
  } else if (extract === "last-number") {
    strictFn = flexFn = lastNumberExtractor(seps);
  } else if (typeof extract === "string" && extract.startsWith("regex:")) {
    strictFn = flexFn = regexExtractor(extract.slice(6), seps);
  } else {
    throw new UsageError(`unknown extractor "${extract}" (known: tags, gsm8k, last-number, regex:<pattern>)`);
  }
  const modeIndependent = extract !== "tags";
  const graded = (answer: string | null, label: string | null): Graded => ({
    valid: answer !== null,
    answer,
    correct: label === null ? null : answer === label,
  });
  const gradeCanonical = (completion: string, label: string | null): GradedCompletion => {
    const a = strictFn(completion);
    const strict = graded(a, label);
    if (modeIndependent) return { strict, flexible: { ...strict } };
    return { strict, flexible: graded(flexFn(completion), label) };
  };
  return {
    format,
    extract,
    locale,
    modeIndependent,
    extractAnswer(completion, mode) {
      if (mode === "strict") return makeResult(strictFn(completion));
      if (mode === "flexible") return makeResult(flexFn(completion));
      throw new UsageError(`unknown mode "${mode}" (known: strict, flexible)`);
    },
    gradeCanonical,
    grade(completion, label) {
      return gradeCanonical(completion, optionalLabel(label));
    },
  };
}

// Graders for option objects seen before (callers usually pass the same object every time).
const graderCache = new WeakMap<GradeOptions, Grader>();
const graderByKey = new Map<string, Grader>();
let defaultGrader: Grader | undefined;

/** The grader for these options (cached per options object and per option values). */
export function graderFor(opts?: GradeOptions): Grader {
  if (!opts) {
    defaultGrader ??= createGrader();
    return defaultGrader;
  }
  let g = graderCache.get(opts);
  if (g) return g;
  // Fresh option objects with the same values (a common call pattern) share one grader.
  const f = opts.format;
  const fkey =
    f === undefined ? "" : typeof f === "string" ? f : `${f.name}\u0000${f.reasoningTag}\u0000${f.answerTag}`;
  const key = `${fkey}\u0001${opts.extract ?? ""}\u0001${opts.locale ?? ""}`;
  g = graderByKey.get(key);
  if (!g) {
    g = createGrader(opts);
    if (graderByKey.size < 1000) graderByKey.set(key, g);
  }
  graderCache.set(opts, g);
  return g;
}

/** Extract a completion's answer in one mode. */
export function extractAnswer(completion: string, mode: Mode, opts?: GradeOptions): Extracted {
  return graderFor(opts).extractAnswer(completion, mode);
}

/**
 * Extract in both modes and compare with the label (exact decimal equality); `correct` is null without a
 * label (null, undefined or a blank string).
 */
export function gradeCompletion(
  completion: string,
  label: string | number | null | undefined,
  opts?: GradeOptions,
): GradedCompletion {
  return graderFor(opts).grade(completion, label);
}
