/**
 * Training benchmarks (issues 3 and 4), each measurement in its own process so threads and peak RSS are
 * its own:
 *  (a) training tokens/s — forward + backward + AdamW (+ clipping) on a masked batch — for the tiny and
 *      medium (~29M) LLaMA presets at 1 and 2 threads, vs PyTorch 2.13 CPU with the same shapes/threads;
 *  (b) one GRPO step (P = 16 prompts × G = 8 completions) split into sampling / reference / update, vs TRL's
 *      GRPOTrainer on CPU with the same model folder, prompts and settings.
 * Kept short (few steps) because the machine is shared; rerun with `npm run bench -- train`.
 * Worker mode: `node --import tsx bench/train.bench.ts --worker train|grpo ...` prints one JSON line.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { peakRssMiB, peerPython, runJson, writeSection } from "./lib.ts";

const PY = peerPython();

async function workerTrain(
  dir: string,
  B: number,
  T: number,
  steps: number,
): Promise<Record<string, number>> {
  const { jit, numpy: np, tree, valueAndGrad } = await import("../src/runtime/jax.ts");
  type JA = import("../src/runtime/jax.ts").Array;
  const { loadPolicy } = await import("../src/train/engine.ts");
  const { AdamW, clipCoefficient, globalNorm } = await import("../src/train/optim.ts");
  const { policy, model } = await loadPolicy(dir);
  const V = model.config.vocabSize;
  let params = policy.params;
  const opt = new AdamW(params);
  type P = typeof params;
  const lossGrad = jit(
    valueAndGrad((p: P, ids: JA, tg: JA, mask: JA) => {
      const lp = policy.logprobs(p, ids, tg);
      return np.sum(lp.mul(mask)).mul(-1 / (B * (T - Math.floor(T / 4))));
    }),
  );
  const ids = new Int32Array(B * T);
  const tg = new Int32Array(B * T);
  const mask = new Float32Array(B * T);
  let s = 1;
  for (let i = 0; i < B * T; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    ids[i] = 3 + (s % (V - 3));
    tg[i] = 3 + ((s >>> 8) % (V - 3));
    mask[i] = i % T >= Math.floor(T / 4) ? 1 : 0;
  }
  const one = async () => {
    const [l, g] = lossGrad(
      tree.ref(params),
      np.array(ids, { dtype: np.int32 }).reshape([B, T]),
      np.array(tg, { dtype: np.int32 }).reshape([B, T]),
      np.array(mask).reshape([B, T]),
    ) as unknown as [JA, P];
    await l.data();
    const n = await globalNorm(g);
    params = await opt.step(params, g, 1e-4, clipCoefficient(n, 1));
    await params[Object.keys(params)[0]].ref.data();
  };
  const tc = performance.now();
  await one(); // compile + warm-up
  const compile = (performance.now() - tc) / 1000;
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await one();
  const sec = (performance.now() - t0) / 1000 / steps;
  return {
    sec_per_step: sec,
    tokens_per_s: (B * T) / sec,
    first_step_s: compile,
    peak_rss_mib: peakRssMiB(),
  };
}

async function workerGrpo(
  dir: string,
  P: number,
  G: number,
  L: number,
  steps: number,
): Promise<Record<string, unknown>> {
  const { loadPolicy } = await import("../src/train/engine.ts");
  const { trainGrpo } = await import("../src/train/grpo.ts");
  const { resolveGrpoConfig } = await import("../src/train/config.ts");
  const { policy } = await loadPolicy(dir);
  const rows = Array.from({ length: P * steps }, (_, i) => ({
    id: `b${i}`,
    question: `${(i % 9) + 1} + ${((i * 7) % 9) + 1} kaç eder?`,
    line: i + 1,
  }));
  const config = resolveGrpoConfig([
    {
      where: "bench",
      values: {
        model: dir,
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
  const toy = (g: { completions: string[] }) => {
    // A reward with spread in every group, so every completion takes part in the update (ttrl skips
    // zero-advantage rows, which would make the update look free). Same function in the TRL peer.
    return { rewards: g.completions.map((c) => ([...c].length % 7) / 7) };
  };
  const res = await trainGrpo({
    policy,
    rows,
    config,
    outDir: mkdtempSync(join(tmpdir(), "ttrl-bench-")),
    rewards: [{ name: "length_mod_7", fn: toy, weight: 1 }],
  });
  const pick = (k: string) => res.log.map((e) => e[k] as number);
  return {
    step_s: pick("time/step"),
    sampling_s: pick("time/sampling"),
    reference_s: pick("time/reference"),
    update_s: pick("time/update"),
    mean_completion_length: pick("completion_length/mean"),
    peak_rss_mib: peakRssMiB(),
  };
}

if (process.argv[2] === "--worker") {
  const [mode, dir, ...nums] = process.argv.slice(3);
  const threads = Number(nums.pop());
  const { initRuntime } = await import("../src/runtime/jax.ts");
  await initRuntime({ threads });
  const n = nums.map(Number);
  const out =
    mode === "train"
      ? await workerTrain(dir, n[0], n[1], n[2])
      : await workerGrpo(dir, n[0], n[1], n[2], n[3]);
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------------------
// Orchestrator

const worker = (args: (string | number)[], threads: number) =>
  runJson(
    process.execPath,
    ["--import", "tsx", "bench/train.bench.ts", "--worker", ...args.map(String)],
    threads,
  );
const peer = (script: string, args: (string | number)[], threads: number) =>
  existsSync(PY) ? runJson(PY, [`bench/peers/${script}`, ...args.map(String)], threads) : null;

const root = mkdtempSync(join(tmpdir(), "ttrl-train-bench-"));
const models: Record<string, string> = {};
for (const preset of ["tiny", "medium"]) {
  const dir = join(root, preset);
  execFileSync(
    process.execPath,
    ["bin/ttrl.mjs", "init-model", "--preset", preset, "--out", dir, "--seed", "1"],
    { stdio: "ignore", env: { ...process.env, TTRL_THREADS: "1" } },
  );
  models[preset] = dir;
}
const fmt = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : "-");
const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : "-");
/** 1-minute load average now (the machine is shared: other jobs' load is part of every number). */
const load = () => loadavg()[0].toFixed(1);
const only = process.env.TTRL_BENCH_PRESETS?.split(",") ?? ["tiny", "medium"];

