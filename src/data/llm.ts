/**
 * Chat-completion calls for the LLM data steps, through the official `openai` SDK against any
 * OpenAI-compatible server: retries with exponential backoff on 429/5xx/timeouts/broken replies (honouring
 * `retry-after` / `retry-after-ms`), per-request timeouts, bounded concurrency, and an append-only on-disk
 * cache keyed by (model, messages, params) so an interrupted or repeated run never pays twice.
 */
import { createHash } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import OpenAI from "openai";
import { TtrlError, UsageError } from "../util/errors.ts";
import { Rng } from "../util/rng.ts";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface LlmConfig {
  baseURL: string;
  model: string;
  /** Default: $OPENAI_API_KEY; not needed for local servers (localhost, 127.0.0.1, ::1). */
  apiKey?: string;
  /** Per-request timeout in ms (default 60 000). */
  timeoutMs?: number;
  /** Retries per request after the first attempt (default 6). */
  maxRetries?: number;
  /** First backoff delay in ms (default 500), doubled per retry up to maxBackoffMs (default 30 000). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Longest `retry-after` honoured, in ms (default 120 000); longer values are capped. */
  maxRetryAfterMs?: number;
  temperature?: number;
  /** Cache file (JSONL, append-only); none → no cache. */
  cacheFile?: string;
}

export interface LlmReply {
  text: string;
  finishReason: string;
  cached: boolean;
}

export interface LlmStats {
  requests: number;
  cacheHits: number;
  retries: number;
  retryReasons: Record<string, number>;
}

/** A failure that must stop the whole run (auth, wrong model/URL, retries exhausted). */
export class LlmFatalError extends TtrlError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "LlmFatalError";
  }
}

/** A failure of one request that drops its row (e.g. 400 for this prompt) but lets the run go on. */
export class LlmRowError extends TtrlError {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.name = "LlmRowError";
    this.reason = reason;
  }
}

export function isLocalUrl(url: string): boolean {
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    throw new UsageError(`--base-url is not a URL: "${url}"`);
  }
  host = host.replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || host === "0.0.0.0" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Append-only JSONL cache: one `{"k", "text", "finish"}` line per successful reply. */
export class LlmCache {
  readonly file: string;
  private readonly map = new Map<string, { text: string; finish: string }>();
  constructor(file: string) {
    this.file = file;
    mkdirSync(dirname(file), { recursive: true });
    if (existsSync(file)) {
      const text = readFileSync(file, "utf8");
      for (const line of text.split("\n")) {
        if (!line.trim()) continue;
        try {
          const v = JSON.parse(line) as { k?: unknown; text?: unknown; finish?: unknown };
          if (typeof v.k === "string" && typeof v.text === "string")
            this.map.set(v.k, { text: v.text, finish: typeof v.finish === "string" ? v.finish : "stop" });
        } catch {
          // A line cut short by a killed run: ignore it (the call is simply made again).
        }
      }
      // Make sure the next append starts on a fresh line.
      if (text.length > 0 && !text.endsWith("\n")) appendFileSync(file, "\n");
    }
  }
  get size(): number {
    return this.map.size;
  }
  get(key: string): { text: string; finish: string } | undefined {
    return this.map.get(key);
  }
  put(key: string, model: string, text: string, finish: string): void {
    this.map.set(key, { text, finish });
    appendFileSync(this.file, `${JSON.stringify({ k: key, model, text, finish })}\n`);
  }
}

export function cacheKey(model: string, messages: ChatMessage[], params: Record<string, unknown>): string {
  return createHash("sha256").update(JSON.stringify({ model, messages, params })).digest("hex");
}

const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));

function retryAfterMs(headers: Headers | undefined): number | undefined {
  if (!headers) return undefined;
  const ms = headers.get("retry-after-ms");
  if (ms && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const ra = headers.get("retry-after");
  if (!ra) return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(ra)) return Number(ra) * 1000;
  const t = Date.parse(ra);
  return Number.isFinite(t) ? Math.max(0, t - Date.now()) : undefined;
}

export class LlmClient {
  readonly model: string;
  readonly baseURL: string;
  readonly stats: LlmStats = { requests: 0, cacheHits: 0, retries: 0, retryReasons: {} };
  private readonly client: OpenAI;
  private readonly cfg: Required<Omit<LlmConfig, "apiKey" | "cacheFile">>;
  private readonly cache: LlmCache | null;
  private readonly jitter = new Rng("llm-backoff");

