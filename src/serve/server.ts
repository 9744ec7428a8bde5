/**
 * `ttrl serve`: an OpenAI-compatible HTTP server (node:http) over the engine — /v1/models, /v1/completions,
 * /v1/chat/completions (JSON or server-sent events with `stream: true`), and vLLM's /tokenize,
 * /detokenize and /tokenizer_info (lm-evaluation-harness tokenizes through them, so it needs no tokenizer
 * download) — with request validation (4xx with an OpenAI-style error body; the server keeps serving; field
 * policy in ./request.ts) and batching of concurrent requests (./batcher.ts).
 *
 * Seeds: with `seed` S, choice i is sampled with seed (S + i) mod 2^32, so `n: 1, seed: S` reproduces what
 * `ttrl eval`'s local backend draws for sample seed S, streamed or not. Stop strings are left out of the
 * returned text (as in the OpenAI API); the string that stopped a choice is reported in `stop_reason` (as
 * vLLM does).
 *
 * Log-probs (`logprobs` on completions, `logprobs`/`top_logprobs` on chat) are the raw model's (temperature
 * 1), from `Engine.score` — the computation of `ttrl logprob` — over prompt + completion; `echo` returns the
 * prompt's too (its first token has none: null). Streamed chunks carry the log-probs of their tokens from the
 * decoding step's logits instead (equal to the scoring pass within float32 rounding, about 1e-5).
 *
 * A client that goes away (socket closed, or a stream it does not read past `maxStreamBufferBytes`) has its
 * sequences dropped from the queue or stopped before their next token. Stalled connections are closed:
 * headers must arrive within `headersTimeoutMs`, the whole request within `requestTimeoutMs`, and an idle
 * keep-alive connection is closed after `keepAliveTimeoutMs`.
 */
import { randomBytes, randomInt } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { join } from "node:path";
import type { Engine, EngineGeneration } from "../eval/engine.ts";
import { TtrlError } from "../util/errors.ts";
import { Batcher, Cancelled, type SeqOptions } from "./batcher.ts";
import {
  chatLogprobs,
  completionLogprobs,
  cpLen,
  lpFromLogits,
  safeText,
  stripStop,
  type TokenLp,
} from "./output.ts";
import { HttpError, type ParsedRequest, parseRequest } from "./request.ts";

export { stripStop } from "./output.ts";
export { HttpError } from "./request.ts";

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
  /** Time allowed to receive a request's headers, ms (default 10 s); then 408 and the connection closes. */
  headersTimeoutMs?: number;
  /** Time allowed to receive a whole request (headers and body), ms (default 60 s). */
  requestTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this, ms (default 30 s; clients close theirs sooner). */
  keepAliveTimeoutMs?: number;
  /** How often the timeouts above are checked, ms (default 1 s). */
  timeoutCheckMs?: number;
  /** A stream whose client leaves this much unread is dropped as gone (default 1 MiB). */
  maxStreamBufferBytes?: number;
}

export interface ServeStats {
  requests: number;
  completionRequests: number;
  streams: number;
  errors4xx: number;
  errors5xx: number;
  batches: number;
  sequences: number;
  maxBatchSeen: number;
  /** Sequences stopped or dropped because their client went away. */
  cancelled: number;
}

export interface TtrlServer {
  server: Server;
  stats: ServeStats;
  /** Start listening; resolves with the bound port. Errors name the address (TtrlError). */
  listen(port: number, host: string): Promise<number>;
  close(): Promise<void>;
}

