/**
 * Where `ttrl eval` gets its samples: the local engine (batched generate, one seed per sample) or any
 * OpenAI-compatible server through the `openai` SDK (bounded concurrency; retries with exponential backoff
 * are the SDK's). Both return the completion text with the stop string that ended it kept, so the grader sees
 * the closing answer tag.
 */
import { createHash } from "node:crypto";
import { closeSync, fstatSync, openSync, readdirSync, readSync } from "node:fs";
import { join } from "node:path";
import OpenAI from "openai";
import { encodeWithin } from "../model/prompt-fit.ts";
import type { FinishReason } from "../model/sampler.ts";
import { TtrlError } from "../util/errors.ts";
import type { Engine } from "./engine.ts";

export interface ChatMessage {
  role: string;
  content: string;
}

export interface SampleJob {
  /** What the job is, for error messages (e.g. `question "q7" sample 3`). */
  label?: string;
  /** Plain prompt text (plain templates) ... */
  prompt?: string;
  /** ... or chat messages (chat templates; the backend applies the model's chat template). */
  messages?: ChatMessage[];
  seed: number;
  greedy: boolean;
}

export interface SamplingParams {
  temperature: number;
  topP: number;
  maxTokens: number;
  stop: string[];
}

export interface SampleOut {
  text: string;
  finishReason: FinishReason;
  completionTokens: number | null;
}

export interface Backend {
  kind: "local" | "http";
  /** Identity of the model behind the backend (part of the cache key). */
  id: string;
  /** Run every job; `onDone` is awaited for each finished one (in any order). Throws after the last
   * in-flight job settles when a job fails for good. */
  run(
    jobs: SampleJob[],
    params: SamplingParams,
    onDone: (i: number, out: SampleOut) => Promise<void>,
  ): Promise<void>;
  close(): Promise<void>;
}

/**
 * Put back a stop string the server left out (OpenAI semantics drop it). `stopReason` is the matched string
 * when the server reports it (vLLM and ttrl serve do); otherwise, for tag-like stops `</x>`, a completion that
 * opened `<x>` without closing it gets the closing tag back.
 */
export function restoreStop(
  text: string,
  finishReason: string,
  stopReason: string | number | null | undefined,
  stops: string[],
): string {
  if (finishReason !== "stop") return text;
  if (stops.some((s) => text.endsWith(s))) return text;
  if (typeof stopReason === "string") return stops.includes(stopReason) ? text + stopReason : text;
  if (stopReason !== undefined) return text; // null / token id: ended on EOS
  for (const s of stops) {
    const m = /^<\/([^<>]+)>$/.exec(s);
    if (!m) continue;
    const open = text.lastIndexOf(`<${m[1]}>`);
    if (open >= 0 && text.indexOf(s, open) < 0) return text + s;
  }
  return text;
}

/** Files of a model folder that change what it generates (besides the weights). */
const MODEL_TEXT_FILES = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "chat_template.jinja",
  "model.safetensors.index.json",
];

/**
 * A content hash of a model folder: the bytes of every `*.safetensors` file plus the config, tokenizer and
 * generation files, each with its name and size. Re-trained weights keep their safetensors header and size
 * exactly (same shapes, same dtypes) and a copy or `touch` changes only the mtime, so neither headers+sizes
 * nor mtimes can tell whether cached samples still belong to the weights; the bytes can. Streams the files
 * in 4 MiB reads (sha256 runs at several hundred MB/s, small next to loading the same weights).
 */
export function modelFingerprint(dir: string): string {
  const names = readdirSync(dir)
    .filter((f) => f.endsWith(".safetensors") || MODEL_TEXT_FILES.includes(f))
    .sort();
  const h = createHash("sha256");
  const buf = Buffer.allocUnsafe(4 << 20);
  for (const name of names) {
    const path = join(dir, name);
    const fd = openSync(path, "r");
    try {
      const size = fstatSync(fd).size;
      h.update(`${name}\u0000${size}\u0000`);
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n === 0) break;
        h.update(buf.subarray(0, n));
      }
    } finally {
      closeSync(fd);
    }
  }
  return `sha256:${h.digest("hex").slice(0, 32)}`;
}

