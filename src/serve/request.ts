/**
 * Request validation for `ttrl serve`: every body field is either used, accepted and ignored (it cannot
 * change the output), accepted only at its no-op value, or refused — unknown fields included (as the OpenAI
 * API does), so a typo such as `max_token` is an error instead of a silent default. The tables below are
 * the documentation too (`ttrl serve --help`, docs/serve.md).
 */
import type { Engine } from "../eval/engine.ts";

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type = status >= 500 ? "server_error" : "invalid_request_error",
  ) {
    super(message);
  }
}

/** Fields that are used. */
export const USED_FIELDS = {
  both: [
    "model",
    "n",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "seed",
    "stream",
    "stream_options",
    "logprobs",
  ],
  completions: ["prompt", "echo"],
  chat: ["messages", "max_completion_tokens", "top_logprobs"],
} as const;

/** Fields accepted with any value and ignored: they cannot change the output. */
export const IGNORED_FIELDS = [
  "user",
  "metadata",
  "store",
  "service_tier",
  "parallel_tool_calls",
  "prompt_cache_key",
  "safety_identifier",
] as const;

type NoOp = { describe: string; ok: (v: unknown) => boolean };
const isEmpty = (v: unknown) =>
  (Array.isArray(v) && v.length === 0) ||
  (typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 0);

/** Fields accepted only at the value that changes nothing (what clients send by default); else 400. */
export const NOOP_FIELDS: Record<string, NoOp> = {
  presence_penalty: { describe: "0", ok: (v) => v === 0 },
  frequency_penalty: { describe: "0", ok: (v) => v === 0 },
  repetition_penalty: { describe: "1", ok: (v) => v === 1 },
  min_p: { describe: "0", ok: (v) => v === 0 },
  logit_bias: { describe: "{}", ok: isEmpty },
  ignore_eos: { describe: "false", ok: (v) => v === false },
  min_tokens: { describe: "0", ok: (v) => v === 0 },
  // completions only
  best_of: { describe: "1 (or equal to n)", ok: (v) => v === 1 },
  suffix: { describe: '""', ok: (v) => v === "" },
  // chat only
  response_format: {
    describe: '{"type": "text"}',
    ok: (v) => typeof v === "object" && v !== null && (v as { type?: unknown }).type === "text",
  },
  tools: { describe: "[]", ok: isEmpty },
  tool_choice: { describe: '"none" or "auto" (no tools)', ok: (v) => v === "none" || v === "auto" },
  functions: { describe: "[]", ok: isEmpty },
  function_call: { describe: '"none" or "auto"', ok: (v) => v === "none" || v === "auto" },
  modalities: { describe: '["text"]', ok: (v) => Array.isArray(v) && v.length === 1 && v[0] === "text" },
};
const NOOP_COMPLETIONS_ONLY = new Set(["best_of", "suffix"]);
const NOOP_CHAT_ONLY = new Set([
  "response_format",
  "tools",
  "tool_choice",
  "functions",
  "function_call",
  "modalities",
]);

/** Most top log-probs per token (vLLM's default limit; OpenAI's is 5 for completions, 20 for chat). */
export const MAX_TOP_LOGPROBS = 20;
/** Most stop sequences (OpenAI allows 4; lm-evaluation-harness tasks send more). */
export const MAX_STOP = 16;

export interface PromptIn {
  ids: number[];
  /** The prompt as text: the string sent, or the decoded token ids. */
  text: string;
}

export interface ParsedRequest {
  chat: boolean;
  prompts: PromptIn[];
  n: number;
  temperature: number;
  topP: number;
  topK: number;
  maxTokens: number;
  stop: string[];
  seed: number | undefined;
  stream: boolean;
  includeUsage: boolean;
  /** Top alternatives per token, or null when log-probs were not asked for. */
  logprobs: number | null;
  echo: boolean;
}

export interface ParseLimits {
  maxChoices: number;
  defaultMaxTokens: number;
}

function num(
  body: Record<string, unknown>,
  name: string,
  def: number,
  min: number,
  max: number,
  int = false,
): number {
  const v = body[name];
  if (v === undefined || v === null) return def;
  if (typeof v !== "number" || !Number.isFinite(v) || (int && !Number.isInteger(v)))
    throw new HttpError(
      400,
      `'${name}' must be ${int ? "an integer" : "a number"}, got ${JSON.stringify(v)}`,
      name,
    );
  if (v < min || v > max) throw new HttpError(400, `'${name}' must be in [${min}, ${max}], got ${v}`, name);
  return v;
}

