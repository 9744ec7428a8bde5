/**
 * Stalled connections are not held forever (issue 15 item 13): a client that sends nothing, half its
 * headers or half its body gets 408 and is disconnected within the timeouts; a slow generation (the request
 * fully received) is not cut by them.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import { createServeServer, type TtrlServer } from "../../src/serve/server.ts";
import { slowEngine } from "./slow-engine.ts";

describe("ttrl serve: header and request timeouts", () => {
  let srv: TtrlServer;
  let port = 0;
  before(async () => {
    srv = createServeServer(slowEngine({ stepMs: 20 }), {
      headersTimeoutMs: 500,
      requestTimeoutMs: 1000,
      timeoutCheckMs: 100,
    });
    port = await srv.listen(0, "127.0.0.1");
  });
  after(() => srv.close());

  /** Open a raw connection, send `data`, and report when and how the server ends it (or null after 5 s). */
  const stall = (data: string) =>
    new Promise<{ ms: number; reply: string } | null>((resolve) => {
      const t0 = performance.now();
      let reply = "";
      const s = connect(port, "127.0.0.1", () => {
        if (data) s.write(data);
      });
      s.on("data", (d) => {
        reply += String(d);
      });
      s.on("error", () => {});
      const timer = setTimeout(() => {
        s.destroy();
        resolve(null);
      }, 5000);
      s.on("close", () => {
        clearTimeout(timer);
        resolve({ ms: performance.now() - t0, reply });
      });
    });

  it("closes 50 stalled connections (nothing, partial headers, partial body) with 408 within the timeouts", async () => {
    const kinds = [
      "",
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\n",
      'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"prompt":',
    ];
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => stall(kinds[i % 3])));
    results.forEach((r, i) => {
      assert.ok(
        r !== null,
        `connection ${i} (${JSON.stringify(kinds[i % 3]).slice(0, 30)}) still open after 5 s`,
      );
      assert.match(r.reply, /^HTTP\/1\.1 408/, `connection ${i}`);
      assert.ok(r.ms < (i % 3 === 2 ? 2500 : 2000), `connection ${i} closed after ${r.ms.toFixed(0)} ms`);
    });
  });

  it("does not cut a generation that outlasts the request timeout", async () => {
    const t0 = performance.now();
    const r = await fetch(`http://127.0.0.1:${port}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "x", max_tokens: 75 }),
    });
    const j = (await r.json()) as { choices: { text: string }[] };
    assert.equal(r.status, 200);
    assert.equal(j.choices[0].text.length, 75);
    assert.ok(performance.now() - t0 > 1000, "the generation took longer than requestTimeoutMs");
  });
});