export function localBackend(engine: Engine, opts: { batchSize?: number; id?: string } = {}): Backend {
  const batchSize = opts.batchSize ?? 16;
  return {
    kind: "local",
    // Keyed by the weights (and tokenizer/config), not the folder's path: re-evaluating a folder whose
    // weights changed must not reuse the old samples; a byte-identical copy elsewhere may.
    id: opts.id ?? (engine.dir ? `local:${modelFingerprint(engine.dir)}` : `local:${engine.name}`),
    async run(jobs, params, onDone) {
      // Greedy and sampled jobs take different generate options: batch them separately.
      for (const greedy of [false, true]) {
        const idx = jobs.map((j, i) => (j.greedy === greedy ? i : -1)).filter((i) => i >= 0);
        for (let s = 0; s < idx.length; s += batchSize) {
          const chunk = idx.slice(s, s + batchSize);
          const prompts = chunk.map((i) => {
            const j = jobs[i];
            const text = j.messages
              ? engine.tokenizer.applyChatTemplate(j.messages, { addGenerationPrompt: true })
              : (j.prompt ?? "");
            // a prompt that cannot fit is refused before it is tokenized, naming the question
            const room = engine.maxContext === undefined ? Number.POSITIVE_INFINITY : engine.maxContext - 1;
            return encodeWithin(engine.tokenizer, text, room, j.label ?? "prompt");
          });
          const gens = await engine.generate(prompts, {
            maxNewTokens: params.maxTokens,
            temperature: params.temperature,
            topP: params.topP,
            greedy,
            seeds: chunk.map((i) => jobs[i].seed),
            stop: params.stop,
          });
          for (let b = 0; b < chunk.length; b++) {
            const g = gens[b];
            await onDone(chunk[b], {
              text: restoreStop(g.text, g.finishReason, undefined, params.stop),
              finishReason: g.finishReason,
              completionTokens: g.tokens.length,
            });
          }
        }
      }
    },
    async close() {},
  };
}

export interface HttpBackendOptions {
  endpoint: string;
  modelName: string;
  concurrency?: number;
  /**
   * Retries per request. HTTP 429/5xx and failed connections are retried by the SDK (exponential backoff
   * with jitter, 0.5 s doubling up to 8 s, honouring retry-after); a body cut off mid-response, a body that
   * is not JSON or a reply without choices are retried here with the same bound and schedule.
   */
  retries?: number;
  /** First backoff delay of the retries made here (doubles each time, capped at 16×; default 500 ms). */
  retryDelayMs?: number;
  timeoutMs?: number;
  apiKey?: string;
}

/** A 200 reply the client cannot use (no choices, no text): retried like a cut-off body. */
class BadReplyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BadReplyError";
  }
}

/**
 * Faults in the body of a 200 reply, which the SDK does not retry: the connection cut mid-body (undici
 * "terminated", ECONNRESET), a body that is not JSON, a reply without choices. HTTP statuses and failed
 * connections arrive as the SDK's APIError subclasses after its own retries.
 */
function isBodyFault(e: unknown): boolean {
  if (e instanceof OpenAI.APIError) return false;
  return e instanceof BadReplyError || e instanceof SyntaxError || e instanceof TypeError || isSocketError(e);
}

function isSocketError(e: unknown): boolean {
  const code =
    (e as { code?: string; cause?: { code?: string } })?.cause?.code ?? (e as { code?: string })?.code;
  return typeof code === "string" && /^(ECONNRESET|EPIPE|UND_ERR_\w+|ERR_STREAM_PREMATURE_CLOSE)$/.test(code);
}

