/**
 * `ttrl data build` / translate / extract against a real HTTP server on 127.0.0.1 speaking the OpenAI
 * chat-completions protocol, with injected 429s, 500s, slow, truncated and reset replies, a server that
 * dies mid-run, and a build process killed mid-run.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type BuildOptions, buildDataset } from "../../src/data/build.ts";
import { LlmClient, RunStoppedError } from "../../src/data/llm.ts";
import { extractRows, parseExtractReply } from "../../src/data/llmsteps.ts";
import { loadRows } from "../../src/data/schema.ts";
import { UsageError } from "../../src/util/errors.ts";
import { type Fault, fakeLlm, startFakeOpenAI } from "./fake-openai.ts";

const N = 40;

function runAsync(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const c = spawn(process.execPath, args, { env: { ...process.env, TTRL_QUIET: "1", OPENAI_API_KEY: "" } });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    c.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    c.on("close", (status) => res({ status, stdout, stderr }));
  });
}
const SAMPLE = 30;

function makeSource(dir: string): string {
  const lines: string[] = [];
  for (let i = 1; i <= N; i++) {
    let answer: string;
    if (i % 7 === 0) answer = `We cannot tell. NOANSWER`;
    else if (i % 5 === 0)
      answer = `${i} and a half is ${i}.5`; // non-integer
    else answer = `${i} times 3 is ${i * 3}`;
    lines.push(JSON.stringify({ question: `Problem ${i}: what is ${i} times 3?`, answer }));
  }
  const f = join(dir, "orca.jsonl");
  writeFileSync(f, `${lines.join("\n")}\n`);
  return f;
}

function readOut(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of ["sampled", "translated", "extracted", "filtered", "train", "test"])
    out[n] = readFileSync(join(dir, `${n}.jsonl`), "utf8");
  return out;
}

const baseOpts = (from: string, out: string, url: string): BuildOptions => ({
  from,
  out,
  import: { preset: "orca-math" },
  sample: SAMPLE,
  seed: 7,
  translate: "tr",
  extractAnswers: true,
  integersOnly: true,
  split: "10:rest",
  concurrency: 4,
  llm: { baseURL: url, model: "fake-1", backoffMs: 5, maxBackoffMs: 40, timeoutMs: 5000, maxRetries: 8 },
});

describe("data build against a scripted OpenAI-compatible server", () => {
  let dir: string;
  let src: string;
  let clean: Record<string, string>;
  let cleanRequests: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "ttrl-data-llm-"));
    src = makeSource(dir);
    // Replies take 30 ms so that the client's bounded concurrency (4) is visible at the server.
    const server = await startFakeOpenAI({ respond: fakeLlm, fault: () => ({ kind: "slow", ms: 30 }) });
    try {
      const s = await buildDataset(baseOpts(src, join(dir, "clean"), server.url));
      cleanRequests = server.requests.length;
      assert.equal(server.maxInFlight, 4);
      assert.equal(s.llm?.requests, cleanRequests);
    } finally {
      await server.close();
    }
    clean = readOut(join(dir, "clean"));
  });
  after(() => {});

  it("produces the right rows and counts", () => {
    const sampled = loadRows(join(dir, "clean", "sampled.jsonl")).rows;
    assert.equal(sampled.length, SAMPLE);
    // Each sampled row: one translation call, one extraction call.
    assert.equal(cleanRequests, 2 * SAMPLE);
    const num = (id: string) => Number(id.split("-").pop());
    const expected = sampled.filter((r) => num(r.id) % 7 !== 0 && num(r.id) % 5 !== 0).map((r) => r.id);
    const train = loadRows(join(dir, "clean", "train.jsonl")).rows;
    const test = loadRows(join(dir, "clean", "test.jsonl")).rows;
    assert.equal(train.length, 10);
    assert.deepEqual([...train, ...test].map((r) => r.id).sort(), [...expected].sort());
    for (const r of [...train, ...test]) {
      const i = num(r.id);
      assert.equal(r.answer, String(i * 3));
      assert.equal(r.question, `TR: Problem ${i}: what is ${i} times 3?`);
      assert.equal(r.meta?.question_original, `Problem ${i}: what is ${i} times 3?`);
      assert.equal(r.source, "orca-math");
    }
    const summary = JSON.parse(readFileSync(join(dir, "clean", "summary.json"), "utf8"));
    const nNone = sampled.filter((r) => num(r.id) % 7 === 0).length;
    const nFrac = sampled.filter((r) => num(r.id) % 7 !== 0 && num(r.id) % 5 === 0).length;
    assert.equal(summary.dropped["extract: reply not a number"], nNone);
    assert.equal(summary.dropped["filter: answer not an integer"], nFrac);
    assert.equal(summary.translated, SAMPLE);
    assert.equal(summary.extracted, SAMPLE - nNone);
    assert.equal(summary.kept, expected.length);
  });

  it("a repeated build makes no calls and writes identical files", async () => {
    const server = await startFakeOpenAI({ respond: fakeLlm });
    const out = join(dir, "repeat");
    try {
      // Reuse the clean build's cache.
      const o = baseOpts(src, out, server.url);
      o.llm!.cacheFile = join(dir, "clean", "llm-cache.jsonl");
      const s = await buildDataset(o);
      assert.equal(server.requests.length, 0);
      assert.equal(s.llm?.cache_hits, 2 * SAMPLE);
    } finally {
      await server.close();
    }
    assert.deepEqual(readOut(out), clean);
  });

  it("injected 429s, 500s, slow, truncated and reset replies lose no rows", async () => {
    let slowSeen = 0;
    const fault = (r: { n: number; attempt: number; user: string }): Fault | null => {
      if (r.n === 3) return { kind: "429", retryAfter: "1" }; // seconds form, honoured once
      if (r.attempt === 0 && r.n % 6 === 1) return { kind: "429", retryAfterMs: "15" };
      if (r.attempt === 0 && r.n % 6 === 2) return { kind: "500" };
      if (r.attempt === 0 && r.n % 6 === 4) return { kind: "truncate" };
      if (r.attempt <= 1 && r.n % 6 === 5) return { kind: "reset" };
      if (r.attempt === 0 && r.n % 10 === 0 && slowSeen++ < 3) return { kind: "slow", ms: 1500 };
      return null;
    };
    const server = await startFakeOpenAI({ respond: fakeLlm, fault });
    const out = join(dir, "faults");
    let s: Awaited<ReturnType<typeof buildDataset>>;
    try {
      const o = baseOpts(src, out, server.url);
      o.llm!.timeoutMs = 400;
      s = await buildDataset(o);
    } finally {
      await server.close();
    }
    assert.deepEqual(readOut(out), clean);
    assert.ok(s.llm!.retries > 10, `retries ${s.llm!.retries}`);
    const reasons = s.llm!.retry_reasons;
    assert.ok(reasons["HTTP 429"] >= 2, JSON.stringify(reasons));
    assert.ok(reasons["HTTP 500"] >= 1, JSON.stringify(reasons));
    assert.ok(reasons["broken reply"] >= 1, JSON.stringify(reasons));
    assert.ok(reasons.timeout >= 1, JSON.stringify(reasons));
    // Every distinct prompt got a complete reply despite the faults.
    assert.equal(new Set(server.answered).size, 2 * SAMPLE);
  });

  it("a server that dies mid-run stops the build with everything cached; the rerun resumes", async () => {
    const out = join(dir, "down");
    const s1 = await startFakeOpenAI({
      respond: fakeLlm,
      fault: (r) => (r.n >= 25 ? { kind: "reset" } : null),
    });
    const o = baseOpts(src, out, s1.url);
    o.llm!.maxRetries = 2;
    try {
      await assert.rejects(buildDataset(o), (e: unknown) => {
        assert.ok(e instanceof RunStoppedError, String(e));
        assert.match((e as Error).message, /giving up after 3 attempts/);
        return true;
      });
    } finally {
      await s1.close();
    }
    const firstAnswered = new Set(s1.answered);
    assert.equal(firstAnswered.size, 25);
    const cacheLines = readFileSync(join(out, "llm-cache.jsonl"), "utf8").trim().split("\n");
    assert.equal(cacheLines.length, 25);
    const s2 = await startFakeOpenAI({ respond: fakeLlm });
    try {
      o.llm!.baseURL = s2.url;
      await buildDataset(o);
    } finally {
      await s2.close();
    }
    for (const r of s2.requests)
      assert.ok(!firstAnswered.has(r.user), `repeated call: ${r.user.slice(0, 60)}`);
    assert.equal(s2.requests.length, 2 * SAMPLE - 25);
    assert.deepEqual(readOut(out), clean);
  });

  it("a killed build process resumes from the cache with no repeated calls", async () => {
    const out = join(dir, "killed");
    const K = 12;
    const s1 = await startFakeOpenAI({
      respond: fakeLlm,
      fault: (r) => (r.n >= K ? { kind: "hang" } : null),
    });
    const args = [
      "--import",
      "tsx",
      "test/data/cli-runner.ts",
      "data",
      "build",
      "--from",
      src,
      "--preset",
      "orca-math",
      "--sample",
      String(SAMPLE),
      "--seed",
      "7",
      "--translate",
      "tr",
      "--extract-answers",
      "--integers-only",
      "--split",
      "10:rest",
      "--concurrency",
      "4",
      "--model",
      "fake-1",
      "--out",
      out,
    ];
    const child = spawn(process.execPath, [...args, "--base-url", s1.url], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, TTRL_QUIET: "1", OPENAI_API_KEY: "" },
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    let exitCode: number | null | undefined;
    const exited = new Promise<void>((res) =>
      child.on("exit", (code) => {
        exitCode = code;
        res();
      }),
    );
    const cacheFile = join(out, "llm-cache.jsonl");
    try {
      // Wait until the K answered replies are all in the cache, then kill the process hard.
      for (;;) {
        const n = existsSync(cacheFile)
          ? readFileSync(cacheFile, "utf8").split("\n").filter(Boolean).length
          : 0;
        if (n >= K) break;
        assert.equal(exitCode, undefined, `the build exited early: ${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      child.kill("SIGKILL");
      await exited;
      await s1.close();
    }
    assert.equal(s1.answered.length, K);
    assert.ok(!existsSync(join(out, "train.jsonl")));
    const s2 = await startFakeOpenAI({ respond: fakeLlm });
    try {
      // Async spawn: the server runs in this process, so a blocking spawnSync would deadlock.
      const r = await runAsync([...args, "--base-url", s2.url]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`llm: ${2 * SAMPLE - K} requests, ${K} from cache`));
      assert.match(r.stdout, /dropped \(extract: reply not a number\): \d+/);
    } finally {
      await s2.close();
    }
    const first = new Set(s1.answered);
    for (const r of s2.requests) assert.ok(!first.has(r.user), "an answered call was repeated");
    assert.equal(s2.requests.length, 2 * SAMPLE - K);
    assert.deepEqual(readOut(out), clean);
  });

  it("a remote URL without an API key fails before any call or file read", () => {
    const r = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "test/data/cli-runner.ts",
        "data",
        "build",
        "--from",
        join(dir, "does-not-exist.jsonl"),
        "--seed",
        "1",
        "--translate",
        "tr",
        "--base-url",
        "https://llm.example.com/v1",
        "--model",
        "m",
        "--out",
        join(dir, "nokey"),
      ],
      { encoding: "utf8", env: { ...process.env, TTRL_QUIET: "1", OPENAI_API_KEY: "" } },
    );
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /no API key for https:\/\/llm\.example\.com\/v1: set OPENAI_API_KEY/);
    assert.throws(
      () => new LlmClient({ baseURL: "https://api.openai.com/v1", model: "m", apiKey: "" }),
      (e: unknown) => e instanceof UsageError,
    );
    // Local servers need none.
    new LlmClient({ baseURL: "http://localhost:1/v1", model: "m", apiKey: "" });
    new LlmClient({ baseURL: "http://127.0.0.1:1/v1", model: "m", apiKey: "" });
  });

  it("non-number replies and HTTP 400s drop rows and are counted, never a crash", async () => {
    const server = await startFakeOpenAI({
      respond: (r) =>
        r.user.includes("Problem 2:") ? "about twelve" : r.user.includes("Problem 3:") ? "**9**" : "4.",
      fault: (r) =>
        r.user.includes("Problem 4:")
          ? { kind: "500" }
          : r.user.includes("Problem 6:")
            ? { kind: "400" }
            : null,
    });
    try {
      const llm = new LlmClient({
        baseURL: server.url,
        model: "m",
        backoffMs: 1,
        maxBackoffMs: 2,
        maxRetries: 1,
      });
      const rows = [1, 2, 3].map((i) => ({ id: `r${i}`, question: `Problem ${i}: q`, solution: "s" }));
      const res = await extractRows(
        [
          ...rows,
          { id: "r5", question: "Problem 5: no solution" },
          { id: "r6", question: "Problem 6: q", solution: "s" },
        ],
        llm,
      );
      assert.deepEqual(
        res.rows.map((r) => [r.id, r.answer]),
        [
          ["r1", "4"],
          ["r3", "9"],
        ],
      );
      assert.deepEqual(res.dropped, {
        "extract: reply not a number": 1,
        "extract: no solution": 1,
        "extract: HTTP 400": 1,
      });
      // A row whose requests keep failing stops the run (the server is considered down).
      await assert.rejects(
        extractRows([{ id: "r4", question: "Problem 4: q", solution: "s" }], llm),
        RunStoppedError,
      );
    } finally {
      await server.close();
    }
    // A server rejecting every request (bad parameters, say) stops the step instead of dropping every row.
    const bad = await startFakeOpenAI({ respond: fakeLlm, fault: () => ({ kind: "400" }) });
    try {
      const llm = new LlmClient({ baseURL: bad.url, model: "m" });
      const rows = Array.from({ length: 20 }, (_, i) => ({ id: `r${i}`, question: "q", solution: `s${i}` }));
      await assert.rejects(
        extractRows(rows, llm, { concurrency: 2 }),
        /the first 8 requests all failed \(HTTP 400\)/,
      );
      assert.ok(bad.requests.length < 20);
    } finally {
      await bad.close();
    }
    assert.equal(parseExtractReply(" 1,250 "), "1250");
    assert.equal(parseExtractReply("$72."), "72");
    assert.equal(parseExtractReply("NONE"), null);
    assert.equal(parseExtractReply("3/4"), null);
  });
});
