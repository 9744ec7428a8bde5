/**
 * The WebGPU device against the Wasm device, in the same run (issue 16): float32 matmul GFLOP/s, and GRPO
 * steps of a random char-tr LLaMA (split into sampling / reference / update), each device in its own
 * process. On a machine without a GPU the WebGPU device is Mesa's llvmpipe (a software rasteriser): it
 * shows that the device works and what it costs, not GPU speed — scripts/gpu/webgpu-check.sh measures a
 * real GPU with the same workers.
 *
 *   npm run bench -- webgpu                      (writes bench/results/webgpu.md)
 *
 * Worker mode (also used by scripts/gpu/webgpu-check.sh), one JSON line on stdout:
 *   node --import tsx bench/webgpu.bench.ts --worker matmul DEVICE N...        square N×N×N products
 *   node --import tsx bench/webgpu.bench.ts --worker grpo DEVICE SHAPE P G L STEPS
 *   node --import tsx bench/webgpu.bench.ts --worker f16 webgpu SHAPE P G L STEPS
 * f16: `--compute-dtype float16` on an adapter with shader-f16 — log-probs of the same random model with
 * float16 and float32 matmuls (one process: float32 through `float32Matmuls`), their largest difference and
 * forward times, then the GRPO steps with float16 (as `grpo`); `{"skipped": ...}` without shader-f16.
 * SHAPE: tiny | medium (~29M, the presets) | 0.5b (Qwen2.5-0.5B's shape: d 896, MLP 4864, 24 layers, 14/2
 * heads, vocabulary 151,936; random weights, char-tr tokenizer).
 */
import { existsSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { peakRssMiB, runJson, writeSection } from "./lib.ts";

type Device = "wasm" | "webgpu";

async function workerMatmul(device: Device, sizes: number[]): Promise<Record<string, unknown>> {
  const rt = await import("../src/runtime/jax.ts");
  await rt.initRuntime({ device });
  const { jit, numpy: np, random, blockUntilReady } = rt;
  type JA = import("../src/runtime/jax.ts").Array;
  const out: Record<string, unknown> = { device, adapter: rt.webgpuInfo()?.adapter ?? "wasm" };
  for (const n of sizes) {
    const a = random.normal(random.key(1), [n, n]);
    const b = random.normal(random.key(2), [n, n]);
    // Eight products summed in one compiled call, so per-call overhead does not count.
    const f = jit((x: JA, y: JA) => {
      let s = np.matmul(x.ref, y.ref);
      for (let i = 1; i < 8; i++) s = s.add(np.matmul(x.ref, y.ref));
      x.dispose();
      y.dispose();
      return s;
    });
    for (let i = 0; i < 2; i++) await f(a.ref, b.ref).data();
    let k = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < 1500 || k < 3) {
      const r = f(a.ref, b.ref);
      await blockUntilReady(r);
      r.dispose();
      k++;
    }
    const sec = (performance.now() - t0) / 1000 / (8 * k);
    out[`gflops_${n}`] = (2 * n * n * n) / sec / 1e9;
    f.dispose();
    a.dispose();
    b.dispose();
  }
  return out;
}

/** config.json overrides of the shapes beyond the presets. */
const SHAPES: Record<string, Record<string, unknown>> = {
  /** The tiny preset with Qwen's vocabulary: checks the 0.5b run's sampling and decoding path cheaply. */
  "tiny-qwen-vocab": { vocab_size: 151936 },
  "0.5b": {
    vocab_size: 151936,
    hidden_size: 896,
    intermediate_size: 4864,
    num_hidden_layers: 24,
    num_attention_heads: 14,
    num_key_value_heads: 2,
    head_dim: 64,
    max_position_embeddings: 1024,
    tie_word_embeddings: true,
  },
};

