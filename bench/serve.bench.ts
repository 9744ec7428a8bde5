/**
 * Load test of `ttrl serve` (loopback only): 64 concurrent clients for 60 s against the tiny model, each
 * sending /v1/completions requests back to back. Reports requests/s, tokens/s, p50/p99 latency, failed
 * requests, the server's batch sizes and its resident memory over time (bounded memory: RSS late in the
 * run vs early). The server runs as a child process (`ttrl serve`), so its memory is its own.
 * Then the same clients stream (`stream: true`) for SERVE_BENCH_STREAM_SECONDS: time to first token (the first
 * chunk with text, from sending the request) p50/p99 under that load.
 * Env: SERVE_BENCH_SECONDS (default 60), SERVE_BENCH_STREAM_SECONDS (default 30), SERVE_BENCH_CLIENTS
 * (default 64), TTRL_THREADS (default 1).
 * No peer server is available offline on this machine, so there is no ratio against one.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { machineLine, writeSection } from "./lib.ts";

const SECONDS = Number(process.env.SERVE_BENCH_SECONDS ?? 60);
const STREAM_SECONDS = Number(process.env.SERVE_BENCH_STREAM_SECONDS ?? 30);
const CLIENTS = Number(process.env.SERVE_BENCH_CLIENTS ?? 64);
const THREADS = process.env.TTRL_THREADS ?? "1";
const MAX_TOKENS = 16;

function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

function pctile(sorted: number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

async function startServer(modelDir: string): Promise<{ child: ChildProcess; base: string }> {
  const child = spawn(
    process.execPath,
    [
      "bin/ttrl.mjs",
      "serve",
      "--model",
      modelDir,
      "--port",
      "0",
      "--host",
      "127.0.0.1",
      "--name",
      "tiny",
      "--max-batch",
      String(CLIENTS),
    ],
    { env: { ...process.env, TTRL_THREADS: THREADS, TTRL_QUIET: "1" }, stdio: ["ignore", "pipe", "inherit"] },
  );
  const base = await new Promise<string>((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error("ttrl serve did not start within 60 s")), 60_000);
    child.stdout!.on("data", (d) => {
      buf += String(d);
      const m = /(http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on("exit", (code) => reject(new Error(`ttrl serve exited with ${code}`)));
  });
  return { child, base };
}

async function main() {
  const tmp = mkdtempSync(join(tmpdir(), "ttrl-serve-bench-"));
  const modelDir = join(tmp, "tiny");
  const init = spawnSync(
    process.execPath,
    ["bin/ttrl.mjs", "init-model", "--preset", "tiny", "--out", modelDir],
    {
      stdio: "inherit",
    },
  );
  if (init.status !== 0) throw new Error("ttrl init-model failed");
  const { child, base } = await startServer(modelDir);
  const pid = child.pid!;
  try {
    // Warm-up: compile the engine's kernels for the batch sizes the load will use.
    await Promise.all(
      Array.from({ length: CLIENTS }, (_, i) =>
        fetch(`${base}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ prompt: `Soru: ${i} + 1 kaçtır?\n`, max_tokens: MAX_TOKENS, seed: i }),
        }).then((r) => r.arrayBuffer()),
      ),
    );
    const rssStart = rssMiB(pid);
    const rssSamples: [number, number][] = [];
    const latencies: number[] = [];
    let failed = 0;
    let tokens = 0;
    const errors = new Map<string, number>();
    const t0 = performance.now();
    const end = t0 + SECONDS * 1000;
    const sampler = setInterval(() => rssSamples.push([(performance.now() - t0) / 1000, rssMiB(pid)]), 1000);
    const client = async (c: number) => {
      for (let i = 0; performance.now() < end; i++) {
        const s = performance.now();
        try {
          const r = await fetch(`${base}/v1/completions`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({
              model: "tiny",
              prompt: `Soru: ${c} elma ve ${i} armut, toplam kaç?\n`,
              max_tokens: MAX_TOKENS,
              temperature: 1,
              seed: c * 100_000 + i,
              stop: ["</cevap>"],
            }),
          });
          const j = (await r.json()) as {
            usage?: { completion_tokens: number };
            error?: { message: string };
          };
          if (r.status !== 200) {
            failed++;
            errors.set(
              `${r.status} ${j.error?.message}`,
              (errors.get(`${r.status} ${j.error?.message}`) ?? 0) + 1,
            );
          } else {
            tokens += j.usage?.completion_tokens ?? 0;
            latencies.push(performance.now() - s);
          }
        } catch (e) {
          failed++;
          const k = String((e as Error).message);
          errors.set(k, (errors.get(k) ?? 0) + 1);
        }
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
    clearInterval(sampler);
    const wall = (performance.now() - t0) / 1000;
    const stream = await streamLoad(base, errors);
    failed += stream.failed;
    const sorted = [...latencies].sort((a, b) => a - b);
    const rssEnd = rssMiB(pid);
    const rssPeak = Math.max(rssStart, ...rssSamples.map(([, r]) => r).filter(Number.isFinite));
    const half = rssSamples.filter(([t]) => t <= SECONDS / 2).map(([, r]) => r);
    const rssHalf = half.length ? half[half.length - 1] : rssStart;
    const ok = latencies.length;
    const lines = [
      "## serve",
      "",
      `\`npm run bench -- serve\`: \`ttrl serve\` (child process, ${THREADS} engine thread(s), batching window 5 ms, max batch ${CLIENTS}) with the tiny model (\`ttrl init-model --preset tiny\`, 0.3M params); ${CLIENTS} concurrent clients on 127.0.0.1 for ${SECONDS} s, each sending /v1/completions (max_tokens ${MAX_TOKENS}, temperature 1, a distinct seed) back to back after a warm-up round. Shared, noisy 2-core machine; no peer server (vLLM, llama.cpp) runs offline here, so no ratio.`,
      "",
      "| metric | value |",
      "|---|---|",
      `| requests ok / failed | ${ok} / ${failed} |`,
      `| requests/s | ${(ok / wall).toFixed(1)} |`,
      `| completion tokens/s | ${(tokens / wall).toFixed(0)} |`,
      `| latency p50 / p99 / max | ${pctile(sorted, 0.5).toFixed(0)} / ${pctile(sorted, 0.99).toFixed(0)} / ${(sorted.at(-1) ?? Number.NaN).toFixed(0)} ms |`,
      `| streaming (${CLIENTS} clients, ${STREAM_SECONDS} s): requests ok / failed | ${stream.ttft.length} / ${stream.failed} |`,
      `| streaming: time to first token p50 / p99 | ${pctile(stream.ttft, 0.5).toFixed(0)} / ${pctile(stream.ttft, 0.99).toFixed(0)} ms |`,
      `| streaming: full response p50 / p99 | ${pctile(stream.total, 0.5).toFixed(0)} / ${pctile(stream.total, 0.99).toFixed(0)} ms |`,
      `| server RSS after warm-up / at ${(SECONDS / 2).toFixed(0)} s / end / peak | ${rssStart.toFixed(0)} / ${rssHalf.toFixed(0)} / ${rssEnd.toFixed(0)} / ${rssPeak.toFixed(0)} MiB |`,
    ];
    if (errors.size) lines.push("", `Errors: ${[...errors].map(([k, v]) => `${v}× ${k}`).join("; ")}`);
    console.log(lines.join("\n"));
    console.log(machineLine());
    writeSection("serve", lines.join("\n"));
    if (failed > 0) process.exitCode = 1;
  } finally {
    child.kill("SIGTERM");
    const exited = await new Promise<boolean>((r) => {
      const t = setTimeout(() => r(false), 5000);
      child.once("exit", () => {
        clearTimeout(t);
        r(true);
      });
    });
    if (!exited) child.kill("SIGKILL");
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * CLIENTS clients streaming back to back for STREAM_SECONDS: per request, the time to the first chunk with
 * text and to [DONE] (sorted, ms).
 */
