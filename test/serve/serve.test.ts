import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createServeServer, type TtrlServer } from "../../src/serve/server.ts";
import { fakeEngine } from "../eval/fake-engine.ts";

describe("ttrl serve (fake engine)", () => {
  const engine = fakeEngine({ name: "tiny", delayMs: 2 });
  let srv: TtrlServer;
  let base = "";
  before(async () => {
    srv = createServeServer(engine, { batchWindowMs: 20, maxBatch: 16 });
    const port = await srv.listen(0, "127.0.0.1");
    base = `http://127.0.0.1:${port}`;
  });
  after(() => srv.close());

  const post = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
    const r = await fetch(base + path, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    return { status: r.status, json: (await r.json()) as any };
  };

  it("lists the model", async () => {
    const r = await fetch(`${base}/v1/models`);
    assert.equal(r.status, 200);
    const j = (await r.json()) as any;
    assert.equal(j.object, "list");
    assert.deepEqual(
      j.data.map((m: any) => m.id),
      ["tiny"],
    );
  });

  it("completes with n choices, usage counts, stop strings left out and reported", async () => {
    const prompt = "Soru: 12 ve 30 toplamı?\n";
    const r = await post("/v1/completions", {
      model: "tiny",
      prompt,
      n: 3,
      seed: 5,
      max_tokens: 200,
      stop: ["</cevap>"],
      temperature: 1,
    });
    assert.equal(r.status, 200);
    assert.equal(r.json.object, "text_completion");
    assert.equal(r.json.choices.length, 3);
    const gens = await engine.generate([engine.tokenizer.encode(prompt)], {
      maxNewTokens: 200,
      temperature: 1,
      topP: 1,
      seeds: [6],
      stop: ["</cevap>"],
    });
    const expected = gens[0].text.endsWith("</cevap>") ? gens[0].text.slice(0, -8) : gens[0].text;
    assert.equal(r.json.choices[1].text, expected, "choice i uses seed + i");
    for (const c of r.json.choices) {
      assert.ok(!c.text.includes("</cevap>"));
      assert.ok(["stop", "length"].includes(c.finish_reason));
      if (c.stop_reason !== null) assert.equal(c.stop_reason, "</cevap>");
    }
    const completionTokens = r.json.choices.reduce(
      (a: number, c: any) => a + Array.from(c.text as string).length + (c.stop_reason ? 8 : 0),
      0,
    );
    assert.equal(r.json.usage.prompt_tokens, Array.from(prompt).length * 3);
    assert.equal(r.json.usage.completion_tokens, completionTokens);
    assert.equal(r.json.usage.total_tokens, r.json.usage.prompt_tokens + completionTokens);
  });

  it("is deterministic for a seed and honours max_tokens", async () => {
    const body = { prompt: "Soru: 4 + 4?\n", seed: 11, max_tokens: 5 };
    const a = await post("/v1/completions", body);
    const b = await post("/v1/completions", body);
    assert.equal(a.json.choices[0].text, b.json.choices[0].text);
    assert.equal(Array.from(a.json.choices[0].text as string).length, 5);
    assert.equal(a.json.choices[0].finish_reason, "length");
  });

  it("serves chat completions through the chat template", async () => {
    const r = await post("/v1/chat/completions", {
      messages: [
        { role: "system", content: "Sen bir asistansın." },
        { role: "user", content: "3 + 4?" },
      ],
      max_tokens: 100,
      seed: 1,
    });
    assert.equal(r.status, 200);
    assert.equal(r.json.object, "chat.completion");
    assert.equal(r.json.choices[0].message.role, "assistant");
    assert.equal(typeof r.json.choices[0].message.content, "string");
    const prompt = engine.tokenizer.applyChatTemplate(
      [
        { role: "system", content: "Sen bir asistansın." },
        { role: "user", content: "3 + 4?" },
      ],
      { addGenerationPrompt: true },
    );
    assert.equal(r.json.usage.prompt_tokens, Array.from(prompt).length);
  });

  it("batches concurrent requests into one generate call", async () => {
    const before = engine.calls.length;
    const rs = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        post("/v1/completions", { prompt: `Soru: ${i}?\n`, seed: i, max_tokens: 50, temperature: 0.7 }),
      ),
    );
    assert.ok(rs.every((r) => r.status === 200));
    const calls = engine.calls.slice(before);
    assert.equal(
      calls.reduce((a, b) => a + b, 0),
      12,
    );
    assert.ok(calls.length < 12, `expected batching, got batch sizes ${calls.join(",")}`);
    // Batching does not change outputs: each equals a lone request with the same seed.
    const lone = await post("/v1/completions", {
      prompt: "Soru: 3?\n",
      seed: 3,
      max_tokens: 50,
      temperature: 0.7,
    });
    assert.equal(lone.json.choices[0].text, rs[3].json.choices[0].text);
  });

  const bad: [string, string, unknown, number, string | null][] = [
    ["malformed JSON", "/v1/completions", "{not json", 400, null],
    ["non-object body", "/v1/completions", "[1,2]", 400, null],
    ["missing prompt", "/v1/completions", { max_tokens: 3 }, 400, "prompt"],
    ["numeric prompt", "/v1/completions", { prompt: 5 }, 400, "prompt"],
    ["empty prompt", "/v1/completions", { prompt: "" }, 400, "prompt"],
    ["temperature out of range", "/v1/completions", { prompt: "a", temperature: 3 }, 400, "temperature"],
    ["top_p zero", "/v1/completions", { prompt: "a", top_p: 0 }, 400, "top_p"],
    ["n not an integer", "/v1/completions", { prompt: "a", n: 1.5 }, 400, "n"],
    ["n too large", "/v1/completions", { prompt: "a", n: 1000 }, 400, "n"],
    ["max_tokens negative", "/v1/completions", { prompt: "a", max_tokens: -1 }, 400, "max_tokens"],
    ["context exceeded", "/v1/completions", { prompt: "a", max_tokens: 4096 }, 400, "max_tokens"],
    ["stop wrong type", "/v1/completions", { prompt: "a", stop: 3 }, 400, "stop"],
    ["unknown field (a typo)", "/v1/completions", { prompt: "a", max_token: 3 }, 400, "max_token"],
    [
      "presence_penalty not 0",
      "/v1/completions",
      { prompt: "a", presence_penalty: 1 },
      400,
      "presence_penalty",
    ],
    ["logit_bias", "/v1/completions", { prompt: "a", logit_bias: { "5": 10 } }, 400, "logit_bias"],
    ["best_of > n", "/v1/completions", { prompt: "a", best_of: 3 }, 400, "best_of"],
    [
      "tools on chat",
      "/v1/chat/completions",
      { messages: [{ role: "user", content: "x" }], tools: [{}] },
      400,
      "tools",
    ],
    [
      "suffix on chat",
      "/v1/chat/completions",
      { messages: [{ role: "user", content: "x" }], suffix: "" },
      400,
      "suffix",
    ],
    ["stream not a boolean", "/v1/completions", { prompt: "a", stream: "yes" }, 400, "stream"],
    [
      "stream_options without stream",
      "/v1/completions",
      { prompt: "a", stream_options: { include_usage: true } },
      400,
      "stream_options",
    ],
    ["max_tokens 0 without echo", "/v1/completions", { prompt: "a", max_tokens: 0 }, 400, "max_tokens"],
    ["logprobs above 20", "/v1/completions", { prompt: "a", logprobs: 21 }, 400, "logprobs"],
    [
      "logprobs on an engine that cannot score",
      "/v1/completions",
      { prompt: "a", logprobs: 1 },
      400,
      "logprobs",
    ],
    [
      "top_logprobs without logprobs",
      "/v1/chat/completions",
      { messages: [{ role: "user", content: "x" }], top_logprobs: 2 },
      400,
      "top_logprobs",
    ],
    ["echo not a boolean", "/v1/completions", { prompt: "a", echo: 1 }, 400, "echo"],
    ["negative token id", "/v1/completions", { prompt: [1, -2] }, 400, "prompt"],
    ["unknown model", "/v1/completions", { prompt: "a", model: "gpt-9" }, 404, "model"],
    ["missing messages", "/v1/chat/completions", { max_tokens: 3 }, 400, "messages"],
    ["bad role", "/v1/chat/completions", { messages: [{ role: "robot", content: "x" }] }, 400, "messages"],
    ["unknown endpoint", "/v1/embeddings", { input: "a" }, 404, null],
  ];
  for (const [name, path, body, status, param] of bad) {
    it(`rejects ${name} with ${status} and an OpenAI-style error`, async () => {
      const r = await post(path, body);
      assert.equal(r.status, status);
      assert.equal(typeof r.json.error.message, "string");
      assert.ok(r.json.error.message.length > 0);
      assert.equal(r.json.error.type, "invalid_request_error");
      assert.equal(r.json.error.param, param);
    });
  }

  it("accepts fields that cannot change the output, and no-op values of unsupported ones", async () => {
    const r = await post("/v1/completions", {
      prompt: "Soru: 1?\n",
      max_tokens: 4,
      seed: 1,
      user: "u1",
      metadata: { a: "b" },
      store: false,
      presence_penalty: 0,
      frequency_penalty: 0,
      logit_bias: {},
      best_of: 1,
      suffix: null,
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const plain = await post("/v1/completions", { prompt: "Soru: 1?\n", max_tokens: 4, seed: 1 });
    assert.equal(r.json.choices[0].text, plain.json.choices[0].text);
  });

  it("takes prompts as token ids and tokenizes like vLLM (/tokenize, /detokenize, /tokenizer_info)", async () => {
    const text = "Soru: 4 + 4?\n";
    const ids = engine.tokenizer.encode(text);
    const t = await post("/tokenize", { prompt: text });
    assert.deepEqual(t.json.tokens, ids);
    assert.equal(t.json.count, ids.length);
    const d = await post("/detokenize", { tokens: ids });
    assert.equal(d.json.prompt, text);
    const info = (await (await fetch(`${base}/tokenizer_info`)).json()) as Record<string, unknown>;
    assert.ok("eos_token" in info);
    const byIds = await post("/v1/completions", { prompt: ids, seed: 11, max_tokens: 5 });
    const byText = await post("/v1/completions", { prompt: text, seed: 11, max_tokens: 5 });
    assert.equal(byIds.json.choices[0].text, byText.json.choices[0].text);
    const two = await post("/v1/completions", { prompt: [ids, ids], seed: 11, max_tokens: 5 });
    assert.equal(two.json.choices.length, 2);
  });

  it("echo returns the prompt before the completion; max_tokens 0 returns the prompt only", async () => {
    const r = await post("/v1/completions", { prompt: "Soru: 9?\n", seed: 2, max_tokens: 5, echo: true });
    const plain = await post("/v1/completions", { prompt: "Soru: 9?\n", seed: 2, max_tokens: 5 });
    assert.equal(r.json.choices[0].text, `Soru: 9?\n${plain.json.choices[0].text}`);
    const z = await post("/v1/completions", { prompt: "Soru: 9?\n", max_tokens: 0, echo: true });
    assert.equal(z.json.choices[0].text, "Soru: 9?\n");
    assert.equal(z.json.usage.completion_tokens, 0);
  });

  it("streams in the SSE wire format: data: chunks, finish_reason last, usage, [DONE]", async () => {
    const r = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        messages: [{ role: "user", content: "3 + 4?" }],
        stream: true,
        n: 2,
        seed: 4,
        max_tokens: 100,
        stream_options: { include_usage: true },
      }),
    });
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type") ?? "", /^text\/event-stream/);
    const raw = await r.text();
    const events = raw.split("\n\n").filter(Boolean);
    assert.ok(
      events.every((e) => e.startsWith("data: ")),
      raw.slice(0, 200),
    );
    assert.equal(events.at(-1), "data: [DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
    const usage = chunks.at(-1);
    assert.deepEqual(usage.choices, []);
    const full = await post("/v1/chat/completions", {
      messages: [{ role: "user", content: "3 + 4?" }],
      n: 2,
      seed: 4,
      max_tokens: 100,
    });
    assert.deepEqual(usage.usage, full.json.usage);
    for (const index of [0, 1]) {
      const mine = chunks.slice(0, -1).filter((c: any) => c.choices[0].index === index);
      assert.deepEqual(mine[0].choices[0].delta, { role: "assistant", content: "" });
      assert.equal(mine.at(-1).choices[0].finish_reason, full.json.choices[index].finish_reason);
      const text = mine.map((c: any) => c.choices[0].delta.content ?? "").join("");
      assert.equal(text, full.json.choices[index].message.content);
    }
  });

  it("rejects wrong method and content type, then keeps serving", async () => {
    const g = await fetch(`${base}/v1/completions`);
    assert.equal(g.status, 405);
    const t = await post("/v1/completions", "prompt=a", {
      "content-type": "application/x-www-form-urlencoded",
    });
    assert.equal(t.status, 400);
    assert.match(t.json.error.message, /not valid JSON/);
    const ok = await post("/v1/completions", { prompt: "Soru: 1?\n", max_tokens: 4, seed: 1 });
    assert.equal(ok.status, 200);
    assert.ok(srv.stats.errors4xx >= bad.length + 2);
    assert.equal(srv.stats.errors5xx, 0);
  });
});
