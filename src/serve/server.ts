/**
 * `ttrl serve`: an OpenAI-compatible HTTP server (node:http) over the engine — /v1/models, /v1/completions,
 * /v1/chat/completions — with request validation (4xx with an OpenAI-style error body; the server keeps
 * serving) and batching of concurrent requests (src/serve/batcher.ts).
 *
 * Seeds: with `seed` S, choice i is sampled with seed (S + i) mod 2^32, so `n: 1, seed: S` reproduces what
 * `ttrl eval`'s local backend draws for sample seed S. Stop strings are left out of the returned text (as in
 * the OpenAI API); the string that stopped a choice is reported in `stop_reason` (as vLLM does).
 */
import { randomBytes, randomInt } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Engine, EngineGeneration } from "../eval/engine.ts";
import { Batcher, type SeqOptions } from "./batcher.ts";

export interface ServeOptions {
  /** Gather window for batching, ms (default 5). */
  batchWindowMs?: number;
  /** Most sequences in one generate call (default 32). */
  maxBatch?: number;
  /** Most choices (prompts × n) in one request (default 128). */
  maxChoices?: number;
  /** Default max_tokens when a request gives none (default 256). */
  defaultMaxTokens?: number;
  /** Largest request body, bytes (default 4 MiB). */
  maxBodyBytes?: number;
}

export interface ServeStats {
  requests: number;
  completionRequests: number;
  errors4xx: number;
  errors5xx: number;
  batches: number;
  sequences: number;
  maxBatchSeen: number;
}

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

export interface TtrlServer {
  server: Server;
  stats: ServeStats;
  /** Start listening; resolves with the bound port. */
  listen(port: number, host: string): Promise<number>;
  close(): Promise<void>;
}

export function createServeServer(engine: Engine, opts: ServeOptions = {}): TtrlServer {
  const batcher = new Batcher(engine, { windowMs: opts.batchWindowMs ?? 5, maxBatch: opts.maxBatch ?? 32 });
  const counters = { requests: 0, completionRequests: 0, errors4xx: 0, errors5xx: 0 };
  const stats = {
    get requests() {
      return counters.requests;
    },
    get completionRequests() {
      return counters.completionRequests;
    },
    get errors4xx() {
      return counters.errors4xx;
    },
    get errors5xx() {
      return counters.errors5xx;
    },
    get batches() {
      return batcher.stats.batches;
    },
    get sequences() {
      return batcher.stats.sequences;
    },
    get maxBatchSeen() {
      return batcher.stats.maxBatchSeen;
    },
  } as ServeStats;
  const created = Math.floor(Date.now() / 1000);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    counters.requests++;
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname.replace(/\/+$/, "");
    if (path === "/v1/models" || path === "/health") {
      if (req.method !== "GET") throw new HttpError(405, `method ${req.method} not allowed on ${path}`);
      if (path === "/health") return send(res, 200, { status: "ok" });
      return send(res, 200, {
        object: "list",
        data: [{ id: engine.name, object: "model", created, owned_by: "ttrl" }],
      });
    }
    if (path.startsWith("/v1/models/")) {
      const id = decodeURIComponent(path.slice("/v1/models/".length));
      if (id !== engine.name)
        throw new HttpError(404, `The model '${id}' does not exist`, "model", "model_not_found");
      return send(res, 200, { id: engine.name, object: "model", created, owned_by: "ttrl" });
    }
    if (path !== "/v1/completions" && path !== "/v1/chat/completions")
      throw new HttpError(
        404,
        `unknown endpoint ${path} (served: /v1/models, /v1/completions, /v1/chat/completions)`,
      );
    if (req.method !== "POST")
      throw new HttpError(405, `method ${req.method} not allowed on ${path} (use POST)`);
    const body = await readBody(req, opts.maxBodyBytes ?? 4 * 2 ** 20);
    counters.completionRequests++;
    const chat = path === "/v1/chat/completions";
    const p = parseCommon(body, engine, opts, chat);
    let prompts: string[];
    if (chat) prompts = [renderChat(body, engine)];
    else prompts = parsePrompt(body.prompt);
    if (prompts.length * p.n > (opts.maxChoices ?? 128))
      throw new HttpError(
        400,
        `too many choices: ${prompts.length} prompt(s) × n=${p.n} > ${opts.maxChoices ?? 128}`,
        "n",
      );
    const encoded = prompts.map((t) => engine.tokenizer.encode(t));
    for (const ids of encoded) {
      if (ids.length === 0) throw new HttpError(400, "prompt is empty", chat ? "messages" : "prompt");
      if (engine.maxContext && ids.length + p.maxTokens > engine.maxContext)
        throw new HttpError(
          400,
          `This model's maximum context length is ${engine.maxContext} tokens; the prompt has ${ids.length} and max_tokens is ${p.maxTokens}`,
          "max_tokens",
          "context_length_exceeded",
        );
    }
    const seedBase = p.seed ?? randomInt(0, 2 ** 31);
    const jobs: Promise<EngineGeneration>[] = [];
    for (const ids of encoded)
      for (let i = 0; i < p.n; i++) {
        const so: SeqOptions = {
          maxNewTokens: p.maxTokens,
          temperature: p.temperature,
          topP: p.topP,
          greedy: p.temperature === 0,
          stop: p.stop,
          seed: (seedBase + i) >>> 0,
        };
        jobs.push(batcher.submit(ids, so));
      }
    let gens: EngineGeneration[];
    try {
      gens = await Promise.all(jobs);
    } catch (e) {
      throw new HttpError(500, `generation failed: ${(e as Error).message}`);
    }
    const promptTokens = encoded.reduce((a, ids) => a + ids.length, 0);
    const completionTokens = gens.reduce((a, g) => a + g.tokens.length, 0);
    const id = `${chat ? "chatcmpl" : "cmpl"}-${randomBytes(12).toString("hex")}`;
    const choices = gens.map((g, index) => {
      const { text, stopReason } = stripStop(g, p.stop);
      const finish_reason = g.finishReason === "length" ? "length" : "stop";
      return chat
        ? {
            index,
            message: { role: "assistant", content: text },
            finish_reason,
            stop_reason: stopReason,
            logprobs: null,
          }
        : { index, text, finish_reason, stop_reason: stopReason, logprobs: null };
    });
    send(res, 200, {
      id,
      object: chat ? "chat.completion" : "text_completion",
      created: Math.floor(Date.now() / 1000),
      model: engine.name,
      choices,
      usage: {
        prompt_tokens: promptTokens * p.n,
        completion_tokens: completionTokens,
        total_tokens: promptTokens * p.n + completionTokens,
      },
    });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const err =
        e instanceof HttpError ? e : new HttpError(500, `internal error: ${(e as Error)?.message ?? e}`);
      if (err.status >= 500) counters.errors5xx++;
      else counters.errors4xx++;
      if (res.headersSent) {
        res.destroy();
        return;
      }
      send(res, err.status, {
        error: { message: err.message, type: err.type, param: err.param, code: err.code },
      });
    });
  });
  server.keepAliveTimeout = 30_000;

  return {
    server,
    stats,
    listen(port, host) {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          const addr = server.address();
          resolve(typeof addr === "object" && addr ? addr.port : port);
        });
      });
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections?.();
      });
    },
  };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(data) });
  res.end(data);
}

