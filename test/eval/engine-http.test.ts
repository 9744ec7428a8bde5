// `ttrl eval` through `ttrl serve` on 127.0.0.1 against the real engine (a tiny random model): the same
// generations and metrics as the local backend for the same seed.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

process.env.TTRL_THREADS ??= "1";
const tmp = mkdtempSync(join(tmpdir(), "ttrl-eval-engine-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const readJsonl = (f: string) =>
  readFileSync(f, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));

describe("ttrl eval over HTTP vs local, real engine", () => {
  const modelDir = join(tmp, "tiny");
  const data = join(tmp, "test.jsonl");
  before(async () => {
    const { writePresetModel } = await import("../../src/model/presets.ts");
    await writePresetModel("tiny", modelDir, { seed: 1 });
    const rows = Array.from({ length: 4 }, (_, i) => ({
      id: `t${i}`,
      question: `Ali'nin ${i + 3} kalemi var, ${i + 1} tane daha alıyor. Kaç kalemi olur?`,
      answer: String(2 * i + 4),
    }));
    writeFileSync(data, rows.map((r) => JSON.stringify(r)).join("\n"));
  });

  it("gives the same generations and metrics for the same seed", async () => {
    const { loadEngine } = await import("../../src/eval/engine.ts");
    const { localBackend, httpBackend } = await import("../../src/eval/backends.ts");
    const { runEval } = await import("../../src/eval/index.ts");
    const { createServeServer } = await import("../../src/serve/server.ts");
    const engine = await loadEngine(modelDir, { name: "tiny" });
    const common = {
      modelName: "tiny",
      model: modelDir,
      data,
      k: 3,
      seed: 7,
      maxTokens: 12,
      temperature: 1,
      greedy: true,
    };
    const local = await runEval({
      ...common,
      backend: localBackend(engine, { batchSize: 16 }),
      out: join(tmp, "local"),
    });
    const srv = createServeServer(engine, { batchWindowMs: 5, maxBatch: 4 });
    const port = await srv.listen(0, "127.0.0.1");
    try {
      const http = await runEval({
        ...common,
        backend: httpBackend({ endpoint: `http://127.0.0.1:${port}/v1`, modelName: "tiny", concurrency: 3 }),
        out: join(tmp, "http"),
      });
      assert.equal(srv.stats.completionRequests, 4 * 4);
      const lg = readJsonl(join(tmp, "local", "generations.jsonl"));
      const hg = readJsonl(join(tmp, "http", "generations.jsonl"));
      assert.deepEqual(hg, lg);
      assert.ok(
        lg.every((r: any) => r.completions.length === 3 && r.completions.every((c: string) => c.length > 0)),
      );
      // Different seeds give different samples (the seeds reach the engine).
      assert.ok(new Set(lg.flatMap((r: any) => r.completions)).size > 4);
      assert.deepEqual(http.metrics, local.metrics);
      assert.deepEqual(http.greedyMetrics, local.greedyMetrics);
    } finally {
      await srv.close();
    }
  });
});
