/**
 * `ttrl serve` with the shipped model (models/tr-math-base) through the official `openai` npm client:
 * completions and chat, streamed and not, seeds, stop strings, usage, and log-probs that equal
 * `ttrl logprob` on the same text.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { type Engine, loadEngine } from "../../src/eval/engine.ts";
import { createServeServer, type TtrlServer } from "../../src/serve/server.ts";

const MODEL = "models/tr-math-base";
const tmp = mkdtempSync(join(tmpdir(), "ttrl-serve-openai-"));

/** `ttrl logprob` (the CLI) on texts: token_logprobs per text. */
function ttrlLogprob(texts: string[]): number[][] {
  const input = join(tmp, "in.jsonl");
  const out = join(tmp, "out.jsonl");
  writeFileSync(input, texts.map((text, i) => JSON.stringify({ id: i, text })).join("\n") + "\n");
  const r = spawnSync(
    process.execPath,
    ["bin/ttrl.mjs", "logprob", "--model", MODEL, "--input", input, "--out", out],
    {
      encoding: "utf8",
      env: { ...process.env, TTRL_QUIET: "1" },
    },
  );
  assert.equal(r.status, 0, r.stderr);
  return readFileSync(out, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l).token_logprobs as number[]);
}

function assertClose(a: (number | null)[], b: number[], tol: number, what: string) {
  assert.equal(a.length, b.length, `${what}: ${a.length} vs ${b.length} numbers`);
  a.forEach((x, i) => {
    assert.ok(x !== null && Math.abs(x - b[i]) <= tol, `${what}[${i}]: server ${x} vs ttrl logprob ${b[i]}`);
  });
}

