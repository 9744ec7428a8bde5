/**
 * One device's numbers for test/runtime/webgpu.test.ts and bench/webgpu.bench.ts (the device is fixed per
 * process): `node --import tsx test/runtime/device-worker.ts <wasm|webgpu> <outDir>` prints one JSON line with
 * log-probs, greedy tokens, one SFT step and one GRPO step of the tiny preset (seeded, so both devices start
 * from the same weights).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { generate, scoreSequences } from "../../src/model/index.ts";
import { initPresetModel } from "../../src/model/presets.ts";
import { type EngineDevice, initRuntime, parseDevice, tree, webgpuInfo } from "../../src/runtime/jax.ts";
import { resolveGrpoConfig } from "../../src/train/config.ts";
import { enginePolicy } from "../../src/train/engine.ts";
import { trainGrpo } from "../../src/train/grpo.ts";
import type { Params } from "../../src/train/optim.ts";
import { SFT_DEFAULTS, trainSft } from "../../src/train/sft.ts";

/** A few numbers of every tensor (first, last, sum), enough to see any difference in an update. */
async function fingerprint(params: Params): Promise<number[]> {
  const out: number[] = [];
  for (const k of Object.keys(params).sort()) {
    const d = (await params[k].ref.data()) as Float32Array;
    let s = 0;
    for (const v of d) s += v;
    out.push(d[0], d[d.length - 1], s);
  }
  return out;
}

const device: EngineDevice = parseDevice(process.argv[2] ?? "wasm");
const outDir = process.argv[3] ?? "/tmp/ttrl-device-worker";
mkdirSync(outDir, { recursive: true });
await initRuntime({ device });
const t0 = performance.now();
const result: Record<string, unknown> = { device, adapter: webgpuInfo()?.adapter ?? null };

// Log-probs and greedy tokens.
const model = await initPresetModel("tiny", 7);
const tok = model.tokenizer;
const texts = ["Soru: 2 + 3 kaç eder?", "Merhaba dünya", "ğüşıöç 12345"];
const seqs = texts.map((t) => tok.encode(t, { addSpecialTokens: true }));
result.logprobs = await scoreSequences(model, seqs);
const gens = await generate(model, seqs, { maxNewTokens: 12, greedy: true });
result.greedy = gens.map((g) => g.tokens);
result.secs_infer = (performance.now() - t0) / 1000;

// One SFT step.
const t1 = performance.now();
const sftRows = [
  { line: 1, question: "2+3", solution: "<cevap>\n5\n</cevap>" },
  { line: 2, question: "4+4", solution: "<cevap>\n8\n</cevap>" },
];
const sft = await trainSft({
  policy: enginePolicy(await initPresetModel("tiny", 8)),
  rows: sftRows,
  config: {
    ...SFT_DEFAULTS,
    batch_size: 2,
    max_steps: 1,
    learning_rate: 1e-3,
    warmup_ratio: 0,
    save_steps: 0,
  },
  outDir: join(outDir, "sft"),
});
result.sft_loss = sft.log[0].loss;
result.sft_params = await fingerprint(sft.params);
tree.dispose(sft.params);
result.secs_sft = (performance.now() - t1) / 1000;

// One GRPO step (a reward with spread in every group, so every completion takes part in the update).
const t2 = performance.now();
const config = resolveGrpoConfig([
  {
    where: "device-worker",
    values: {
      model: "tiny",
      data: "device-worker",
      reward: "majority",
      prompts_per_step: 2,
      num_generations: 4,
      max_completion_length: 8,
      stop: [],
      max_steps: 1,
      shuffle_dataset: false,
      save_steps: 0,
      log_completions_steps: 0,
      learning_rate: 1e-3,
      beta: 0,
      loss_type: "dapo",
      seed: 5,
    },
  },
]);
const grpo = await trainGrpo({
  policy: enginePolicy(await initPresetModel("tiny", 9)),
  rows: [
    { id: "a", question: "2 + 3 kaç eder?", line: 1 },
    { id: "b", question: "4 + 1 kaç eder?", line: 2 },
  ],
  config,
  outDir: join(outDir, "grpo"),
  rewards: [
    {
      name: "length_mod_7",
      fn: (g: { completions: string[] }) => ({ rewards: g.completions.map((c) => ([...c].length % 7) / 7) }),
      weight: 1,
    },
  ],
});
result.grpo_loss = grpo.log[0].loss;
result.grpo_reward = grpo.log[0].reward;
result.grpo_params = await fingerprint(grpo.params);
result.grpo_param_devices = [...new Set(Object.values(grpo.params).map((a) => a.device))];
tree.dispose(grpo.params);
result.secs_grpo = (performance.now() - t2) / 1000;
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
