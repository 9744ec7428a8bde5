/**
 * Engine kernel throughput (issue 4): float32 matmul GFLOP/s of jax-js's Wasm backend for the shapes of the
 * GRPO benchmark's medium model (d = 512, MLP 1376; 256-token micro-batches in the update, 128 rows per
 * decode step), in the three layouts a linear layer's forward and backward use, at 1 and 2 threads — and
 * PyTorch's CPU matmul on the same shapes and threads. This is the ceiling of the GRPO-step ratio: both
 * trainers spend most of a medium step in these products.
 * Worker mode: `node --import tsx bench/kernels.bench.ts --worker THREADS SPEC...` prints one JSON line.
 */
import { existsSync } from "node:fs";
import { loadavg } from "node:os";
import { peerPython, runJson, writeSection } from "./lib.ts";

const PY = peerPython();

/** M,K,N,layout — nt: x[M,K] @ W[N,K]ᵀ (forward), nn: g[M,K] @ W[K,N] (input gradient), tn: g[K,M]ᵀ @ x[K,N] (weight gradient). */
const SPECS = [
  "256,512,1376,nt",
  "256,1376,512,nn",
  "1376,256,512,tn",
  "256,512,512,nt",
  "512,256,512,tn",
  "128,512,1376,nt",
  "128,1376,512,nt",
];

async function worker(specs: string[]): Promise<Record<string, number>> {
  const { initRuntime } = await import("../src/runtime/jax.ts");
  await initRuntime();
  const { jit, numpy: np, random, blockUntilReady } = await import("../src/runtime/jax.ts");
  type JA = import("../src/runtime/jax.ts").Array;
  const out: Record<string, number> = {};
  for (const spec of specs) {
    const [M, K, N] = spec.split(",").slice(0, 3).map(Number);
    const layout = spec.split(",")[3];
    const a = layout === "tn" ? random.normal(random.key(1), [K, M]) : random.normal(random.key(1), [M, K]);
    const b = layout === "nt" ? random.normal(random.key(2), [N, K]) : random.normal(random.key(2), [K, N]);
    const prod = (x: JA, y: JA) =>
      layout === "nt"
        ? np.matmul(x, y.transpose())
        : layout === "nn"
          ? np.matmul(x, y)
          : np.matmul(x.transpose(), y);
    // Eight products summed in one compiled call, so per-call overhead does not count.
    const f = jit((x: JA, y: JA) => {
      let s = prod(x.ref, y.ref);
      for (let i = 1; i < 8; i++) s = s.add(prod(x.ref, y.ref));
      x.dispose();
      y.dispose();
      return s;
    });
    for (let i = 0; i < 2; i++) await f(a.ref, b.ref).data();
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < 1500 || n < 3) {
      const r = f(a.ref, b.ref);
      await blockUntilReady(r);
      r.dispose();
      n++;
    }
    const sec = (performance.now() - t0) / 1000 / (8 * n);
    out[spec] = (2 * M * K * N) / sec / 1e9;
    f.dispose();
    a.dispose();
    b.dispose();
  }
  return out;
}

if (process.argv[2] === "--worker") {
  const out = await worker(process.argv.slice(4));
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(0);
}

const rows: string[] = [];
const what: Record<string, string> = {
  nt: "x @ Wᵀ (forward)",
  nn: "g @ W (input grad.)",
  tn: "gᵀ @ x (weight grad.)",
};
for (const threads of [1, 2]) {
  const lt = loadavg()[0].toFixed(1);
  const t = runJson<Record<string, number>>(
    process.execPath,
    ["--import", "tsx", "bench/kernels.bench.ts", "--worker", String(threads), ...SPECS],
    threads,
  );
  const lp = loadavg()[0].toFixed(1);
  const p = existsSync(PY)
    ? runJson<Record<string, number>>(PY, ["bench/peers/torch_matmul.py", String(threads), ...SPECS], threads)
    : null;
  for (const s of SPECS) {
    const [M, K, N, layout] = s.split(",");
    const a = t[s] ?? Number.NaN;
    const b = p?.[s] ?? Number.NaN;
    rows.push(
      `| ${M}×${K}×${N} | ${what[layout]} | ${threads} | ${a.toFixed(1)} | ${Number.isFinite(b) ? b.toFixed(1) : "-"} | ${Number.isFinite(b) ? `${(a / b).toFixed(2)}×` : "-"} | ${lt} / ${lp} |`,
    );
    console.log(rows[rows.length - 1]);
  }
}

writeSection(
  "kernels",
  `## Engine kernels: matmul throughput (jax-js Wasm vs PyTorch CPU)

Float32 GFLOP/s of one product C[M,N] = Σ_k A·B for the medium GRPO model's shapes (d = 512, MLP 1376; 256
tokens per update micro-batch, 128 rows per decode step), in the layouts a linear layer's forward and
backward passes use. ttrl: jax-js 0.1.25 Wasm backend (relaxed-SIMD FMA on), eight products per compiled
call so call overhead is excluded; PyTorch 2.13 CPU (\`bench/peers/torch_matmul.py\`), same shapes and
\`torch.set_num_threads\`. Ratio = ttrl ÷ PyTorch. Load avg before the ttrl / PyTorch runs.

| M×K×N | product | threads | ttrl GFLOP/s | PyTorch GFLOP/s | ratio | load avg |
|---|---|---|---|---|---|---|
${rows.join("\n")}

Run: \`npm run bench -- kernels\`. These products are most of a GRPO step's work on the medium model (see
the training section): the step's ratio against TRL cannot exceed this ratio times the work ttrl saves
(the shared-prompt update runs 2.1× fewer tokens than TRL's at P = 16, G = 8, L = 16).`,
);
