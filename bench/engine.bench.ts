/**
 * Sampling throughput of ttrl's engine (KV cache, batch 64 and 128) on the tiny and ~29M-parameter
 * ("medium") random char-tr LLaMA presets, 1 and 2 threads, against transformers' `generate` (PyTorch CPU,
 * same shapes and thread count) in the same run. Each measurement runs in its own process (peak RSS is its
 * own; the engine's thread count is fixed per process). Runs are kept short (tens of tokens per sequence)
 * because the machine is shared: read the ratios, not the absolute numbers.
 *
 *   npm run bench -- engine            (writes bench/results/engine-sampling.md)
 *   TTRL_BENCH_QUICK=1 npm run bench -- engine   (tiny only)
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { peakRssMiB, peerPython, writeSection } from "./lib.ts";

const PY = peerPython();
const PROMPT_LEN = 24;

interface Job {
  preset: "tiny" | "medium";
  batch: number;
  threads: number;
  newTokens: number;
}

async function child(job: Job): Promise<void> {
  const { initPresetModel } = await import("../src/model/presets.ts");
  const { generate } = await import("../src/model/index.ts");
  const { runtimeThreads } = await import("../src/runtime/jax.ts");
  const m0 = await initPresetModel(job.preset, 1);
  const model = { ...m0, tokenizer: { ...m0.tokenizer, eosTokenIds: [] as number[] } }; // fixed lengths
  const prompts = Array.from({ length: job.batch }, (_, i) =>
    Array.from({ length: PROMPT_LEN }, (_, t) => 4 + ((i * 7 + t * 13) % (model.config.vocabSize - 4))),
  );
  const seeds = prompts.map((_, i) => i);
  let t = performance.now();
  await generate(model, prompts, { maxNewTokens: job.newTokens, seeds }); // compiles every shape used
  const compileSecs = (performance.now() - t) / 1000;
  t = performance.now();
  const gens = await generate(model, prompts, {
    maxNewTokens: job.newTokens,
    seeds: seeds.map((s) => s + 1000),
  });
  const secs = (performance.now() - t) / 1000;
  const n = gens.reduce((a, g) => a + g.tokens.length, 0);
  process.stdout.write(
    `${JSON.stringify({ tok_s: n / secs, secs, first_secs: compileSecs, rss_mib: peakRssMiB(), threads: runtimeThreads() })}\n`,
  );
  process.exit(0);
}

function lastJson(out: string): Record<string, number> | null {
  const line = out
    .trim()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .pop();
  return line ? (JSON.parse(line) as Record<string, number>) : null;
}

async function main(): Promise<void> {
  const argv = process.argv;
  if (argv[2] === "--child") return child(JSON.parse(argv[3]) as Job);
  const { presetConfig } = await import("../src/model/presets.ts");
  const { parseConfig, paramCount } = await import("../src/model/config.ts");
  const quick = Boolean(process.env.TTRL_BENCH_QUICK);
  const jobs: Job[] = [];
  for (const preset of quick ? (["tiny"] as const) : (["tiny", "medium"] as const))
    for (const batch of [64, 128])
      for (const threads of [1, 2])
        jobs.push({ preset, batch, threads, newTokens: preset === "tiny" ? 48 : 24 });
  const self = fileURLToPath(import.meta.url);
  const rows: string[] = [];
  const havePeer = existsSync(PY);
  for (const job of jobs) {
    const r = spawnSync(process.execPath, ["--import", "tsx", self, "--child", JSON.stringify(job)], {
      encoding: "utf8",
      env: { ...process.env, TTRL_THREADS: String(job.threads), TTRL_QUIET: "1" },
    });
    const ours = lastJson(r.stdout);
    if (!ours) {
      process.stderr.write(`engine bench child failed (${JSON.stringify(job)}):\n${r.stderr}\n`);
      continue;
    }
    let peer: Record<string, number> | null = null;
    if (havePeer) {
      const pj = {
        config: presetConfig(job.preset),
        batch: job.batch,
        threads: job.threads,
        prompt_len: PROMPT_LEN,
        new_tokens: job.newTokens,
      };
      const p = spawnSync(PY, ["bench/peers/hf_generate.py", JSON.stringify(pj)], {
        encoding: "utf8",
        env: { ...process.env, OMP_NUM_THREADS: String(job.threads), TOKENIZERS_PARALLELISM: "false" },
      });
      peer = lastJson(p.stdout);
      if (!peer) process.stderr.write(`peer failed: ${p.stderr.slice(-2000)}\n`);
    }
    const params = paramCount(parseConfig(presetConfig(job.preset)));
    const row = `| ${job.preset} (${(params / 1e6).toFixed(2)}M) | ${job.batch} | ${job.threads} | ${job.newTokens} | ${ours.tok_s.toFixed(0)} | ${ours.first_secs.toFixed(1)} | ${ours.rss_mib.toFixed(0)} | ${peer ? peer.tok_s.toFixed(0) : "n/a"} | ${peer ? peer.rss_mib.toFixed(0) : "n/a"} | ${peer ? (ours.tok_s / peer.tok_s).toFixed(2) : "n/a"} |`;
    process.stdout.write(`${row}\n`);
    rows.push(row);
  }
  writeSection(
    "engine-sampling",
    `## Engine: sampling throughput (KV cache)

Random char-tr LLaMA presets, prompts of ${PROMPT_LEN} tokens, temperature 1, no EOS (every sequence runs to
the token limit). ttrl: \`generate\` (jax-js Wasm, relaxed SIMD, prefill + KV-cache decode, sampling in JS);
the first call (which compiles every shape) is reported separately and not counted. Peer: transformers
\`generate\` (do_sample, use_cache) on PyTorch 2.13 CPU with the same config, batch and thread count, in the
same run. Short runs on a shared 2-core machine: compare the ratios (the committed section notes the load).

| model | batch | threads | new tokens | ttrl tok/s | ttrl first call (s) | ttrl peak RSS (MiB) | transformers tok/s | transformers peak RSS (MiB) | ttrl / transformers |
|---|---|---|---|---|---|---|---|---|---|
${rows.join("\n")}

What limits ttrl: per-step kernel time on the Wasm backend — the decode step is ~230 small kernels
(matmuls at ~10–20 GFLOP/s, elementwise kernels that are slow per element), the prefill of a [B, P] batch,
one-off jit compiles per (batch, length) bucket, and sampling in JS (small next to the kernels).`,
  );
}

await main();
