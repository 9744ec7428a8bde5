/**
 * `npm run bench -- trl` (issue 12): the trl engine on models/tr-math-base (TTRL majority reward, P = 4
 * prompts × N = 8 samples, 64 tokens, one thread):
 *  (a) the reward bridge's share of a step — gathering the groups, the HTTP round trip to ttrl's reward
 *      service and the TypeScript scoring, as seen from Python — goal ≤ 5%;
 *  (b) the step time against plain TRL (GRPOTrainer, no subclass) with an equivalent Python majority reward,
 *      the same model, GRPOConfig settings and prompt order, in the same run — goal ≥ 0.95× (plain / ttrl).
 * Needs the venv (`npm run setup:python`); says so and exits 0 when it is missing.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { trainTrl } from "../src/engines/trl/index.ts";
import { TRL_DEFAULTS } from "../src/engines/trl/options.ts";
import { pythonEnv, venvPython } from "../src/engines/trl/python.ts";
import { resolveGrpoConfig } from "../src/train/config.ts";
import { readTrainRows } from "../src/train/data.ts";
import { median, runJson, writeSection } from "./lib.ts";

const python = process.env.TTRL_PYTHON ?? venvPython();
try {
  readFileSync(python);
} catch {
  console.log(`bench trl: skipped — no Python venv at ${python}; run \`npm run setup:python\` first`);
  process.exit(0);
}

const STEPS = Number(process.env.TRL_BENCH_STEPS ?? 12);
const settings = {
  model: "models/tr-math-base",
  data: "data/tr-math/train.jsonl",
  reward: "majority",
  max_steps: STEPS,
  prompts_per_step: 4,
  num_generations: 8,
  max_completion_length: 64,
  save_steps: 0,
  learning_rate: 1e-4,
  threads: 1,
  seed: 11,
};
const config = resolveGrpoConfig([{ where: "bench", values: settings }]);
const rows = await readTrainRows(config.data);
const load0 = loadavg()[0];

type Run = { step: number[]; reward: number[] };
async function ttrlRun(): Promise<Run & { spec: string }> {
  const out = mkdtempSync(join(tmpdir(), "bench-trl-"));
  const res = await trainTrl({ config, trl: { ...TRL_DEFAULTS, python }, rows, outDir: out });
  const log = res.log.slice(1); // step 1 warms up (first generate, allocator)
  return {
    step: log.map((e) => e["time/step"] as number),
    reward: log.map((e) => e["trl/time/reward"] as number),
    spec: join(out, "trl_spec.json"),
  };
}
function plainRun(spec: string): number[] {
  process.env.PYTHONPATH = pythonEnv().PYTHONPATH;
  const r = runJson<{ step_seconds: number[] }>(
    python,
    ["bench/peers/trl_plain.py", spec, mkdtempSync(join(tmpdir(), "bench-trl-plain-"))],
    1,
  );
  return r.step_seconds.slice(1);
}

// ttrl, plain, ttrl: the two ttrl runs bracket the peer so machine-load drift shows.
const a = await ttrlRun();
const plain = plainRun(a.spec);
const b = await ttrlRun();
const ours = [...a.step, ...b.step];
const share = [...a.reward, ...b.reward].map((r, i) => r / ours[i]);
const ratio = median(plain) / median(ours);
const f = (x: number, d = 2) => x.toFixed(d);
console.log(
  `ttrl trl engine: step ${f(median(ours))} s (bridge ${f(100 * median(share), 1)}%); plain TRL: step ${f(median(plain))} s; ratio ${f(ratio)}x`,
);
writeSection(
  "trl",
  `## trl engine (issue 12): reward bridge share and step time vs plain TRL

\`npm run bench -- trl\`: \`ttrl train --engine trl\` on models/tr-math-base, TTRL majority reward, P = 4 × N = 8,
64 tokens, ${STEPS} steps (step 1 left out as warm-up), 1 thread, CPU; plain TRL 1.16 GRPOTrainer with an
equivalent Python majority reward on the same spec (model, GRPOConfig, prompt order), in the same run
(ttrl, plain, ttrl). Load average at start ${f(load0, 1)}.

| | median step (s) | steps |
| --- | --- | --- |
| ttrl --engine trl | ${f(median(ours))} | ${ours.map((x) => f(x)).join(", ")} |
| plain TRL + Python reward | ${f(median(plain))} | ${plain.map((x) => f(x)).join(", ")} |

- Reward bridge share of a step (gather + HTTP + TypeScript scoring, timed in Python): median
  **${f(100 * median(share), 1)}%** (goal ≤ 5%), max ${f(100 * Math.max(...share), 1)}%.
- Step time ratio plain / ttrl: **${f(ratio)}×** (goal ≥ 0.95×).`,
);