async function readBody(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  // Any content type is accepted (curl -d sends form encoding); the body must parse as JSON.
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw new HttpError(413, `request body larger than ${limit} bytes`);
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `request body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new HttpError(400, "request body must be a JSON object");
  return v as Record<string, unknown>;
}

interface Common {
  n: number;
  temperature: number;
  topP: number;
  maxTokens: number;
  stop: string[];
  seed: number | undefined;
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

function parseCommon(
  body: Record<string, unknown>,
  engine: Engine,
  opts: ServeOptions,
  chat: boolean,
): Common {
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
  if (body.stream === true) throw new HttpError(400, "'stream' is not supported by ttrl serve", "stream");
  if (body.logprobs !== undefined && body.logprobs !== null && body.logprobs !== false)
    throw new HttpError(400, "'logprobs' is not supported by ttrl serve", "logprobs");
  if (!chat && body.echo === true) throw new HttpError(400, "'echo' is not supported by ttrl serve", "echo");
  const n = num(body, "n", 1, 1, opts.maxChoices ?? 128, true);
  const temperature = num(body, "temperature", 1, 0, 2);
  const topP = num(body, "top_p", 1, 0, 1);
  if (topP === 0) throw new HttpError(400, "'top_p' must be in (0, 1]", "top_p");
  const maxKey = chat && body.max_completion_tokens !== undefined ? "max_completion_tokens" : "max_tokens";
  const maxTokens = num(body, maxKey, opts.defaultMaxTokens ?? 256, 1, engine.maxContext ?? 1e9, true);
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
    if (stop.length > 4) throw new HttpError(400, "'stop' takes at most 4 sequences", "stop");
    if (stop.some((x) => x === "")) throw new HttpError(400, "'stop' sequences must not be empty", "stop");
  }
  return {
    n,
    temperature,
    topP,
    maxTokens,
    stop,
    seed: seed === undefined ? undefined : Number(BigInt.asUintN(32, BigInt(seed))),
  };
}

function parsePrompt(prompt: unknown): string[] {
  if (typeof prompt === "string") return [prompt];
  if (Array.isArray(prompt) && prompt.length > 0 && prompt.every((p) => typeof p === "string"))
    return prompt as string[];
  if (prompt === undefined) throw new HttpError(400, "'prompt' is required", "prompt");
  throw new HttpError(400, "'prompt' must be a string or a non-empty array of strings", "prompt");
}

function renderChat(body: Record<string, unknown>, engine: Engine): string {
  const m = body.messages;
  if (m === undefined) throw new HttpError(400, "'messages' is required", "messages");
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

/** Drop a matched stop string from the end of the text (OpenAI semantics); report which one. */
export function stripStop(g: EngineGeneration, stop: string[]): { text: string; stopReason: string | null } {
  if (g.finishReason !== "stop") return { text: g.text, stopReason: null };
  for (const s of stop) if (g.text.endsWith(s)) return { text: g.text.slice(0, -s.length), stopReason: s };
  // The engine already left the stop string out: find which one by asking the caller's list (first match wins).
  return { text: g.text, stopReason: stop[0] ?? null };
}