function bool(body: Record<string, unknown>, name: string): boolean {
  const v = body[name];
  if (v === undefined || v === null) return false;
  if (typeof v !== "boolean") throw new HttpError(400, `'${name}' must be true or false`, name);
  return v;
}

/** Refuse unknown fields and non-no-op values of unsupported ones. */
function checkFields(body: Record<string, unknown>, chat: boolean): void {
  const used = new Set<string>([...USED_FIELDS.both, ...(chat ? USED_FIELDS.chat : USED_FIELDS.completions)]);
  const ignored = new Set<string>(IGNORED_FIELDS);
  for (const [k, v] of Object.entries(body)) {
    if (used.has(k) || ignored.has(k)) continue;
    const noop = NOOP_FIELDS[k];
    const here = noop && !(chat ? NOOP_COMPLETIONS_ONLY.has(k) : NOOP_CHAT_ONLY.has(k));
    if (here) {
      if (v === null || noop.ok(v) || (k === "best_of" && v === body.n)) continue;
      throw new HttpError(
        400,
        `'${k}' is not supported by ttrl serve (accepted only as ${noop.describe}), got ${JSON.stringify(v)}`,
        k,
      );
    }
    throw new HttpError(
      400,
      `unknown field '${k}' for ${chat ? "/v1/chat/completions" : "/v1/completions"} (see ttrl serve --help for the fields served)`,
      k,
    );
  }
}

function parsePrompts(prompt: unknown, engine: Engine): PromptIn[] {
  const isIds = (x: unknown): x is number[] =>
    Array.isArray(x) && x.length > 0 && x.every((t) => typeof t === "number");
  // The model engine's tokenizer knows its size; ids past it decode to nothing and the model refuses them.
  const V = (engine.tokenizer as { vocabSize?: number }).vocabSize;
  const checkIds = (ids: number[]) => {
    for (const t of ids)
      if (!Number.isInteger(t) || t < 0 || (V !== undefined && t >= V))
        throw new HttpError(
          400,
          `'prompt' token ids must be integers in [0, ${V ?? "vocab size"}), got ${t}`,
          "prompt",
        );
    return { ids, text: engine.tokenizer.decode(ids, { skipSpecialTokens: true }) };
  };
  const fromText = (text: string) => ({ ids: engine.tokenizer.encode(text), text });
  if (typeof prompt === "string") return [fromText(prompt)];
  if (isIds(prompt)) return [checkIds(prompt)];
  if (Array.isArray(prompt) && prompt.length > 0) {
    if (prompt.every((p) => typeof p === "string")) return (prompt as string[]).map(fromText);
    if (prompt.every(isIds)) return (prompt as number[][]).map(checkIds);
  }
  if (prompt === undefined || prompt === null) throw new HttpError(400, "'prompt' is required", "prompt");
  throw new HttpError(
    400,
    "'prompt' must be a string, an array of strings, an array of token ids or an array of those",
    "prompt",
  );
}

function renderChat(body: Record<string, unknown>, engine: Engine): string {
  const m = body.messages;
  if (m === undefined || m === null) throw new HttpError(400, "'messages' is required", "messages");
  if (!Array.isArray(m) || m.length === 0)
    throw new HttpError(400, "'messages' must be a non-empty array", "messages");
  const messages = m.map((x, i) => {
    if (typeof x !== "object" || x === null)
      throw new HttpError(400, `messages[${i}] must be an object`, "messages");
    const { role, content } = x as { role?: unknown; content?: unknown };
    if (typeof role !== "string" || !["system", "user", "assistant", "developer"].includes(role))
      throw new HttpError(
        400,
        `messages[${i}].role must be system, user, assistant or developer`,
        "messages",
      );
    let text: string;
    if (typeof content === "string") text = content;
    else if (
      Array.isArray(content) &&
      content.every((p) => p && p.type === "text" && typeof p.text === "string")
    )
      text = content.map((p) => p.text).join("");
    else throw new HttpError(400, `messages[${i}].content must be a string (or text parts)`, "messages");
    return { role: role === "developer" ? "system" : role, content: text };
  });
  try {
    return engine.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
  } catch (e) {
    throw new HttpError(400, `cannot apply the model's chat template: ${(e as Error).message}`, "messages");
  }
}