// (a) training throughput (steps after one warm-up/compile step)
const trainShapes: Record<string, { B: number; T: number; steps: number }> = {
  tiny: { B: 16, T: 128, steps: 3 },
  medium: { B: 8, T: 64, steps: 1 },
};
const rowsA: string[] = [];
for (const preset of only) {
  const { B, T, steps } = trainShapes[preset];
  for (const threads of [1, 2]) {
    const lt = load();
    const t = worker(["train", models[preset], B, T, steps, threads], threads);
    const lp = load();
    const p = peer("torch_train.py", [models[preset], B, T, threads, steps], threads);
    const tt = t.tokens_per_s as number;
    const pt = p ? (p.tokens_per_s as number) : Number.NaN;
    rowsA.push(
      `| ${preset} | ${B}×${T} | ${threads} | ${fmt(tt)} | ${fmt(t.first_step_s as number, 1)} | ${fmt(t.peak_rss_mib as number)} | ${fmt(pt)} | ${p ? fmt(p.peak_rss_mib as number) : "-"} | ${ratio(tt, pt)} | ${lt} / ${lp} |`,
    );
    console.log(rowsA[rowsA.length - 1]);
  }
}

// (b) GRPO steps, P = 16, G = 8, 2 threads
const P = 16;
const G = 8;
const grpoShapes: Record<string, { L: number; steps: number }> = {
  tiny: { L: 32, steps: 2 },
  medium: { L: 16, steps: 2 },
};
const rowsB: string[] = [];
for (const preset of only) {
  const threads = 2;
  const { L, steps } = grpoShapes[preset];
  const lt = load();
  const t = worker(["grpo", models[preset], P, G, L, steps, threads], threads);
  const lp = load();
  const p = peer("trl_grpo.py", [models[preset], P, G, L, threads, steps], threads);
  const last = (o: Record<string, unknown>, k: string) => {
    const a = o[k] as number[];
    return a[a.length - 1];
  };
  const tStep = last(t, "step_s");
  const tTok = (P * G * last(t, "mean_completion_length")) / tStep;
  const pStep = p ? last(p, "step_s") : Number.NaN;
  const pTok = p ? (P * G * last(p, "mean_completion_length")) / pStep : Number.NaN;
  const first = (o: Record<string, unknown>) => fmt((o.step_s as number[])[0], 1);
  const which = (o: Record<string, unknown>) =>
    steps > 1 ? `step ${steps} of ${steps} (step 1: ${first(o)} s)` : "first step (incl. compile)";
  rowsB.push(
    `| ${preset} | ${L} | ${which(t)} | ttrl | ${fmt(tStep, 2)} | ${fmt(last(t, "sampling_s"), 2)} | ${fmt(last(t, "reference_s"), 2)} | ${fmt(last(t, "update_s"), 2)} | ${fmt(last(t, "mean_completion_length"), 1)} | ${fmt(tTok)} | ${fmt(t.peak_rss_mib as number)} | ${ratio(pStep, tStep)} | ${lt} |`,
  );
  if (p)
    rowsB.push(
      `| ${preset} | ${L} | ${which(p)} | TRL 1.16 | ${fmt(pStep, 2)} | ${fmt(last(p, "sampling_s"), 2)} | (in sampling) | ${fmt(last(p, "update_s"), 2)} | ${fmt(last(p, "mean_completion_length"), 1)} | ${fmt(pTok)} | ${fmt(p.peak_rss_mib as number)} | 1.00× | ${lp} |`,
    );
  console.log(rowsB.slice(-2).join("\n"));
}