async function workerGrpo(
  device: Device,
  shape: string,
  P: number,
  G: number,
  L: number,
  steps: number,
): Promise<Record<string, unknown>> {
  const rt = await import("../src/runtime/jax.ts");
  await rt.initRuntime({ device });
  const { initPresetModel, presetConfig, PRESETS } = await import("../src/model/presets.ts");
  const { modelFromParts, randomParams, paramCount, parseConfig } = await import("../src/model/index.ts");
  const { enginePolicy } = await import("../src/train/engine.ts");
  const { trainGrpo } = await import("../src/train/grpo.ts");
  const { resolveGrpoConfig } = await import("../src/train/config.ts");
  const t0 = performance.now();
  let model: Awaited<ReturnType<typeof initPresetModel>>;
  if (shape in PRESETS) model = await initPresetModel(shape as keyof typeof PRESETS, 1);
  else {
    const over = SHAPES[shape];
    if (!over) throw new Error(`unknown shape ${shape}`);
    const tiny = await initPresetModel("tiny", 1);
    const raw = { ...presetConfig("tiny"), ...over };
    rt.tree.dispose(tiny.params);
    model = await modelFromParts("", raw, tiny.assets ?? {}, randomParams(parseConfig(raw), 1));
  }
  const params = paramCount(model.config);
  const initSecs = (performance.now() - t0) / 1000;
  const rows = Array.from({ length: P * steps }, (_, i) => ({
    id: `b${i}`,
    question: `${(i % 9) + 1} + ${((i * 7) % 9) + 1} kaç eder?`,
    line: i + 1,
  }));
  const config = resolveGrpoConfig([
    {
      where: "bench",
      values: {
        model: "bench",
        data: "bench",
        reward: "majority",
        prompts_per_step: P,
        num_generations: G,
        max_completion_length: L,
        stop: [],
        max_steps: steps,
        shuffle_dataset: false,
        save_steps: 0,
        log_completions_steps: 0,
        learning_rate: 1e-6,
        beta: 0,
        loss_type: "dapo",
      },
    },
  ]);
  const res = await trainGrpo({
    policy: enginePolicy(model),
    rows,
    config,
    outDir: join(tmpdir(), `ttrl-bench-webgpu-${process.pid}`),
    rewards: [
      {
        name: "length_mod_7",
        fn: (g: { completions: string[] }) => ({
          rewards: g.completions.map((c) => ([...c].length % 7) / 7),
        }),
        weight: 1,
      },
    ],
  });
  const pick = (k: string) => res.log.map((e) => e[k] as number);
  return {
    device,
    adapter: rt.webgpuInfo()?.adapter ?? "wasm",
    shape,
    params,
    init_s: initSecs,
    step_s: pick("time/step"),
    sampling_s: pick("time/sampling"),
    reference_s: pick("time/reference"),
    update_s: pick("time/update"),
    loss: pick("loss"),
    gpu_peak_mib: rt.webgpuMemory().peak / 2 ** 20,
    peak_rss_mib: peakRssMiB(),
  };
}

/**
 * Float16 compute against float32 on the same weights and tokens (B sequences of T random tokens), then
 * GRPO steps with float16. Starts the runtime in float16: without shader-f16 it returns `skipped`.
 */
async function workerF16(
  shape: string,
  P: number,
  G: number,
  L: number,
  steps: number,
): Promise<Record<string, unknown>> {
  const rt = await import("../src/runtime/jax.ts");
  try {
    await rt.initRuntime({ device: "webgpu", computeDtype: "float16" });
  } catch (e) {
    if (/lacks shader-f16/.test((e as Error).message))
      return { skipped: "no shader-f16", reason: (e as Error).message };
    throw e;
  }
  const { initPresetModel, PRESETS } = await import("../src/model/presets.ts");
  const { tokenLogprobs } = await import("../src/model/forward.ts");
  if (!(shape in PRESETS))
    throw new Error(`f16: shape must be a preset (${Object.keys(PRESETS).join(", ")})`);
  const model = await initPresetModel(shape as keyof typeof PRESETS, 1);
  const cfg = model.config;
  const { numpy: np, jit, tree, float32Matmuls } = rt;
  type JA = import("../src/runtime/jax.ts").Array;
  const B = 4;
  const T = Math.min(128, cfg.maxPositionEmbeddings);
  const ids = new Int32Array(B * T);
  let x = 12345;
  for (let i = 0; i < ids.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0; // an LCG: the same tokens on every machine
    ids[i] = (x >>> 8) % cfg.vocabSize;
  }
  const targets = ids.map((_, i) => ids[(i + 1) % ids.length]);
  const f16 = jit((p: typeof model.params, a: JA, b: JA) => tokenLogprobs(p, cfg, a, b));
  const f32 = jit((p: typeof model.params, a: JA, b: JA) =>
    float32Matmuls(() => tokenLogprobs(p, cfg, a, b)),
  );
  const run = async (f: typeof f16): Promise<{ lp: Float32Array; secs: number }> => {
    const call = () =>
      f(
        tree.ref(model.params),
        np.array(ids, { dtype: np.int32 }).reshape([B, T]),
        np.array(targets, { dtype: np.int32 }).reshape([B, T]),
      );
    const lp = (await call().data()) as Float32Array; // compiles
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) await call().data();
    return { lp, secs: (performance.now() - t0) / 5000 };
  };
  const a = await run(f32);
  const b = await run(f16);
  f16.dispose();
  f32.dispose();
  let maxDiff = 0;
  let sumDiff = 0;
  for (let i = 0; i < a.lp.length; i++) {
    const d = Math.abs(a.lp[i] - b.lp[i]);
    maxDiff = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(maxDiff, d);
    sumDiff += d;
  }
  tree.dispose(model.params);
  const grpo = await workerGrpo("webgpu", shape, P, G, L, steps);
  return {
    ...grpo,
    compute_dtype: rt.runtimeComputeDtype(),
    logprob_tokens: a.lp.length,
    logprob_max_abs_diff: maxDiff,
    logprob_mean_abs_diff: sumDiff / a.lp.length,
    forward_f32_s: a.secs,
    forward_f16_s: b.secs,
  };
}