/** Validate a /v1/completions or /v1/chat/completions body. */
export function parseRequest(
  body: Record<string, unknown>,
  engine: Engine,
  limits: ParseLimits,
  chat: boolean,
): ParsedRequest {
  checkFields(body, chat);
  if (body.model !== undefined && body.model !== null) {
    if (typeof body.model !== "string") throw new HttpError(400, "'model' must be a string", "model");
    if (body.model !== engine.name)
      throw new HttpError(
        404,
        `The model '${body.model}' does not exist (serving '${engine.name}')`,
        "model",
        "model_not_found",
      );
  }
  const stream = bool(body, "stream");
  let includeUsage = false;
  const so = body.stream_options;
  if (so !== undefined && so !== null) {
    if (!stream)
      throw new HttpError(400, "'stream_options' is only allowed when 'stream' is true", "stream_options");
    if (typeof so !== "object" || Array.isArray(so))
      throw new HttpError(400, "'stream_options' must be an object", "stream_options");
    for (const [k, v] of Object.entries(so)) {
      if (k === "include_usage") {
        if (typeof v !== "boolean" && v !== null)
          throw new HttpError(400, "'stream_options.include_usage' must be true or false", "stream_options");
        includeUsage = v === true;
      } else if (k !== "continuous_usage_stats" || (v !== false && v !== null))
        throw new HttpError(400, `'stream_options.${k}' is not supported by ttrl serve`, "stream_options");
    }
  }
  const n = num(body, "n", 1, 1, limits.maxChoices, true);
  const temperature = num(body, "temperature", 1, 0, 2);
  const topP = num(body, "top_p", 1, 0, 1);
  if (topP === 0) throw new HttpError(400, "'top_p' must be in (0, 1]", "top_p");
  const topK = Math.max(0, num(body, "top_k", 0, -1, 1e9, true));
  let echo = false;
  let logprobs: number | null = null;
  if (chat) {
    if (bool(body, "logprobs")) logprobs = num(body, "top_logprobs", 0, 0, MAX_TOP_LOGPROBS, true);
    else if (body.top_logprobs !== undefined && body.top_logprobs !== null)
      throw new HttpError(400, "'top_logprobs' needs 'logprobs': true", "top_logprobs");
  } else {
    echo = bool(body, "echo");
    if (body.logprobs !== undefined && body.logprobs !== null && body.logprobs !== false)
      logprobs = num(body, "logprobs", 0, 0, MAX_TOP_LOGPROBS, true);
  }
  const maxKey =
    chat && body.max_completion_tokens !== undefined && body.max_completion_tokens !== null
      ? "max_completion_tokens"
      : "max_tokens";
  const maxTokens = num(body, maxKey, limits.defaultMaxTokens, 0, engine.maxContext ?? 1e9, true);
  if (maxTokens === 0 && !echo)
    throw new HttpError(
      400,
      `'${maxKey}' must be at least 1 (0 is allowed only with 'echo': true, to score the prompt)`,
      maxKey,
    );
  const seed =
    body.seed === undefined || body.seed === null
      ? undefined
      : num(body, "seed", 0, -(2 ** 63), 2 ** 64, true);
  let stop: string[] = [];
  if (body.stop !== undefined && body.stop !== null) {
    const s = body.stop;
    if (typeof s === "string") stop = [s];
    else if (Array.isArray(s) && s.every((x) => typeof x === "string")) stop = s as string[];
    else throw new HttpError(400, "'stop' must be a string or an array of strings", "stop");
    if (stop.length > MAX_STOP)
      throw new HttpError(400, `'stop' takes at most ${MAX_STOP} sequences`, "stop");
    if (stop.some((x) => x === "")) throw new HttpError(400, "'stop' sequences must not be empty", "stop");
  }
  let prompts: PromptIn[];
  if (chat) {
    const text = renderChat(body, engine);
    prompts = [{ ids: engine.tokenizer.encode(text), text }];
  } else prompts = parsePrompts(body.prompt, engine);
  if (prompts.length * n > limits.maxChoices)
    throw new HttpError(
      400,
      `too many choices: ${prompts.length} prompt(s) × n=${n} > ${limits.maxChoices}`,
      "n",
    );
  for (const p of prompts) {
    if (p.ids.length === 0) throw new HttpError(400, "prompt is empty", chat ? "messages" : "prompt");
    if (engine.maxContext && p.ids.length + maxTokens > engine.maxContext)
      throw new HttpError(
        400,
        `This model's maximum context length is ${engine.maxContext} tokens; the prompt has ${p.ids.length} and max_tokens is ${maxTokens}`,
        "max_tokens",
        "context_length_exceeded",
      );
  }
  return {
    chat,
    prompts,
    n,
    temperature,
    topP,
    topK,
    maxTokens,
    stop,
    seed: seed === undefined ? undefined : Number(BigInt.asUintN(32, BigInt(seed))),
    stream,
    includeUsage,
    logprobs,
    echo,
  };
}
