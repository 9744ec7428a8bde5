import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { httpBackend, localBackend, restoreStop } from "../../src/eval/backends.ts";
import { checkModelDir, type Engine } from "../../src/eval/engine.ts";
import { runEval, sampleSeed } from "../../src/eval/index.ts";
import { createServeServer, type TtrlServer } from "../../src/serve/server.ts";
import { fakeEngine } from "./fake-engine.ts";

const tmp = mkdtempSync(join(tmpdir(), "ttrl-eval-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const data = join(tmp, "test.jsonl");
const rows = Array.from({ length: 6 }, (_, i) => ({
  id: `q${i}`,
  question: `${i + 2} elma ve ${i * 3} armut, toplam kaç?`,
  answer: String(i + 2 + i * 3),
}));
writeFileSync(data, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");

const readJsonl = (f: string) =>
  readFileSync(f, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));

async function serve(engine: Engine, atPort = 0): Promise<{ srv: TtrlServer; url: string }> {
  const srv = createServeServer(engine, { batchWindowMs: 5 });
  const port = await srv.listen(atPort, "127.0.0.1");
  return { srv, url: `http://127.0.0.1:${port}/v1` };
}

describe("ttrl eval", () => {
  const engine = fakeEngine({ name: "tiny" });
  let srv: TtrlServer;
  let url: string;
  before(async () => {
    ({ srv, url } = await serve(engine));
  });
  after(() => srv.close());

  it("gives the same generations and metrics through ttrl serve as with the local engine", async () => {
    const common = { modelName: "tiny", model: "fake", data, k: 4, seed: 3, temperature: 0.8, greedy: true };
    const local = await runEval({
      ...common,
      backend: localBackend(engine, { batchSize: 5 }),
      out: join(tmp, "local"),
    });
    const http = await runEval({
      ...common,
      backend: httpBackend({ endpoint: url, modelName: "tiny", concurrency: 3 }),
      out: join(tmp, "http"),
    });
    assert.deepEqual(
      readJsonl(join(tmp, "http", "generations.jsonl")),
      readJsonl(join(tmp, "local", "generations.jsonl")),
    );
    assert.deepEqual(http.metrics, local.metrics);
    assert.deepEqual(http.greedyMetrics, local.greedyMetrics);
    const gens = readJsonl(join(tmp, "local", "generations.jsonl"));
    assert.equal(gens.length, 6);
    assert.deepEqual(Object.keys(gens[0]).sort(), ["completions", "id", "label"]);
    assert.equal(gens[0].completions.length, 4);
    // Stop strings are kept in the completion so strict grading sees the closing tag.
    assert.ok(gens.flatMap((g: any) => g.completions).some((c: string) => c.endsWith("</cevap>")));
    const details = readJsonl(join(tmp, "http", "details.jsonl"));
    assert.equal(details.length, 6);
    assert.deepEqual(Object.keys(details[0]).sort(), ["completions", "id", "label"]);
    assert.equal(details[0].completions.length, 4);
    assert.equal(details[0].completions[1].seed, sampleSeed(3, "q0", 1));
    assert.ok("strict" in details[0].completions[0] && "flexible" in details[0].completions[0]);
    const cfg = JSON.parse(readFileSync(join(tmp, "http", "eval_config.json"), "utf8"));
    assert.equal(cfg.model_name, "tiny");
    assert.equal(cfg.k, 4);
    assert.equal(cfg.temperature, 0.8);
    assert.equal(cfg.template, "plain-tr");
    assert.equal(cfg.backend, "http");
    assert.ok(existsSync(join(tmp, "local", "greedy", "metrics.json")));
  });

  it("sends chat templates as chat messages and matches the local chat rendering", async () => {
    const common = { modelName: "tiny", model: "fake", data, k: 2, seed: 1, template: "chat-tr", limit: 3 };
    const local = await runEval({ ...common, backend: localBackend(engine), out: join(tmp, "chat-local") });
    const before = srv.stats.completionRequests;
    const http = await runEval({
      ...common,
      backend: httpBackend({ endpoint: url, modelName: "tiny" }),
      out: join(tmp, "chat-http"),
    });
    assert.equal(srv.stats.completionRequests - before, 6);
    assert.deepEqual(
      readJsonl(join(tmp, "chat-http", "generations.jsonl")),
      readJsonl(join(tmp, "chat-local", "generations.jsonl")),
    );
    assert.deepEqual(http.metrics, local.metrics);
  });

  it("resumes from its cache without regenerating finished samples", async () => {
    // A server whose engine dies after 10 sequences: the eval fails clearly, keeping what finished.
    let budget = 10;
    const flaky: Engine = {
      ...engine,
      async generate(p, o) {
        if (budget <= 0) throw new Error("engine crashed");
        budget -= p.length;
        return engine.generate(p, o);
      },
    };
    const a = await serve(flaky);
    const out = join(tmp, "resume");
    const opts = { modelName: "tiny", model: "fake", data, k: 4, seed: 9, out };
    await assert.rejects(
      runEval({
        ...opts,
        backend: httpBackend({ endpoint: a.url, modelName: "tiny", concurrency: 1, retries: 0 }),
      }),
      (e: Error) => /samples finished and kept/.test(e.message) && /re-run/.test(e.message),
    );
    await a.srv.close();
    const kept = readJsonl(join(out, "cache.jsonl")).length;
    assert.ok(kept >= 10 && kept < 24, `kept ${kept}`);
    // Resume against a healthy server at the same address (the cache is keyed by endpoint URL and model
    // name): only the missing samples are requested.
    const b = await serve(engine, Number(new URL(a.url).port));
    const r = await runEval({
      ...opts,
      backend: httpBackend({ endpoint: b.url, modelName: "tiny", concurrency: 2 }),
    });
    assert.equal(b.srv.stats.completionRequests, 24 - kept);
    assert.equal(r.cached, kept);
    // A third run generates nothing.
    const r2 = await runEval({ ...opts, backend: httpBackend({ endpoint: b.url, modelName: "tiny" }) });
    assert.equal(b.srv.stats.completionRequests, 24 - kept);
    assert.equal(r2.cached, 24);
    await b.srv.close();
    // Same results as an uninterrupted run.
    const fresh = await runEval({ ...opts, out: join(tmp, "fresh"), backend: localBackend(engine) });
    assert.deepEqual(r.metrics, fresh.metrics);
  });

  it("fails clearly on an unreachable endpoint after retries", async () => {
    const dead = await serve(engine);
    const deadUrl = dead.url;
    await dead.srv.close();
    await assert.rejects(
      runEval({
        modelName: "tiny",
        model: deadUrl,
        data,
        k: 1,
        out: join(tmp, "dead"),
        backend: httpBackend({ endpoint: deadUrl, modelName: "tiny", retries: 1 }),
      }),
      (e: Error) => e.message.includes(deadUrl) && /unreachable after 1 retries/.test(e.message),
    );
  });

  it("reports a server's 4xx answer clearly, without retrying", async () => {
    const before = srv.stats.completionRequests;
    await assert.rejects(
      runEval({
        modelName: "nope",
        model: url,
        data,
        k: 1,
        out: join(tmp, "wrong-model"),
        backend: httpBackend({ endpoint: url, modelName: "nope", concurrency: 1 }),
      }),
      (e: Error) => /server answered 404/.test(e.message) && /'nope' does not exist/.test(e.message),
    );
    assert.equal(srv.stats.completionRequests - before, 1);
  });

  it("reports validity but marks correctness absent (null) for rows without labels", async () => {
    const unl = join(tmp, "unlabelled.jsonl");
    writeFileSync(unl, rows.map((r) => JSON.stringify({ id: r.id, question: r.question })).join("\n"));
    const r = await runEval({
      modelName: "tiny",
      model: "fake",
      data: unl,
      k: 2,
      out: join(tmp, "unl"),
      backend: localBackend(engine),
    });
    const json = JSON.stringify(r.metrics);
    assert.ok(/valid/.test(json));
    const details = readJsonl(join(tmp, "unl", "details.jsonl"));
    const graded = details.flatMap((d: any) => d.completions);
    assert.ok(details.every((d: any) => d.label === null));
    assert.ok(graded.every((c: any) => c.strict.correct === null && c.flexible.correct === null));
    assert.ok(graded.some((c: any) => c.strict.valid === true));
    // No correctness number is reported as zero.
    const walk = (v: any, path: string): void => {
      if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) walk(x, `${path}.${k}`);
      else if (/correct|pass|cons|accuracy/i.test(path) && !/count|n_|labelled/i.test(path))
        assert.notEqual(v, 0, `${path} is 0 without labels`);
    };
    walk(r.metrics, "metrics");
  });

  it("rejects bad data with the file and line", async () => {
    const bad = join(tmp, "bad.jsonl");
    writeFileSync(bad, `${JSON.stringify({ id: "a", question: "x" })}\n${JSON.stringify({ id: "b" })}\n`);
    await assert.rejects(
      runEval({
        modelName: "t",
        model: "f",
        data: bad,
        k: 1,
        out: join(tmp, "bad"),
        backend: localBackend(engine),
      }),
      (e: Error) => e.message.startsWith(`${bad}:2:`),
    );
  });

  it("rejects a folder that is not a model", () => {
    const dir = join(tmp, "notamodel");
    writeFileSync(join(tmp, "file.txt"), "x");
    assert.throws(() => checkModelDir(dir), /model folder not found/);
    assert.throws(() => checkModelDir(join(tmp, "file.txt")), /not a folder/);
    assert.throws(() => checkModelDir(tmp), /not a model folder \(missing config\.json/);
  });

  it("puts back stop strings that servers leave out", () => {
    assert.equal(restoreStop("<cevap>\n4\n", "stop", "</cevap>", ["</cevap>"]), "<cevap>\n4\n</cevap>");
    assert.equal(restoreStop("<cevap>\n4\n", "stop", null, ["</cevap>"]), "<cevap>\n4\n");
    assert.equal(restoreStop("<cevap>\n4\n", "stop", undefined, ["</cevap>"]), "<cevap>\n4\n</cevap>");
    assert.equal(restoreStop("<cevap>4</cevap> x", "stop", undefined, ["</cevap>"]), "<cevap>4</cevap> x");
    assert.equal(restoreStop("<cevap>\n4\n", "length", undefined, ["</cevap>"]), "<cevap>\n4\n");
    assert.equal(restoreStop("a</cevap>", "stop", "</cevap>", ["</cevap>"]), "a</cevap>");
  });
});
