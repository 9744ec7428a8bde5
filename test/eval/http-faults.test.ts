// `ttrl eval --endpoint` against a fault-injecting OpenAI-compatible server on 127.0.0.1 (issue 15 item 12):
// a connection cut mid-response, a body that is not JSON and a reply without choices are retried like
// 429/5xx; a sample that keeps failing stops the run naming the endpoint and the question, keeping the cache.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { httpBackend } from "../../src/eval/backends.ts";
import { runEval } from "../../src/eval/index.ts";
import { type ChatRequest, type Fault, startFakeOpenAI } from "../data/fake-openai.ts";

const tmp = mkdtempSync(join(tmpdir(), "ttrl-eval-faults-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const data = join(tmp, "test.jsonl");
const N = 8;
writeFileSync(
  data,
  Array.from({ length: N }, (_, i) =>
    JSON.stringify({ id: `q${i}`, question: `soru ${i}`, answer: String(i) }),
  ).join("\n"),
);
const respond = (req: ChatRequest) => {
  const i = Number(/soru (\d+)/.exec(req.user)?.[1]);
  return `<mantık>\nhesap\n</mantık>\n<cevap>\n${i + ((req.body.seed as number) % 2)}\n</cevap>`;
};
const sample = (req: ChatRequest) => `${req.user}#${req.body.seed}`;

const lines = (f: string) => readFileSync(f, "utf8").trim().split("\n");
const FAULTS: Fault[] = [{ kind: "truncate" }, { kind: "malformed" }, { kind: "empty" }, { kind: "reset" }];

describe("eval over a faulty HTTP server", () => {
  for (const template of ["chat-tr", "plain-tr"]) {
    it(`retries a cut, malformed or choice-less reply and finishes with the fault-free results (${template})`, async () => {
      // Each sample's first one or two attempts fail, cycling through the fault kinds.
      const tries = new Map<string, number>();
      let faults = 0;
      const faulty = await startFakeOpenAI({
        respond,
        fault: (req) => {
          const key = sample(req);
          const t = tries.get(key) ?? 0;
          tries.set(key, t + 1);
          if (t >= 1 + (req.n % 2)) return null;
          faults++;
          return FAULTS[req.n % FAULTS.length];
        },
      });
      const clean = await startFakeOpenAI({ respond });
      try {
        const common = { modelName: "m", data, k: 2, template, seed: 5 };
        const r = await runEval({
          ...common,
          model: faulty.url,
          out: join(tmp, `faulty-${template}`),
          backend: httpBackend({
            endpoint: faulty.url,
            modelName: "m",
            retries: 3,
            retryDelayMs: 5,
            concurrency: 4,
          }),
        });
        const ref = await runEval({
          ...common,
          model: clean.url,
          out: join(tmp, `clean-${template}`),
          backend: httpBackend({ endpoint: clean.url, modelName: "m", retries: 0 }),
        });
        assert.ok(faults >= 2 * N, `only ${faults} faults injected`);
        assert.equal(r.samples, 2 * N);
        assert.deepEqual(
          lines(join(tmp, `faulty-${template}`, "generations.jsonl")),
          lines(join(tmp, `clean-${template}`, "generations.jsonl")),
        );
        assert.ok(faulty.requests.every((q) => (template === "chat-tr") === Array.isArray(q.body.messages)));
        assert.deepEqual(r.metrics, ref.metrics);
      } finally {
        await faulty.close();
        await clean.close();
      }
    });
  }

  it("after the retries, fails naming the endpoint and the question, keeping the cache to resume", async () => {
    let broken = true;
    const srv = await startFakeOpenAI({
      respond,
      fault: (req) => (broken && req.user === "soru 5" ? { kind: "malformed" } : null),
    });
    try {
      const out = join(tmp, "resume");
      const run = () =>
        runEval({
          modelName: "m",
          model: srv.url,
          data,
          out,
          k: 2,
          template: "chat-tr",
          backend: httpBackend({
            endpoint: srv.url,
            modelName: "m",
            retries: 2,
            retryDelayMs: 5,
            concurrency: 1,
          }),
        });
      await assert.rejects(run(), (e: Error) => {
        assert.ok(e.message.includes(srv.url), e.message);
        assert.match(e.message, /question "q5" sample 0/);
        assert.match(e.message, /not valid JSON.*after 2 retries/);
        assert.match(e.message, /kept in .*cache\.jsonl/);
        return true;
      });
      // 1 attempt + 2 retries for the failing sample.
      assert.equal(srv.requests.filter((q) => q.user === "soru 5").length, 3);
      const kept = lines(join(out, "cache.jsonl")).length;
      assert.equal(kept, 10, "the samples before q5 are kept");
      broken = false;
      const before = srv.requests.length;
      const r = await run();
      assert.equal(r.cached, kept);
      assert.equal(srv.requests.length - before, 2 * N - kept);
    } finally {
      await srv.close();
    }
  });
});