export function createServeServer(engine: Engine, opts: ServeOptions = {}): TtrlServer {
  const batcher = new Batcher(engine, { windowMs: opts.batchWindowMs ?? 5, maxBatch: opts.maxBatch ?? 32 });
  const counters = { requests: 0, completionRequests: 0, streams: 0, errors4xx: 0, errors5xx: 0 };
  const stats = {
    get requests() {
      return counters.requests;
    },
    get completionRequests() {
      return counters.completionRequests;
    },
    get streams() {
      return counters.streams;
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
    get cancelled() {
      return batcher.stats.cancelled;
    },
  } as ServeStats;
  const created = Math.floor(Date.now() / 1000);
  const limits = { maxChoices: opts.maxChoices ?? 128, defaultMaxTokens: opts.defaultMaxTokens ?? 256 };
  const tok = engine.tokenizer;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    counters.requests++;
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname.replace(/\/+$/, "");
    if (path === "/v1/models" || path === "/health" || path === "/tokenizer_info") {
      if (req.method !== "GET") throw new HttpError(405, `method ${req.method} not allowed on ${path}`);
      if (path === "/health") return send(res, 200, { status: "ok" });
      if (path === "/tokenizer_info") return send(res, 200, tokenizerInfo(engine));
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
    const routes = ["/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize"];
    if (!routes.includes(path))
      throw new HttpError(
        404,
        `unknown endpoint ${path} (served: /v1/models, /v1/completions, /v1/chat/completions, /tokenize, /detokenize, /tokenizer_info)`,
      );
    if (req.method !== "POST")
      throw new HttpError(405, `method ${req.method} not allowed on ${path} (use POST)`);
    const body = await readBody(req, opts.maxBodyBytes ?? 4 * 2 ** 20);
    if (path === "/tokenize") return send(res, 200, tokenize(body, engine));
    if (path === "/detokenize") return send(res, 200, detokenize(body, engine));
    counters.completionRequests++;
    const r = parseRequest(body, engine, limits, path === "/v1/chat/completions");
    if (r.logprobs !== null && !engine.score)
      throw new HttpError(400, "this engine cannot score tokens: 'logprobs' is not available", "logprobs");
    // The client going away (before the response is complete) cancels its sequences.
    const abort = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) abort.abort();
    });
    if (r.stream) return streamResponse(r, res, abort);
    const gens = await runAll(r, abort.signal);
    if (gens === null) return; // the client left
    const lps = r.logprobs !== null ? await scoreChoices(r, gens) : null;
    const id = `${r.chat ? "chatcmpl" : "cmpl"}-${randomBytes(12).toString("hex")}`;
    const choices = gens.map((g, index) => {
      const p = r.prompts[Math.floor(index / r.n)];
      const { text, stopReason } = stripStop(g, r.stop);
      const finish_reason = g.finishReason === "length" ? "length" : "stop";
      if (r.chat)
        return {
          index,
          message: { role: "assistant", content: text },
          finish_reason,
          stop_reason: stopReason,
          logprobs: lps
            ? { content: chatLogprobs(tok, chatTokens(lps[index].slice(p.ids.length) as TokenLp[], g)) }
            : null,
        };
      const all = [...p.ids, ...g.tokens];
      return {
        index,
        text: r.echo ? p.text + text : text,
        finish_reason,
        stop_reason: stopReason,
        logprobs: lps ? completionLogprobs(tok, all, lps[index], r.echo ? 0 : p.ids.length, 0) : null,
      };
    });
    if (lps && !r.chat && r.echo)
      // With echo the completion's offsets continue after the prompt text as sent.
      choices.forEach((c, index) => {
        const p = r.prompts[Math.floor(index / r.n)];
        const lp = (c as { logprobs: { text_offset: number[] } }).logprobs;
        const shift = cpLen(p.text) - cpLen(tok.decode(p.ids, { skipSpecialTokens: true }));
        if (shift !== 0)
          for (let j = p.ids.length; j < lp.text_offset.length; j++) lp.text_offset[j] += shift;
      });
    send(res, 200, {
      id,
      object: r.chat ? "chat.completion" : "text_completion",
      created: Math.floor(Date.now() / 1000),
      model: engine.name,
      choices,
      usage: usage(r, gens),
    });
  }

  /** Sampling options of one choice. */
  function seqOptions(r: ParsedRequest, seedBase: number, i: number): SeqOptions {
    return {
      maxNewTokens: r.maxTokens,
      temperature: r.temperature,
      topP: r.topP,
      topK: r.topK,
      greedy: r.temperature === 0,
      stop: r.stop,
      seed: (seedBase + i) >>> 0,
    };
  }

  /** Generate every choice (prompt-major, n per prompt); null when the client went away. */
  async function runAll(
    r: ParsedRequest,
    signal: AbortSignal,
    hooks?: (choice: number) => { onToken?: (token: number, logits: Float32Array) => void },
  ): Promise<EngineGeneration[] | null> {
    const seedBase = r.seed ?? randomInt(0, 2 ** 31);
    const jobs: Promise<EngineGeneration>[] = [];
    r.prompts.forEach((p, pi) => {
      for (let i = 0; i < r.n; i++) {
        if (r.maxTokens === 0) jobs.push(Promise.resolve({ tokens: [], text: "", finishReason: "length" }));
        else
          jobs.push(batcher.submit(p.ids, seqOptions(r, seedBase, i), { signal, ...hooks?.(pi * r.n + i) }));
      }
    });
    const settled = await Promise.allSettled(jobs);
    if (signal.aborted) return null;
    const failed = settled.find((s) => s.status === "rejected");
    if (failed) {
      const e = (failed as PromiseRejectedResult).reason;
      if (e instanceof Cancelled) return null;
      throw new HttpError(500, `generation failed: ${(e as Error)?.message ?? e}`);
    }
    return settled.map((s) => (s as PromiseFulfilledResult<EngineGeneration>).value);
  }

  /** Per choice, per token of prompt + completion: its log-prob and top alternatives (null for token 0). */
  async function scoreChoices(r: ParsedRequest, gens: EngineGeneration[]): Promise<(TokenLp | null)[][]> {
    const seqs = gens.map((g, k) => [...r.prompts[Math.floor(k / r.n)].ids, ...g.tokens]);
    let scores: Awaited<ReturnType<NonNullable<Engine["score"]>>>;
    try {
      scores = await engine.score!(seqs, r.logprobs ?? 0);
    } catch (e) {
      throw new HttpError(500, `scoring failed: ${(e as Error)?.message ?? e}`);
    }
    return seqs.map((s, k) => [
      null,
      ...scores[k].logprobs.map((logprob, j) => ({ token: s[j + 1], logprob, top: scores[k].top[j] })),
    ]);
  }

  function usage(r: ParsedRequest, gens: EngineGeneration[]) {
    const prompt = r.prompts.reduce((a, p) => a + p.ids.length, 0) * r.n;
    const completion = gens.reduce((a, g) => a + g.tokens.length, 0);
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  }

  async function streamResponse(r: ParsedRequest, res: ServerResponse, abort: AbortController) {
    counters.streams++;
    const id = `${r.chat ? "chatcmpl" : "cmpl"}-${randomBytes(12).toString("hex")}`;
    const createdAt = Math.floor(Date.now() / 1000);
    const object = r.chat ? "chat.completion.chunk" : "text_completion";
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    });
    res.flushHeaders();
    const limit = opts.maxStreamBufferBytes ?? 2 ** 20;
    const write = (data: string) => {
      if (res.destroyed || abort.signal.aborted) return;
      res.write(`data: ${data}\n\n`);
      if (res.writableLength > limit) {
        abort.abort();
        res.destroy();
      }
    };
    // One SSE chunk: the envelope OpenAI repeats on every chunk, these choices, and `usage` when asked for.
    const frame = (choices: Record<string, unknown>[], extra: Record<string, unknown>) =>
      write(JSON.stringify({ id, object, created: createdAt, model: engine.name, choices, ...extra }));
    const chunk = (choice: Record<string, unknown>) => frame([choice], r.includeUsage ? { usage: null } : {});
    const nChoices = r.prompts.length * r.n;
    const wantLp = r.logprobs !== null;
    // Chat: the role first; completions with echo: the prompt (and its log-probs) first.
    let promptLps: (TokenLp | null)[][] | null = null;
    if (!r.chat && r.echo && wantLp)
      promptLps = await scoreChoices(
        { ...r, n: 1 },
        r.prompts.map(() => ({ tokens: [], text: "", finishReason: "length" })),
      );
    for (let k = 0; k < nChoices; k++) {
      const p = r.prompts[Math.floor(k / r.n)];
      if (r.chat)
        chunk({ index: k, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null });
      else if (r.echo)
        chunk({
          index: k,
          text: p.text,
          logprobs: promptLps ? completionLogprobs(tok, p.ids, promptLps[Math.floor(k / r.n)], 0, 0) : null,
          finish_reason: null,
        });
    }
    const echoBase = (k: number) => (!r.chat && r.echo ? cpLen(r.prompts[Math.floor(k / r.n)].text) : 0);
    const state = Array.from({ length: nChoices }, () => ({
      tokens: [] as number[],
      sent: "",
      pending: [] as TokenLp[],
      pendingFrom: 0,
    }));
    const emit = (
      k: number,
      delta: string,
      lps: TokenLp[],
      from: number,
      finish: string | null,
      stop?: string | null,
    ) => {
      let logprobs: unknown = null;
      if (wantLp)
        logprobs = r.chat
          ? { content: chatLogprobs(tok, lps) }
          : offsetShift(
              completionLogprobs(
                tok,
                [...state[k].tokens.slice(0, from), ...lps.map((l) => l.token)],
                [...Array(from).fill(null), ...lps],
                from,
                0,
              ),
              echoBase(k),
              tok.decode(state[k].tokens.slice(0, from), { skipSpecialTokens: true }),
            );
      const base = {
        index: k,
        logprobs,
        finish_reason: finish,
        ...(finish !== null && { stop_reason: stop ?? null }),
      };
      chunk(
        r.chat
          ? { ...base, delta: delta || finish === null ? { content: delta } : {} }
          : { ...base, text: delta },
      );
    };
    const onToken = (k: number) => (token: number, logits: Float32Array) => {
      const s = state[k];
      s.tokens.push(token);
      if (wantLp) s.pending.push(lpFromLogits(logits, token, r.logprobs ?? 0));
      const visible = safeText(tok.decode(s.tokens, { skipSpecialTokens: true }), r.stop);
      if (visible.length > s.sent.length && visible.startsWith(s.sent)) {
        emit(k, visible.slice(s.sent.length), s.pending, s.pendingFrom, null);
        s.sent = visible;
        s.pendingFrom = s.tokens.length;
        s.pending = [];
      }
    };
    let gens: EngineGeneration[] | null;
    try {
      gens = await runAll(r, abort.signal, (k) => ({ onToken: onToken(k) }));
    } catch (e) {
      const err = e instanceof HttpError ? e : new HttpError(500, String((e as Error)?.message ?? e));
      counters.errors5xx++;
      write(JSON.stringify({ error: { message: err.message, type: err.type, param: null, code: null } }));
      write("[DONE]");
      res.end();
      return;
    }
    if (gens === null) return;
    // Engines that do not stream tokens (or tokens not yet sent): the rest now, log-probs by scoring.
    const missing = gens.some((g, k) => state[k].tokens.length < g.tokens.length);
    const scored = wantLp && missing ? await scoreChoices(r, gens) : null;
    gens.forEach((g, k) => {
      const s = state[k];
      const plen = r.prompts[Math.floor(k / r.n)].ids.length;
      if (s.tokens.length < g.tokens.length) {
        if (scored) s.pending.push(...(scored[k].slice(plen + s.tokens.length) as TokenLp[]));
        s.tokens = [...g.tokens];
      }
      if (r.chat && g.finishReason === "eos" && s.pending.at(-1)?.token === g.tokens.at(-1)) s.pending.pop();
      const { text, stopReason } = stripStop(g, r.stop);
      const rest = text.startsWith(s.sent) ? text.slice(s.sent.length) : "";
      if (rest || s.pending.length) emit(k, rest, s.pending, s.pendingFrom, null);
      emit(k, "", [], s.tokens.length, g.finishReason === "length" ? "length" : "stop", stopReason);
    });
    if (r.includeUsage) frame([], { usage: usage(r, gens) });
    write("[DONE]");
    res.end();
  }

  const server = createServer(
    {
      headersTimeout: opts.headersTimeoutMs ?? 10_000,
      requestTimeout: opts.requestTimeoutMs ?? 60_000,
      connectionsCheckingInterval: opts.timeoutCheckMs ?? 1000,
      keepAliveTimeout: opts.keepAliveTimeoutMs ?? 30_000,
    },
    (req, res) => {
      handle(req, res).catch((e: unknown) => {
        const err =
          e instanceof HttpError ? e : new HttpError(500, `internal error: ${(e as Error)?.message ?? e}`);
        if (err.status >= 500) counters.errors5xx++;
        else counters.errors4xx++;
        if (res.headersSent || res.destroyed) {
          res.destroy();
          return;
        }
        send(res, err.status, {
          error: { message: err.message, type: err.type, param: err.param, code: err.code },
        });
      });
    },
  );
  server.keepAliveTimeout = opts.keepAliveTimeoutMs ?? 30_000;

  return {
    server,
    stats,
    listen(port, host) {
      return new Promise((resolve, reject) => {
        const onError = (e: NodeJS.ErrnoException) => reject(listenError(e, host, port));
        server.once("error", onError);
        server.listen(port, host, () => {
          server.off("error", onError);
          const addr = server.address();
          resolve(typeof addr === "object" && addr ? addr.port : port);
        });
      });
    },
    close() {
      return new Promise((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeIdleConnections?.();
      });
    },
  };
}

