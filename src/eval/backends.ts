/**
 * Where `ttrl eval` gets its samples: the local engine (batched generate, one seed per sample) or any
 * OpenAI-compatible server through the `openai` SDK (bounded concurrency; retries with exponential backoff
 * are the SDK's). Both return the completion text with the stop string that ended it kept, so the grader sees
 * the closing answer tag.
 */
import { resolve } from "node:path";
import OpenAI from "openai";
import { TtrlError } from "../util/errors.ts";
import type { Engine } from "./engine.ts";

export interface ChatMessage {
  role: string;
  content: string;
}

export interface SampleJob {
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
  finishReason: "stop" | "eos" | "length";
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

export function localBackend(engine: Engine, opts: { batchSize?: number; id?: string } = {}): Backend {
  const batchSize = opts.batchSize ?? 16;
  return {
    kind: "local",
    id: opts.id ?? `local:${engine.dir ? resolve(engine.dir) : engine.name}`,
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
            return engine.tokenizer.encode(text);
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
  /** Retries per request (the SDK's exponential backoff with jitter, 0.5 s doubling up to 8 s). */
  retries?: number;
  timeoutMs?: number;
  apiKey?: string;
}

export function httpBackend(o: HttpBackendOptions): Backend {
  const retries = o.retries ?? 4;
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
      const c = r.choices[0];
      if (!c) throw new TtrlError(`${o.endpoint}: response without choices`);
      const fr = c.finish_reason === "length" ? "length" : "stop";
      const stopReason = (c as unknown as { stop_reason?: string | number | null }).stop_reason;
      return {
        text: restoreStop(c.message.content ?? "", fr, stopReason, params.stop),
        finishReason: fr === "length" ? "length" : stopReason === null ? "eos" : "stop",
        completionTokens: null,
      };
    }
    const r = await client.completions.create({ ...common, prompt: job.prompt ?? "" });
    const c = r.choices[0];
    if (!c) throw new TtrlError(`${o.endpoint}: response without choices`);
    const fr = c.finish_reason === "length" ? "length" : "stop";
    const stopReason = (c as unknown as { stop_reason?: string | number | null }).stop_reason;
    return {
      text: restoreStop(c.text ?? "", fr, stopReason, params.stop),
      finishReason: fr === "length" ? "length" : stopReason === null ? "eos" : "stop",
      completionTokens: r.usage?.completion_tokens ?? null,
    };
  }

  return {
    kind: "http",
    // Keyed by the served model's name, not the URL: a restarted server on another port still resumes.
    id: `http:${o.modelName}`,
    async run(jobs, params, onDone) {
      let next = 0;
      let failure: unknown = null;
      const worker = async () => {
        while (failure === null && next < jobs.length) {
          const i = next++;
          try {
            const out = await one(jobs[i], params);
            await onDone(i, out);
          } catch (e) {
            if (failure === null) failure = e;
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker));
      if (failure !== null) throw describeHttpError(failure, o.endpoint, retries);
    },
    async close() {},
  };
}

function describeHttpError(e: unknown, endpoint: string, retries: number): Error {
  if (e instanceof OpenAI.APIConnectionTimeoutError)
    return new TtrlError(`${endpoint}: request timed out after ${retries} retries`, { cause: e });
  if (e instanceof OpenAI.APIConnectionError) {
    const cause = (e as { cause?: { message?: string; code?: string } }).cause;
    const detail = cause?.code ?? cause?.message ?? e.message;
    return new TtrlError(`${endpoint}: unreachable after ${retries} retries (${detail})`, { cause: e });
  }
  if (e instanceof OpenAI.APIError) {
    const after = e.status && (e.status >= 500 || e.status === 429) ? ` after ${retries} retries` : "";
    return new TtrlError(`${endpoint}: server answered ${e.status ?? "?"}${after}: ${e.message}`, {
      cause: e,
    });
  }
  return e instanceof Error ? e : new Error(String(e));
}