function bodyFaultDetail(e: unknown): string {
  if (e instanceof BadReplyError) return e.message;
  if (e instanceof SyntaxError) return `reply body is not valid JSON (${e.message})`;
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  return `connection cut mid-response (${cause?.code ?? (e as Error).message ?? String(e)})`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function httpBackend(o: HttpBackendOptions): Backend {
  const retries = o.retries ?? 4;
  const baseDelay = o.retryDelayMs ?? 500;
  const client = new OpenAI({
    baseURL: o.endpoint,
    apiKey: o.apiKey ?? process.env.OPENAI_API_KEY ?? "sk-none",
    maxRetries: retries,
    timeout: o.timeoutMs ?? 600_000,
  });
  const concurrency = o.concurrency ?? 8;

  async function one(job: SampleJob, params: SamplingParams): Promise<SampleOut> {
    const common = {
      model: o.modelName,
      n: 1,
      temperature: job.greedy ? 0 : params.temperature,
      top_p: job.greedy ? 1 : params.topP,
      max_tokens: params.maxTokens,
      stop: params.stop.length ? params.stop.slice(0, 4) : undefined,
      seed: job.seed,
    };
    if (job.messages) {
      const r = await client.chat.completions.create({
        ...common,
        messages: job.messages as OpenAI.Chat.ChatCompletionMessageParam[],
      });
      const c = (r as { choices?: typeof r.choices }).choices?.[0];
      if (!c) throw new BadReplyError("reply without choices");
      if (!c.message || (typeof c.message.content !== "string" && c.message.content !== null))
        throw new BadReplyError("reply choice without message content");
      const fr = c.finish_reason === "length" ? "length" : "stop";
      const stopReason = (c as unknown as { stop_reason?: string | number | null }).stop_reason;
      return {
        text: restoreStop(c.message.content ?? "", fr, stopReason, params.stop),
        finishReason: fr === "length" ? "length" : stopReason === null ? "eos" : "stop",
        completionTokens: null,
      };
    }
    const r = await client.completions.create({ ...common, prompt: job.prompt ?? "" });
    const c = (r as { choices?: typeof r.choices }).choices?.[0];
    if (!c) throw new BadReplyError("reply without choices");
    if (typeof c.text !== "string") throw new BadReplyError("reply choice without text");
    const fr = c.finish_reason === "length" ? "length" : "stop";
    const stopReason = (c as unknown as { stop_reason?: string | number | null }).stop_reason;
    return {
      text: restoreStop(c.text, fr, stopReason, params.stop),
      finishReason: fr === "length" ? "length" : stopReason === null ? "eos" : "stop",
      completionTokens: r.usage?.completion_tokens ?? null,
    };
  }

  /** `one` with bounded retries of body faults (exponential backoff with jitter). */
  async function withRetries(job: SampleJob, params: SamplingParams): Promise<SampleOut> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await one(job, params);
      } catch (e) {
        if (!isBodyFault(e) || attempt >= retries) throw e;
        const delay = baseDelay * 2 ** Math.min(attempt, 4);
        await sleep(delay * (0.75 + 0.5 * Math.random()));
      }
    }
  }

  return {
    kind: "http",
    // Keyed by the endpoint and the served model's name: another server (or another model under the same
    // name elsewhere) never reuses these samples.
    id: `http:${o.endpoint.replace(/\/+$/, "")}|${o.modelName}`,
    async run(jobs, params, onDone) {
      let next = 0;
      // The first failure stops new requests; requests in flight finish (and are kept) before it is thrown.
      let failure: { e: unknown; job: SampleJob; http: boolean } | null = null;
      const worker = async () => {
        while (failure === null && next < jobs.length) {
          const i = next++;
          let out: SampleOut;
          try {
            out = await withRetries(jobs[i], params);
          } catch (e) {
            failure ??= { e, job: jobs[i], http: true };
            continue;
          }
          try {
            await onDone(i, out);
          } catch (e) {
            failure ??= { e, job: jobs[i], http: false };
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker));
      const f = failure as { e: unknown; job: SampleJob; http: boolean } | null;
      if (f !== null) throw f.http ? describeHttpError(f.e, o.endpoint, retries, f.job.label) : f.e;
    },
    async close() {},
  };
}

export function describeHttpError(e: unknown, endpoint: string, retries: number, what?: string): Error {
  const at = what ? `${endpoint} (${what})` : endpoint;
  if (e instanceof OpenAI.APIConnectionTimeoutError)
    return new TtrlError(`${at}: request timed out after ${retries} retries`, { cause: e });
  if (e instanceof OpenAI.APIConnectionError) {
    const cause = (e as { cause?: { message?: string; code?: string } }).cause;
    const detail = cause?.code ?? cause?.message ?? e.message;
    return new TtrlError(`${at}: unreachable after ${retries} retries (${detail})`, { cause: e });
  }
  if (e instanceof OpenAI.APIError) {
    const after = e.status && (e.status >= 500 || e.status === 429) ? ` after ${retries} retries` : "";
    return new TtrlError(`${at}: server answered ${e.status ?? "?"}${after}: ${e.message}`, {
      cause: e,
    });
  }
  if (isBodyFault(e))
    return new TtrlError(`${at}: ${bodyFaultDetail(e)}, after ${retries} retries`, { cause: e });
  return new TtrlError(`${at}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}