/** `completionLogprobs` of streamed tokens: offsets continue after the text already sent. */
function offsetShift(
  lp: ReturnType<typeof completionLogprobs>,
  echoBase: number,
  before: string,
): ReturnType<typeof completionLogprobs> {
  const base = echoBase + cpLen(before);
  return { ...lp, text_offset: lp.text_offset.map((o) => o + base) };
}

/** Listen errors as one clear line (no stack): the port taken, an unknown host, a privileged port. */
export function listenError(e: NodeJS.ErrnoException, host: string, port: number): Error {
  const where = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  switch (e.code) {
    case "EADDRINUSE":
      return new TtrlError(
        `cannot listen on ${where}: the port is already in use (pick another with --port, or --port 0 for any free one)`,
      );
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EAI_FAIL":
      return new TtrlError(
        `cannot listen on ${where}: unknown host '${host}' (use an address such as 127.0.0.1)`,
      );
    case "EADDRNOTAVAIL":
      return new TtrlError(`cannot listen on ${where}: '${host}' is not an address of this machine`);
    case "EACCES":
      return new TtrlError(`cannot listen on ${where}: permission denied (ports below 1024 need privileges)`);
    default:
      return new TtrlError(`cannot listen on ${where}: ${e.message}`);
  }
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

/** Chat log-probs cover the message's tokens: a final EOS is not part of it. */
function chatTokens(lps: TokenLp[], g: EngineGeneration): TokenLp[] {
  return g.finishReason === "eos" ? lps.slice(0, -1) : lps;
}

/** vLLM's GET /tokenizer_info: special tokens and chat template (from the model folder's tokenizer_config.json). */
function tokenizerInfo(engine: Engine): Record<string, unknown> {
  let cfg: Record<string, unknown> = {};
  const file = engine.dir ? join(engine.dir, "tokenizer_config.json") : null;
  if (file && existsSync(file)) {
    try {
      cfg = JSON.parse(readFileSync(file, "utf8"));
    } catch {
      cfg = {};
    }
  }
  const special = (k: string) => {
    const v = cfg[k];
    if (typeof v === "string") return v;
    if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string")
      return (v as { content: string }).content;
    return null;
  };
  return {
    tokenizer_class: cfg.tokenizer_class ?? null,
    eos_token: special("eos_token"),
    bos_token: special("bos_token"),
    pad_token: special("pad_token"),
    unk_token: special("unk_token"),
    chat_template: typeof cfg.chat_template === "string" ? cfg.chat_template : null,
    model_max_length: engine.maxContext ?? null,
  };
}

function checkModel(body: Record<string, unknown>, engine: Engine): void {
  if (body.model !== undefined && body.model !== null && body.model !== engine.name)
    throw new HttpError(404, `The model '${body.model}' does not exist (serving '${engine.name}')`, "model");
}

/** vLLM's POST /tokenize: {prompt, add_special_tokens (default true)} or {messages, add_generation_prompt}. */
function tokenize(body: Record<string, unknown>, engine: Engine): Record<string, unknown> {
  checkModel(body, engine);
  const add = body.add_special_tokens;
  if (add !== undefined && add !== null && typeof add !== "boolean")
    throw new HttpError(400, "'add_special_tokens' must be true or false", "add_special_tokens");
  let text: string;
  if (typeof body.prompt === "string") text = body.prompt;
  else if (Array.isArray(body.messages)) {
    try {
      text = engine.tokenizer.applyChatTemplate(body.messages as { role: string; content: string }[], {
        addGenerationPrompt: body.add_generation_prompt !== false,
      });
    } catch (e) {
      throw new HttpError(400, `cannot apply the model's chat template: ${(e as Error).message}`, "messages");
    }
  } else throw new HttpError(400, "'prompt' (a string) or 'messages' is required", "prompt");
  const tokens = engine.tokenizer.encode(text, { addSpecialTokens: add ?? typeof body.prompt === "string" });
  return { count: tokens.length, max_model_len: engine.maxContext ?? null, tokens, token_strs: null };
}

/** vLLM's POST /detokenize: {tokens} → {prompt}. */
function detokenize(body: Record<string, unknown>, engine: Engine): Record<string, unknown> {
  checkModel(body, engine);
  const t = body.tokens;
  const V = (engine.tokenizer as { vocabSize?: number }).vocabSize;
  if (!Array.isArray(t) || !t.every((x) => Number.isInteger(x) && x >= 0 && (V === undefined || x < V)))
    throw new HttpError(400, `'tokens' must be an array of token ids in [0, ${V ?? "vocab size"})`, "tokens");
  return { prompt: engine.tokenizer.decode(t as number[], { skipSpecialTokens: false }) };
}

/** Fail early, with `listenError`'s message, when `host:port` cannot be bound (then release it). */
export async function checkListen(port: number, host: string): Promise<void> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once("error", (e: NodeJS.ErrnoException) => reject(listenError(e, host, port)));
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}
