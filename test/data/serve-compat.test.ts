/** The data steps against the project's own OpenAI-compatible server (`ttrl serve`, fake engine). */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { buildDataset } from "../../src/data/build.ts";
import { createServeServer } from "../../src/serve/server.ts";
import { fakeEngine } from "../eval/fake-engine.ts";

describe("data build against ttrl serve", () => {
  it("speaks the same protocol; unusable replies are dropped and counted, never a crash", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ttrl-data-serve-"));
    const src = join(dir, "src.jsonl");
    const lines = Array.from({ length: 12 }, (_, i) =>
      JSON.stringify({ question: `What is ${i} + ${i}?`, answer: `${i} + ${i} = ${2 * i}` }),
    );
    writeFileSync(src, `${lines.join("\n")}\n`);
    const srv = createServeServer(fakeEngine({ name: "tiny" }), { batchWindowMs: 5 });
    const port = await srv.listen(0, "127.0.0.1");
    try {
      const s = await buildDataset({
        from: src,
        out: join(dir, "out"),
        import: { preset: "orca-math" },
        seed: 3,
        translate: "tr",
        extractAnswers: true,
        integersOnly: true,
        concurrency: 4,
        llm: { baseURL: `http://127.0.0.1:${port}/v1`, model: "tiny", maxRetries: 1, backoffMs: 5 },
      });
      assert.equal(s.rows_in, 12);
      assert.equal(s.translated, 12);
      assert.equal(s.llm?.requests, 24);
      assert.equal(s.llm?.retries, 0);
      const notNumber = s.dropped["extract: reply not a number"] ?? 0;
      assert.equal((s.extracted ?? 0) + notNumber + (s.dropped["extract: reply cut off"] ?? 0), 12);
      assert.ok(notNumber > 0, JSON.stringify(s.dropped));
    } finally {
      await srv.close();
    }
  });
});