async function streamLoad(
  base: string,
  errors: Map<string, number>,
): Promise<{ ttft: number[]; total: number[]; failed: number }> {
  const ttft: number[] = [];
  const total: number[] = [];
  let failed = 0;
  const end = performance.now() + STREAM_SECONDS * 1000;
  const client = async (c: number) => {
    for (let i = 0; performance.now() < end; i++) {
      const s = performance.now();
      let first = Number.NaN;
      try {
        const r = await fetch(`${base}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            model: "tiny",
            prompt: `Soru: ${c} kalem ve ${i} silgi, toplam kaç?\n`,
            max_tokens: MAX_TOKENS,
            temperature: 1,
            seed: c * 100_000 + i + 7,
            stream: true,
          }),
        });
        if (r.status !== 200 || !r.body) throw new Error(`HTTP ${r.status}`);
        const dec = new TextDecoder();
        let buf = "";
        let done = false;
        for await (const part of r.body) {
          buf += dec.decode(part as Uint8Array, { stream: true });
          let at = buf.indexOf("\n\n");
          while (at >= 0) {
            const ev = buf.slice(0, at);
            buf = buf.slice(at + 2);
            at = buf.indexOf("\n\n");
            if (ev === "data: [DONE]") done = true;
            else if (Number.isNaN(first) && JSON.parse(ev.slice(6)).choices?.[0]?.text)
              first = performance.now() - s;
          }
        }
        if (!done) throw new Error("stream ended without [DONE]");
        total.push(performance.now() - s);
        ttft.push(Number.isNaN(first) ? performance.now() - s : first);
      } catch (e) {
        failed++;
        const k = `stream: ${(e as Error).message}`;
        errors.set(k, (errors.get(k) ?? 0) + 1);
      }
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
  ttft.sort((a, b) => a - b);
  total.sort((a, b) => a - b);
  return { ttft, total, failed };
}

await main();
