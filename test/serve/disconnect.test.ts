/**
 * A client that disconnects mid-stream stops its generation and frees its batch slot: the next request
 * does not wait for the abandoned one's remaining tokens.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { createServeServer, type TtrlServer } from "../../src/serve/server.ts";
import { slowEngine } from "./slow-engine.ts";

describe("ttrl serve: disconnect mid-stream (openai client)", () => {
  const STEP_MS = 10;
  const engine = slowEngine({ stepMs: STEP_MS });
  let srv: TtrlServer;
  let client: OpenAI;
  before(async () => {
    srv = createServeServer(engine, { batchWindowMs: 5, maxBatch: 8 });
    const port = await srv.listen(0, "127.0.0.1");
    client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "none", maxRetries: 0 });
  });
  after(() => srv.close());

  it("stops the abandoned generation and serves the next request at normal latency", async () => {
    // Normal latency: a lone 20-token request.
    let t = performance.now();
    const base = await client.completions.create({ model: "slow", prompt: "x", max_tokens: 20, seed: 0 });
    const normalMs = performance.now() - t;
    assert.equal(base.choices[0].text.length, 20);

    // A 5,000-token stream (50 s at 10 ms a token), dropped after 5 chunks.
    const ac = new AbortController();
    const stream = await client.completions.create(
      { model: "slow", prompt: "y", max_tokens: 5000, seed: 1, stream: true },
      { signal: ac.signal },
    );
    let chunks = 0;
    try {
      for await (const c of stream) {
        assert.equal(typeof c.choices[0].text, "string");
        if (++chunks === 5) ac.abort();
      }
    } catch {
      /* the client's own abort */
    }
    assert.equal(chunks, 5);

    // The follow-up request is not queued behind the abandoned 5,000 tokens.
    t = performance.now();
    const next = await client.completions.create({ model: "slow", prompt: "z", max_tokens: 20, seed: 2 });
    const nextMs = performance.now() - t;
    assert.equal(next.choices[0].text.length, 20);
    assert.ok(
      nextMs < normalMs + 2000,
      `follow-up took ${nextMs.toFixed(0)} ms (normal ${normalMs.toFixed(0)} ms): the slot was not freed`,
    );
    // The abandoned sequence stopped early, seen by the engine and the server's stats.
    assert.equal(engine.cancelledSeqs, 1);
    assert.ok(Math.max(...engine.steps) < 1000, `steps per batch: ${engine.steps.join(",")}`);
    assert.equal(srv.stats.cancelled, 1);
  });

  it("drops a queued request whose client left before its batch started", async () => {
    const before = engine.steps.length;
    // Occupy the engine, then queue a request and abandon it while it waits.
    const busy = client.completions.create({ model: "slow", prompt: "a", max_tokens: 30, seed: 0 });
    await new Promise((r) => setTimeout(r, 50));
    const ac = new AbortController();
    const queued = client.completions.create(
      { model: "slow", prompt: "b", max_tokens: 4000, seed: 0 },
      { signal: ac.signal },
    );
    await new Promise((r) => setTimeout(r, 20));
    ac.abort();
    await assert.rejects(queued);
    await busy;
    await new Promise((r) => setTimeout(r, 100));
    // Only the busy request ran: the abandoned one never reached the engine.
    assert.deepEqual(engine.steps.slice(before), [30]);
    assert.equal(srv.stats.cancelled, 2);
  });
});