if (process.argv[2] === "--worker") {
  const [mode, device, ...rest] = process.argv.slice(3);
  try {
    const nums = rest.slice(1).map(Number) as [number, number, number, number];
    const out =
      mode === "matmul"
        ? await workerMatmul(device as Device, rest.map(Number))
        : mode === "f16"
          ? await workerF16(rest[0], ...nums)
          : await workerGrpo(device as Device, rest[0], ...nums);
    process.stdout.write(`${JSON.stringify(out)}\n`);
    process.exit(0);
  } catch (e) {
    process.stderr.write(`webgpu-bench: ${(e as Error).name}: ${(e as Error).message}\n`);
    process.exit(1);
  }
}

// Main: both devices, same run. Sizes and steps kept small: llvmpipe is a software GPU on a shared machine.
const SIZES = [128, 256, 512];
const GRPO = ["tiny", "4", "4", "8", "2"];
const me = ["--import", "tsx", "bench/webgpu.bench.ts", "--worker"];
const rows: string[] = [];
const grpo: Record<string, Record<string, unknown>> = {};
let adapter = "";
for (const device of ["wasm", "webgpu"] as Device[]) {
  const la = loadavg()[0].toFixed(1);
  let m: Record<string, unknown>;
  try {
    m = runJson(process.execPath, [...me, "matmul", device, ...SIZES.map(String)], 1);
  } catch (e) {
    console.error(
      `webgpu bench: ${device} unavailable: ${(e as Error).message.split("\n").slice(-3).join(" ")}`,
    );
    continue;
  }
  if (device === "webgpu") adapter = String(m.adapter);
  grpo[device] = runJson(process.execPath, [...me, "grpo", device, ...GRPO], 1);
  rows.push(
    `| ${device} | ${SIZES.map((n) => (m[`gflops_${n}`] as number).toFixed(2)).join(" | ")} | ${la} |`,
  );
  console.log(rows[rows.length - 1], JSON.stringify(grpo[device]));
}
const at = (r: Record<string, unknown> | undefined, k: string, i: number) => {
  const v = r?.[k] as number[] | undefined;
  return v ? v[i < 0 ? v.length + i : i] : Number.NaN;
};
const w = grpo.wasm;
const g = grpo.webgpu;
const cell = (label: string, k: string, i: number) =>
  `| ${label} | ${at(w, k, i).toFixed(2)} | ${at(g, k, i).toFixed(2)} | ${(at(g, k, i) / at(w, k, i)).toFixed(2)}× |`;
const losses = (r: Record<string, unknown> | undefined) =>
  ((r?.loss as number[] | undefined) ?? []).map((x) => x.toFixed(6)).join(", ");
writeSection(
  "webgpu",
  `## WebGPU device vs Wasm device (same run)

\`--device webgpu\` runs jax-js's WebGPU backend on Dawn (npm \`webgpu\` 0.6.2). Here the adapter is
${adapter ? `**${adapter}**` : "**(none found)**"} — on this GPU-less machine Mesa's llvmpipe, a software
rasteriser on the same 2 cores, so these numbers show the device working and its overhead, not GPU speed
(\`scripts/gpu/webgpu-check.sh\` measures a real GPU). Wasm at 1 thread. Each device in its own process.

Float32 matmul GFLOP/s (N×N×N, eight products per compiled call):

| device | ${SIZES.map((n) => `N = ${n}`).join(" | ")} | load avg |
|---|${SIZES.map(() => "---|").join("")}---|
${rows.join("\n")}

GRPO steps of the tiny preset (P = ${GRPO[1]} prompts × G = ${GRPO[2]}, ${GRPO[3]} new tokens, beta 0 so no
reference pass), seconds; step 1 includes compiling every kernel. Losses per step: wasm ${losses(w)}, webgpu
${losses(g)}.

| phase | wasm | webgpu | webgpu ÷ wasm |
|---|---|---|---|
${cell("step 1 (compiles)", "step_s", 0)}
${cell(`step ${GRPO[4]}`, "step_s", -1)}
${cell(`step ${GRPO[4]}: sampling`, "sampling_s", -1)}
${cell(`step ${GRPO[4]}: update`, "update_s", -1)}

Run: \`npm run bench -- webgpu\`.${existsSync("/dev/nvidia0") ? "" : " No GPU on this machine."}`,
);