  /** Validates the configuration (API key for remote URLs) before any call is made. */
  constructor(cfg: LlmConfig) {
    const local = isLocalUrl(cfg.baseURL);
    const apiKey = cfg.apiKey || process.env.OPENAI_API_KEY || undefined;
    if (!apiKey && !local)
      throw new UsageError(
        `no API key for ${cfg.baseURL}: set OPENAI_API_KEY (only local servers on localhost/127.0.0.1 need none)`,
      );
    this.model = cfg.model;
    this.baseURL = cfg.baseURL;
    this.cfg = {
      baseURL: cfg.baseURL,
      model: cfg.model,
      timeoutMs: cfg.timeoutMs ?? 60_000,
      maxRetries: cfg.maxRetries ?? 6,
      backoffMs: cfg.backoffMs ?? 500,
      maxBackoffMs: cfg.maxBackoffMs ?? 30_000,
      maxRetryAfterMs: cfg.maxRetryAfterMs ?? 120_000,
      temperature: cfg.temperature ?? 0,
    };
    this.client = new OpenAI({
      baseURL: cfg.baseURL,
      apiKey: apiKey ?? "local", // local servers ignore it; the SDK insists on one
      maxRetries: 0, // retries are ours: they also cover replies cut off mid-body
      timeout: this.cfg.timeoutMs,
    });
    this.cache = cfg.cacheFile ? new LlmCache(cfg.cacheFile) : null;
  }

  get cacheFile(): string | undefined {
    return this.cache?.file;
  }

  /** One chat completion, from the cache when possible. */
  async chat(messages: ChatMessage[], opts: { maxTokens?: number } = {}): Promise<LlmReply> {
    const params: Record<string, unknown> = { temperature: this.cfg.temperature };
    if (opts.maxTokens !== undefined) params.max_tokens = opts.maxTokens;
    const key = cacheKey(this.model, messages, params);
    const hit = this.cache?.get(key);
    if (hit) {
      this.stats.cacheHits++;
      return { text: hit.text, finishReason: hit.finish, cached: true };
    }
    let attempt = 0;
    for (;;) {
      let waitMs: number | undefined;
      let reason: string;
      try {
        this.stats.requests++;
        const res = await this.client.chat.completions.create(
          { model: this.model, messages, ...params } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming,
          { timeout: this.cfg.timeoutMs, maxRetries: 0 },
        );
        const choice = res?.choices?.[0];
        const text = choice?.message?.content;
        if (typeof text !== "string") throw new MalformedReply("reply has no choices[0].message.content");
        const finish = choice.finish_reason ?? "stop";
        this.cache?.put(key, this.model, text, finish);
        return { text, finishReason: finish, cached: false };
      } catch (e) {
        if (e instanceof OpenAI.APIConnectionTimeoutError) reason = "timeout";
        else if (e instanceof OpenAI.APIConnectionError) reason = "connection error";
        else if (e instanceof OpenAI.APIError && typeof e.status === "number") {
          const s = e.status;
          if (s === 401 || s === 403)
            throw new LlmFatalError(`${this.baseURL}: HTTP ${s} (check OPENAI_API_KEY): ${e.message}`, {
              cause: e,
            });
          if (s === 404)
            throw new LlmFatalError(
              `${this.baseURL}: HTTP 404 (wrong --base-url or --model?): ${e.message}`,
              {
                cause: e,
              },
            );
          if (s === 408 || s === 409 || s === 429 || s >= 500) {
            reason = `HTTP ${s}`;
            waitMs = retryAfterMs(e.headers as Headers | undefined);
          } else throw new LlmRowError(`HTTP ${s}`, e.message);
        } else if (e instanceof MalformedReply || e instanceof SyntaxError || e instanceof TypeError)
          // A body cut off mid-transfer surfaces as a TypeError ("terminated") or a JSON SyntaxError.
          reason = "broken reply";
        else throw e;
      }
      if (attempt >= this.cfg.maxRetries)
        throw new LlmFatalError(
          `${this.baseURL}: giving up after ${attempt + 1} attempts (last: ${reason}); is the server up?`,
        );
      attempt++;
      this.stats.retries++;
      this.stats.retryReasons[reason] = (this.stats.retryReasons[reason] ?? 0) + 1;
      const backoff = Math.min(this.cfg.maxBackoffMs, this.cfg.backoffMs * 2 ** (attempt - 1));
      const delay =
        waitMs !== undefined
          ? Math.min(waitMs, this.cfg.maxRetryAfterMs)
          : backoff * (0.5 + 0.5 * this.jitter.next());
      await sleep(delay);
    }
  }
}

class MalformedReply extends Error {}

/** A pool run stopped early by a fatal error; replies obtained so far are in the cache. */
export class RunStoppedError extends TtrlError {
  readonly done: number;
  readonly total: number;
  constructor(done: number, total: number, message: string, options?: { cause?: unknown }) {
    super(`stopped after ${done} of ${total} rows: ${message}`, options);
    this.name = "RunStoppedError";
    this.done = done;
    this.total = total;
  }
}

/**
 * Run `fn` over items with at most `concurrency` in flight. A thrown LlmFatalError (or any error that is
 * not an LlmRowError) stops new work; in-flight calls finish (and are cached), then the first error is
 * rethrown with how far the run got.
 */
export async function mapPool<T, R>(
  items: T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
  onDone?: (index: number, result: R) => void,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  let done = 0;
  let failure: unknown = null;
  const worker = async () => {
    while (failure === null && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i], i);
        done++;
        onDone?.(i, out[i]);
      } catch (e) {
        if (failure === null) failure = e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
  if (failure !== null) {
    const msg = failure instanceof Error ? failure.message : String(failure);
    throw new RunStoppedError(done, items.length, msg, { cause: failure });
  }
  return out;
}