writeSection(
  "train",
  `## Training (forward + backward + AdamW) and one GRPO step

(a) Training throughput: one optimizer step = forward, backward, global-norm clipping and AdamW on a
B×T batch with the first quarter of each row masked (prompt), timed after one warm-up/compile step
(tiny: mean of 3 steps, medium: 1 step — short runs on a shared 2-core machine; treat ±20% as noise).
Peer: PyTorch 2.13 CPU (\`bench/peers/torch_train.py\`, transformers LlamaForCausalLM, sdpa attention)
with the same model folder, shape and \`torch.set_num_threads\`. Ratio = ttrl tok/s ÷ PyTorch tok/s; load avg
as in (b).

| model | B×T | threads | ttrl tok/s | ttrl first step (s, compile) | ttrl peak RSS (MiB) | PyTorch tok/s | PyTorch peak RSS (MiB) | ratio | load avg ttrl / PyTorch |
|---|---|---|---|---|---|---|---|---|---|
${rowsA.join("\n")}

(b) GRPO steps, P = ${P} prompts × G = ${G} completions, max_completion_length L, no stop strings (EOS
only), temperature 1, beta 0 (no reference pass — TRL's default), num_iterations 1, loss dapo, 2 threads.
Peer: TRL 1.16 GRPOTrainer on PyTorch 2.13 CPU (\`bench/peers/trl_grpo.py\`) with the same model
folder, prompts, reward and settings; its sampling column is \`_generate_and_score_completions\`
(generation + rewards), update = the rest of the step. Reward: (completion length in characters mod 7)
/ 7, so groups have reward spread and every completion takes part in the update (ttrl skips
zero-advantage rows, which would flatter it). ttrl's update runs each distinct prompt of a micro-batch
once and its completions attend to that prompt's keys/values (same log-probs and gradients up to float
rounding, test/train/prefix.test.ts); TRL runs every prompt + completion row. tok/s = completion tokens
÷ step seconds. Speed-up = TRL step s ÷ ttrl step s (≥ 1 means ttrl is faster). Load avg = the
machine's 1-minute load average just before that trainer's run (2 cores; other people's jobs included).

| model | L | measured | trainer | step (s) | sampling (s) | reference (s) | update (s) | mean completion len | tok/s | peak RSS (MiB) | speed-up vs TRL | load avg |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
${rowsB.join("\n")}

Models: \`ttrl init-model --preset tiny\` (0.32 M parameters) and \`--preset medium\` (~29 M), random
weights, char-tr tokenizer (completion lengths differ between trainers: different sampling streams).
Run: \`npm run bench -- train\` (\`TTRL_BENCH_PRESETS=tiny\` for the quick half).`,
);