describe("ttrl serve with the openai client (models/tr-math-base)", () => {
  let engine: Engine;
  let srv: TtrlServer;
  let client: OpenAI;
  const prompt = "Soru: 12 ve 30 toplamı kaçtır?\n";
  before(async () => {
    engine = await loadEngine(MODEL, { name: "tr-math-base" });
    srv = createServeServer(engine, { batchWindowMs: 5 });
    const port = await srv.listen(0, "127.0.0.1");
    client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "none", maxRetries: 0 });
  });
  after(async () => {
    await srv.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it("completions: streamed text equals the non-streamed text for the same seed; usage in the last chunk", async () => {
    const body = { model: "tr-math-base", prompt, max_tokens: 40, seed: 7, temperature: 1 };
    const full = await client.completions.create(body);
    const again = await client.completions.create(body);
    assert.equal(full.choices[0].text, again.choices[0].text, "same request + seed, same text");
    const stream = await client.completions.create({
      ...body,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let deltas = 0;
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const c of stream) {
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) {
        text += ch.text;
        if (ch.text) deltas++;
        if (ch.finish_reason) finish = ch.finish_reason;
      }
    }
    assert.equal(text, full.choices[0].text);
    assert.equal(finish, full.choices[0].finish_reason);
    assert.ok(deltas > 1, `streamed in ${deltas} piece(s)`);
    assert.deepEqual(usage, full.usage);
    const other = await client.completions.create({ ...body, seed: 8 });
    const third = await client.completions.create({ ...body, seed: 9 });
    assert.ok(
      other.choices[0].text !== full.choices[0].text || third.choices[0].text !== full.choices[0].text,
      "different seeds give different samples",
    );
  });

  it("chat: streamed deltas (role first, finish_reason last) equal the non-streamed message", async () => {
    const messages = [{ role: "user" as const, content: "Soru: 3 ve 4 toplamı kaçtır?" }];
    const full = await client.chat.completions.create({
      model: "tr-math-base",
      messages,
      max_tokens: 40,
      seed: 3,
    });
    const stream = await client.chat.completions.create({
      model: "tr-math-base",
      messages,
      max_tokens: 40,
      seed: 3,
      stream: true,
    });
    const chunks: OpenAI.Chat.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    assert.equal(chunks[0].choices[0].delta.role, "assistant");
    const last = chunks.at(-1)!;
    assert.equal(last.choices[0].finish_reason, full.choices[0].finish_reason);
    assert.ok(chunks.slice(0, -1).every((c) => c.choices[0].finish_reason === null));
    assert.equal(
      chunks.map((c) => c.choices[0].delta.content ?? "").join(""),
      full.choices[0].message.content,
    );
    assert.ok(new Set(chunks.map((c) => c.id)).size === 1 && chunks[0].object === "chat.completion.chunk");
  });

  it("stop strings are left out of the streamed text too, never half-sent", async () => {
    const body = { model: "tr-math-base", prompt, max_tokens: 60, seed: 7, temperature: 0 };
    // The stop string: 4 characters from the middle of the model's own greedy completion, so it is hit.
    const plain = (await client.completions.create(body)).choices[0].text;
    const at = Math.floor(plain.length / 2);
    const stop = plain.slice(at, at + 4);
    assert.equal(stop.length, 4, JSON.stringify(plain));
    const want = plain.slice(0, plain.indexOf(stop));
    const full = await client.completions.create({ ...body, stop: [stop] });
    assert.equal(full.choices[0].text, want);
    assert.equal(full.choices[0].finish_reason, "stop");
    let text = "";
    for await (const c of await client.completions.create({ ...body, stop: [stop], stream: true }))
      text += c.choices[0].text;
    assert.equal(text, want, JSON.stringify({ plain, stop }));
  });

  it("echo + logprobs with max_tokens 0 scores the prompt exactly as `ttrl logprob` (within 1e-5)", async () => {
    const texts = [
      prompt + "<mantık>\n12+30=42\n</mantık>\n<cevap>\n42\n</cevap>",
      "Soru: 5 elma ve 2 armut?\n",
    ];
    const r = await client.completions.create({
      model: "tr-math-base",
      prompt: texts,
      max_tokens: 0,
      echo: true,
      logprobs: 3,
    });
    const ref = ttrlLogprob(texts);
    r.choices.forEach((c, i) => {
      assert.equal(c.text, texts[i]);
      const lp = c.logprobs!;
      assert.equal(lp.token_logprobs![0], null, "the first token has no context");
      assertClose(lp.token_logprobs!.slice(1), ref[i], 1e-5, `text ${i}`);
      assert.equal(lp.tokens!.length, lp.token_logprobs!.length);
      assert.equal(lp.tokens![0], "<s>");
      assert.equal(lp.tokens!.slice(1).join(""), texts[i]);
      // text_offset: where each token starts in the text (BOS takes no room).
      lp.tokens!.slice(1).forEach((t, j) => {
        assert.equal(
          Array.from(texts[i])
            .slice(lp.text_offset![j + 1])
            .join("")
            .startsWith(t),
          true,
        );
      });
      // top_logprobs: 3 alternatives, most likely first, the chosen token among them when it ranks.
      for (let j = 1; j < lp.top_logprobs!.length; j++) {
        const top = lp.top_logprobs![j] as Record<string, number>;
        assert.equal(Object.keys(top).length, 3);
        const best = Math.max(...Object.values(top));
        assert.ok(lp.token_logprobs![j]! <= best + 1e-12);
        if (top[lp.tokens![j]] !== undefined) assert.equal(top[lp.tokens![j]], lp.token_logprobs![j]);
      }
    });
  });

  it("generated tokens' log-probs equal `ttrl logprob` of prompt + completion, streamed (1e-4) or not (1e-5)", async () => {
    const body = { model: "tr-math-base", prompt, max_tokens: 24, seed: 11, logprobs: 1 };
    const full = await client.completions.create(body);
    const c = full.choices[0];
    const tokens = c.logprobs!.tokens!;
    // An EOS token ends the completion's log-probs but not its text: compare the text's tokens.
    const nText = tokens.at(-1) === "</s>" ? tokens.length - 1 : tokens.length;
    assert.ok(nText >= 5, `only ${nText} tokens`);
    assert.equal(tokens.slice(0, nText).join(""), c.text);
    const ref = ttrlLogprob([prompt + c.text])[0].slice(-nText);
    assertClose(c.logprobs!.token_logprobs!.slice(0, nText), ref, 1e-5, "completion");
    let streamed: number[] = [];
    let text = "";
    for await (const ch of await client.completions.create({ ...body, stream: true })) {
      text += ch.choices[0].text;
      streamed = streamed.concat((ch.choices[0].logprobs?.token_logprobs ?? []) as number[]);
    }
    assert.equal(text, c.text);
    assertClose(streamed.slice(0, nText), ref, 1e-4, "streamed completion");
  });

  it("a streamed echo with logprobs sends the prompt first; its pieces join into the non-streamed choice", async () => {
    const body = { model: "tr-math-base", prompt, max_tokens: 12, seed: 4, echo: true, logprobs: 2 };
    const full = (await client.completions.create(body)).choices[0];
    const parts: OpenAI.Completions.CompletionChoice[] = [];
    for await (const ch of await client.completions.create({ ...body, stream: true }))
      parts.push(ch.choices[0]);
    assert.equal(parts[0].text, prompt);
    assert.equal(parts[0].logprobs!.token_logprobs![0], null);
    assert.equal(parts.map((p) => p.text).join(""), full.text);
    const cat = (k: "tokens" | "text_offset" | "token_logprobs") =>
      parts.flatMap(
        (p) => ((p.logprobs as Record<string, unknown[]> | null)?.[k] ?? []) as (number | string | null)[],
      );
    assert.deepEqual(cat("tokens"), full.logprobs!.tokens);
    assert.deepEqual(cat("text_offset"), full.logprobs!.text_offset);
    assertClose(
      cat("token_logprobs").slice(1) as number[],
      full.logprobs!.token_logprobs!.slice(1) as number[],
      1e-4,
      "echo",
    );
  });

  it("chat logprobs: content[] with token, logprob and top_logprobs, equal to scoring the chat text", async () => {
    const messages = [{ role: "user" as const, content: "Soru: 2 ve 2 toplamı?" }];
    const r = await client.chat.completions.create({
      model: "tr-math-base",
      messages,
      max_tokens: 16,
      seed: 5,
      logprobs: true,
      top_logprobs: 2,
    });
    const content = r.choices[0].logprobs!.content!;
    assert.equal(content.map((t) => t.token).join(""), r.choices[0].message.content);
    for (const t of content) {
      assert.equal(t.top_logprobs.length, 2);
      assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
      assert.deepEqual(t.bytes, [...Buffer.from(t.token)]);
    }
    const chatText = engine.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
    const ref = ttrlLogprob([chatText + r.choices[0].message.content])[0];
    assertClose(
      content.map((t) => t.logprob),
      ref.slice(ref.length - content.length),
      1e-5,
      "chat",
    );
  });

  it("refuses fields it would ignore silently; accepts the harmless ones", async () => {
    await assert.rejects(
      client.completions.create({ model: "tr-math-base", prompt, max_tokens: 4, presence_penalty: 0.5 }),
      (e: InstanceType<typeof OpenAI.APIError>) => e.status === 400 && /presence_penalty/.test(e.message),
    );
    const ok = await client.completions.create({
      model: "tr-math-base",
      prompt,
      max_tokens: 4,
      seed: 1,
      presence_penalty: 0,
      frequency_penalty: 0,
      user: "someone",
    });
    assert.equal(ok.choices.length, 1);
  });
});
