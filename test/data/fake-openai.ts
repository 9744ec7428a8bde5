/**
 * A scripted OpenAI-compatible server on 127.0.0.1 (chat and text completions) for the data-step and eval
 * tests. Replies come from a `respond` function; a `fault` function can turn any request into a 429 (with
 * retry-after), a 500, a slow reply, a body cut off mid-transfer, a 200 whose body is not JSON or has no
 * choices, a hang, or a dropped connection. Every request is logged.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ChatRequest {
  model: string;
  messages: { role: string; content: string }[];
  body: Record<string, unknown>;
  /** The last user message. */
  user: string;
  /** 0-based index of this request among all requests to the server. */
  n: number;
  /** 0-based index of this request among requests with the same messages. */
  attempt: number;
}

export type Fault =
  | { kind: "429"; retryAfter?: string; retryAfterMs?: string }
  | { kind: "500" }
  | { kind: "400" }
  | { kind: "slow"; ms: number }
  | { kind: "truncate" }
  | { kind: "hang" }
  | { kind: "reset" }
  /** 200 with a body that is not JSON. */
  | { kind: "malformed" }
  /** 200 with `"choices": []`. */
  | { kind: "empty" };

export interface FakeServerOptions {
  respond(req: ChatRequest): string | { content: string; finish_reason?: string };
  fault?(req: ChatRequest): Fault | null;
}

export interface FakeServer {
  url: string;
  /** Every request received (including faulted ones). */
  requests: ChatRequest[];
  /** User messages that were answered with a complete 200 reply. */
  answered: string[];
  /** Most requests seen in flight at once. */
  maxInFlight: number;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((res, rej) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => res(Buffer.concat(chunks).toString("utf8")));
    req.on("error", rej);
  });
}

export async function startFakeOpenAI(opts: FakeServerOptions): Promise<FakeServer> {
  const requests: ChatRequest[] = [];
  const answered: string[] = [];
  const attempts = new Map<string, number>();
  const open = new Set<ServerResponse>();
  let maxInFlight = 0;
  const server = createServer(async (req, res) => {
    open.add(res);
    maxInFlight = Math.max(maxInFlight, open.size);
    res.on("close", () => open.delete(res));
    const chat = req.url?.endsWith("/chat/completions") ?? false;
    if (req.method !== "POST" || !(chat || req.url?.endsWith("/completions"))) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: `no route ${req.method} ${req.url}` } }));
      return;
    }
    const body = JSON.parse(await readBody(req)) as Record<string, unknown>;
    // Text completions (`/completions`, plain prompt templates) are logged as one user message.
    const messages = chat
      ? (body.messages as { role: string; content: string }[])
      : [{ role: "user", content: String(body.prompt) }];
    const key = JSON.stringify(messages);
    const attempt = attempts.get(key) ?? 0;
    attempts.set(key, attempt + 1);
    const user = [...messages].reverse().find((m) => m.role === "user")?.content ?? "";
    const cr: ChatRequest = { model: String(body.model), messages, body, user, n: requests.length, attempt };
    requests.push(cr);
    const fault = opts.fault?.(cr) ?? null;
    const json = (status: number, obj: unknown, headers: Record<string, string> = {}) => {
      const text = JSON.stringify(obj);
      res.writeHead(status, {
        "content-type": "application/json",
        "content-length": String(Buffer.byteLength(text)),
        ...headers,
      });
      res.end(text);
    };
    if (fault?.kind === "429") {
      const h: Record<string, string> = {};
      if (fault.retryAfter !== undefined) h["retry-after"] = fault.retryAfter;
      if (fault.retryAfterMs !== undefined) h["retry-after-ms"] = fault.retryAfterMs;
      json(429, { error: { message: "rate limited", type: "rate_limit" } }, h);
      return;
    }
    if (fault?.kind === "500") {
      json(500, { error: { message: "internal error" } });
      return;
    }
    if (fault?.kind === "400") {
      json(400, { error: { message: "bad request: prompt rejected" } });
      return;
    }
    if (fault?.kind === "hang") return; // never answers; closed by close()
    if (fault?.kind === "reset") {
      req.socket.destroy();
      return;
    }
    const r = opts.respond(cr);
    const { content, finish_reason } = typeof r === "string" ? { content: r, finish_reason: "stop" } : r;
    const reply = {
      id: `${chat ? "chatcmpl" : "cmpl"}-${cr.n}`,
      object: chat ? "chat.completion" : "text_completion",
      created: 0,
      model: cr.model,
      choices: [
        chat
          ? { index: 0, message: { role: "assistant", content }, finish_reason: finish_reason ?? "stop" }
          : { index: 0, text: content, finish_reason: finish_reason ?? "stop" },
      ],
      usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
    };
    if (fault?.kind === "slow") await new Promise((r2) => setTimeout(r2, fault.ms));
    if (res.destroyed || req.socket.destroyed) return;
    if (fault?.kind === "malformed") {
      const text = `${JSON.stringify(reply).slice(0, 40)} <html>upstream error</html>`;
      res.writeHead(200, {
        "content-type": "application/json",
        "content-length": String(Buffer.byteLength(text)),
      });
      res.end(text);
      return;
    }
    if (fault?.kind === "empty") {
      json(200, { ...reply, choices: [] });
      return;
    }
    if (fault?.kind === "truncate") {
      const text = JSON.stringify(reply);
      res.writeHead(200, {
        "content-type": "application/json",
        "content-length": String(Buffer.byteLength(text)),
      });
      res.write(text.slice(0, Math.floor(text.length / 2)));
      setTimeout(() => req.socket.destroy(), 10);
      return;
    }
    json(200, reply);
    answered.push(user);
  });
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    answered,
    get maxInFlight() {
      return maxInFlight;
    },
    close: async () => {
      for (const r of open) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((res) => server.close(() => res()));
    },
  };
}

/**
 * A deterministic stand-in for an LLM on the default prompts: translation prefixes "TR: ", extraction
 * returns the last number of the solution (or "NONE" when the solution contains NOANSWER).
 */
export function fakeLlm(req: ChatRequest): string {
  const sys = req.messages.find((m) => m.role === "system")?.content ?? "";
  if (/translat/i.test(sys)) return `TR: ${req.user}`;
  const sol = req.user.split("Solution:\n")[1] ?? "";
  if (sol.includes("NOANSWER")) return "NONE";
  const nums = sol.match(/-?\d+(?:\.\d+)?/g);
  return nums ? nums[nums.length - 1] : "NONE";
}
