// Single-threaded engine: env.ts sets TTRL_THREADS before the engine's runtime is first imported.
import "./env.ts";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import fc from "fast-check";
import { type Array as JArray, numpy as np, tree } from "../../src/runtime/jax.ts";
import { GRPO_DEFAULTS, type GrpoConfig, resolveGrpoConfig } from "../../src/train/config.ts";
import { DataOrder, type TrainRow } from "../../src/train/data.ts";
import { trainGrpo } from "../../src/train/grpo.ts";
import {
  computeAdvantages,
  type LossAux,
  makeGrpoLoss,
  rowWeights,
  stdUnbiased,
} from "../../src/train/loss.ts";
import type { Params } from "../../src/train/optim.ts";
import type { Policy } from "../../src/train/policy.ts";
import { listCheckpoints } from "../../src/train/state.ts";
import { setupRuntime } from "./helpers.ts";
import { bigramPolicy, paramBytes } from "./toy.ts";

before(setupRuntime);

const close = (a: number, b: number, tol = 1e-5) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);
const tmp = () => mkdtempSync(join(tmpdir(), "ttrl-grpo-"));

describe("advantages", () => {
  it("group scaling: (r - mean) / (unbiased std + 1e-4), by hand", () => {
    // group [1,0,0,1]: mean 0.5, unbiased std sqrt(1/3)
    const s = Math.sqrt(1 / 3);
    const { advantages, zeroStd } = computeAdvantages(
      [
        [1, 0, 0, 1],
        [1, 1, 1, 1],
      ],
      "group",
    );
    [0.5, -0.5, -0.5, 0.5].forEach((v, i) => {
      close(advantages[0][i], v / (s + 1e-4), 1e-9);
    });
    assert.deepEqual(advantages[1], [0, 0, 0, 0]);
    assert.deepEqual(zeroStd, [false, true]);
  });
  it("batch scaling uses the std of all rewards, group means; none only centres", () => {
    const groups = [
      [2, 0],
      [1, 1],
    ];
    const bs = stdUnbiased([2, 0, 1, 1]); // sqrt(2/3)
    close(bs, Math.sqrt(2 / 3), 1e-12);
    const b = computeAdvantages(groups, "batch").advantages;
    close(b[0][0], 1 / (bs + 1e-4), 1e-9);
    close(b[1][0], 0, 1e-12);
    assert.deepEqual(computeAdvantages(groups, "none").advantages, [
      [1, -1],
      [0, 0],
    ]);
  });
  it("group advantages sum to zero and are invariant to shifting rewards (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -5, max: 5, noNaN: true }), { minLength: 2, maxLength: 8 }),
        fc.double({ min: -3, max: 3, noNaN: true }),
        (g, shift) => {
          const a = computeAdvantages([g], "group").advantages[0];
          const b = computeAdvantages([g.map((x) => x + shift)], "group").advantages[0];
          close(
            a.reduce((x, y) => x + y, 0),
            0,
            1e-6,
          );
          a.forEach((v, i) => {
            close(v, b[i], 1e-6);
          });
        },
      ),
    );
  });
});

/** A "policy" whose log-probs are a parameter [B,T] itself, to check the loss by hand. */
const direct: Policy["logprobs"] = (params: Params, ids: JArray, targets: JArray) => {
  ids.dispose();
  targets.dispose();
  return params.lp;
};

describe("GRPO loss against hand-computed values", () => {
  // Two sequences, T = 3. Row 0 has 3 completion tokens, row 1 has 1 (mask), advantages +1 and −2.
  const lp = [
    [-1, -0.5, -2],
    [-0.3, -9, -9],
  ];
  const old = [
    [-1.5, -0.5, -1.8],
    [0, 0, 0],
  ];
  const ref = [
    [-1.2, -0.4, -2],
    [-0.5, 0, 0],
  ];
  const mask = [
    [1, 1, 1],
    [1, 0, 0],
  ];
  const adv = [1, -2];
  const eps = 0.2;
  const epsHigh = 0.28;
  const beta = 0.1;

  // Per-token loss by hand.
  function perToken(b: number, t: number, useOld: boolean, withKl: boolean): number {
    const r = useOld ? Math.exp(lp[b][t] - old[b][t]) : 1;
    const c = Math.min(Math.max(r, 1 - eps), 1 + epsHigh);
    let l = -Math.min(r * adv[b], c * adv[b]);
    if (withKl) {
      const d = ref[b][t] - lp[b][t];
      l += beta * (Math.exp(d) - d - 1);
    }
    return l;
  }

  async function run(weights: number[], useOld: boolean, withKl: boolean) {
    const f = makeGrpoLoss(direct, {
      epsilonLow: eps,
      epsilonHigh: epsHigh,
      beta: withKl ? beta : 0,
      useOld,
    });
    const batch = {
      ids: np.zeros([2, 3], { dtype: np.int32 }),
      targets: np.zeros([2, 3], { dtype: np.int32 }),
      mask: np.array(mask),
      weight: np.array(weights.map((w) => [w])),
      adv: np.array(adv.map((a) => [a])),
      ...(useOld ? { old: np.array(old) } : {}),
      ...(withKl ? { ref: np.array(ref) } : {}),
    };
    const [[l, aux], g] = f({ lp: np.array(lp) }, batch) as unknown as [[JArray, LossAux], Params];
    const out = {
      loss: (await l.data())[0],
      low: (await aux.lowSum.data())[0],
      high: (await aux.highSum.data())[0],
      kl: (await aux.klSum.data())[0],
      grad: Array.from(await g.lp.data()),
    };
    f.dispose();
    return out;
  }

  const lengths = [3, 1];
  const ctx = { numSeqs: 2, totalTokens: 4, maxCompletionLength: 5, numMicro: 1, microTokens: 4 };

  for (const lossType of ["grpo", "dr_grpo", "dapo", "bnpo"] as const) {
    it(`${lossType}: value matches the hand aggregation (ratio ≠ 1, clipping, KL)`, async () => {
      const w = rowWeights(lossType, lengths, ctx);
      const expectedW = {
        grpo: [1 / 6, 1 / 2],
        dr_grpo: [1 / 10, 1 / 10],
        dapo: [1 / 4, 1 / 4],
        bnpo: [1 / 4, 1 / 4],
      }[lossType];
      w.forEach((v, i) => {
        close(v, expectedW[i], 1e-12);
      });
      const got = await run(w, true, true);
      let want = 0;
      for (let b = 0; b < 2; b++)
        for (let t = 0; t < 3; t++) if (mask[b][t]) want += w[b] * perToken(b, t, true, true);
      close(got.loss, want, 1e-5);
    });
  }

  it("grpo by hand: mean over sequences of per-sequence token means", async () => {
    const w = rowWeights("grpo", lengths, ctx);
    const got = await run(w, true, false);
    const s0 = (perToken(0, 0, true, false) + perToken(0, 1, true, false) + perToken(0, 2, true, false)) / 3;
    const s1 = perToken(1, 0, true, false);
    close(got.loss, (s0 + s1) / 2, 1e-5);
    // ratios: row0 = [e^0.5=1.65 (clipped high, adv>0), 1, e^-0.2=0.82 (not < 0.8)],
    // row1 = e^-0.3=0.74 (clipped low, adv<0); row1's masked tokens do not count
    assert.equal(got.high, 1);
    assert.equal(got.low, 1);
    // the clipped low token's ratio is held at 0.8: its gradient is 0, the unclipped ones' are not
    assert.equal(got.grad[3], 0);
    assert.notEqual(got.grad[2], 0);
  });

  it("bnpo over two micro-batches of unequal tokens: mean of per-micro-batch token means (≠ dapo)", async () => {
    // Row 0 (3 tokens) in one micro-batch, row 1 (1 token) in the other.
    const two = { numSeqs: 2, totalTokens: 4, maxCompletionLength: 5, numMicro: 2 };
    const bnpo = [
      ...rowWeights("bnpo", [3], { ...two, microTokens: 3 }),
      ...rowWeights("bnpo", [1], { ...two, microTokens: 1 }),
    ];
    assert.deepEqual(bnpo, [1 / 6, 1 / 2]);
    const dapo = [
      ...rowWeights("dapo", [3], { ...two, microTokens: 3 }),
      ...rowWeights("dapo", [1], { ...two, microTokens: 1 }),
    ];
    assert.deepEqual(dapo, [1 / 4, 1 / 4]);
    // The loss is linear in the row weights, so one batch with both rows equals the two micro-batches' sum.
    const got = await run(bnpo, true, false);
    const mb0 = (perToken(0, 0, true, false) + perToken(0, 1, true, false) + perToken(0, 2, true, false)) / 3;
    const mb1 = perToken(1, 0, true, false) / 1;
    close(got.loss, (mb0 + mb1) / 2, 1e-5);
    const asDapo = await run(dapo, true, false);
    assert.ok(Math.abs(got.loss - asDapo.loss) > 0.05, `bnpo ${got.loss} vs dapo ${asDapo.loss}`);
  });

  it("ratio 1 (num_iterations = 1): loss = −Σ w·A·mask and the gradient is −w·A on masked tokens", async () => {
    const w = rowWeights("dapo", lengths, ctx);
    const got = await run(w, false, false);
    close(got.loss, -(3 * 0.25 * 1 + 1 * 0.25 * -2), 1e-6);
    // d/dlp of −r·A with r = exp(lp − sg(lp)) is −A at r = 1
    const want = [-0.25, -0.25, -0.25, 0.5, 0, 0];
    want.forEach((v, i) => {
      close(got.grad[i] as number, v, 1e-6);
    });
  });

  it("k3 KL sum matches by hand", async () => {
    const got = await run(rowWeights("dapo", lengths, ctx), false, true);
    let kl = 0;
    for (let b = 0; b < 2; b++)
      for (let t = 0; t < 3; t++)
        if (mask[b][t]) {
          const d = ref[b][t] - lp[b][t];
          kl += Math.exp(d) - d - 1;
        }
    close(got.kl, kl, 1e-5);
  });
});

function toyRows(n: number, labeled = true): TrainRow[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `r${i}`,
    question: `${i % 10}`,
    answer: labeled ? String(i % 10) : undefined,
    line: i + 1,
  }));
}

function toyConfig(over: Partial<GrpoConfig>): GrpoConfig {
  return resolveGrpoConfig([
    {
      where: "test",
      values: {
        ...over,
      },
    },
  ]);
}

describe("GRPO training on a tiny model", () => {
  it("a toy reward (completion starts with 'a') rises: gradients have the right sign", async () => {
    const policy = bigramPolicy({ seed: 3 });
    const cfg = toyConfig({
      prompts_per_step: 4,
      num_generations: 8,
      max_completion_length: 3,
      learning_rate: 0.2,
      lr_scheduler_type: "constant",
      max_steps: 30,
      save_steps: 0,
      log_completions_steps: 0,
      reward: "majority",
    });
    const startsA = (group: { completions: string[] }) => ({
      rewards: group.completions.map((c) => (c.startsWith("a") ? 1 : 0)),
    });
    const res = await trainGrpo({
      policy,
      rows: toyRows(20),
      config: cfg,
      outDir: tmp(),
      rewards: [{ name: "starts_a", fn: startsA, weight: 1 }],
    });
    const rewards = res.log.map((e) => e.reward as number);
    const first = rewards.slice(0, 5).reduce((a, b) => a + b, 0) / 5;
    const last = rewards.slice(-5).reduce((a, b) => a + b, 0) / 5;
    assert.ok(first < 0.25, `initial reward ${first}`);
    assert.ok(last > first + 0.4, `reward ${first} → ${last}`);
    tree.dispose(res.params);
  });

  it("accuracy and majority runs see identical prompt ids in identical order", async () => {
    const rows = toyRows(7);
    const ids: string[][][] = [];
    for (const reward of ["accuracy", "majority"] as const) {
      const cfg = toyConfig({
        reward,
        prompts_per_step: 3,
        num_generations: 4,
        max_completion_length: 4,
        max_steps: 5,
        save_steps: 0,
        temperature: reward === "accuracy" ? 1 : 0.7,
        learning_rate: 0.01,
        seed: 5,
      });
      const res = await trainGrpo({ policy: bigramPolicy({ seed: 1 }), rows, config: cfg, outDir: tmp() });
      ids.push(res.log.map((e) => e.prompt_ids as string[]));
      tree.dispose(res.params);
    }
    assert.deepEqual(ids[0], ids[1]);
    // 5 steps × 3 prompts over 7 rows: every row appears in each epoch exactly once
    const flat = ids[0].flat();
    assert.deepEqual([...flat.slice(0, 7)].sort(), rows.map((r) => r.id).sort());
    assert.notDeepEqual(
      flat.slice(0, 7),
      rows.map((r) => r.id),
    );
  });

  it("kill-and-resume gives bit-identical final weights (beta > 0, num_iterations 2, accumulation)", async () => {
    const cfg = toyConfig({
      reward: "majority",
      rewarded_count: 3,
      rewarded_pick: "random",
      prompts_per_step: 2,
      num_generations: 4,
      max_completion_length: 5,
      max_steps: 5,
      save_steps: 2,
      beta: 0.05,
      num_iterations: 2,
      gradient_accumulation_steps: 2,
      learning_rate: 0.02,
      lr_scheduler_type: "cosine",
      warmup_ratio: 0.2,
      weight_decay: 0.01,
      seed: 9,
    });
    // All N = 4 completions are rewarded; the trainer keeps M = 3 of them at random (seeded).
    const toyReward = [
      {
        name: "toy",
        fn: (group: { completions: string[] }) => ({
          rewards: group.completions.map((c) => (c.includes("b") ? 1 : 0) + c.length / 10),
        }),
        weight: 1,
      },
    ];
    const rows = toyRows(6);
    const a = tmp();
    const full = await trainGrpo({
      policy: bigramPolicy({ seed: 2 }),
      rows,
      config: cfg,
      outDir: a,
      rewards: toyReward,
    });
    const b = tmp();
    const killed = await trainGrpo({
      policy: bigramPolicy({ seed: 2 }),
      rows,
      config: cfg,
      outDir: b,
      rewards: toyReward,
      stopAfter: 3,
    });
    assert.equal(killed.finalDir, null);
    assert.deepEqual(listCheckpoints(b), [2]);
    tree.dispose(killed.params);
    const resumed = await trainGrpo({
      policy: bigramPolicy({ seed: 2 }),
      rows,
      config: cfg,
      outDir: b,
      rewards: toyReward,
      resume: true,
    });
    assert.deepEqual(await paramBytes(resumed.params), await paramBytes(full.params));
    const logA = readFileSync(join(a, "train_log.jsonl"), "utf8").trim().split("\n");
    const logB = readFileSync(join(b, "train_log.jsonl"), "utf8").trim().split("\n");
    assert.equal(logB.length, 5);
    const strip = (l: string) => {
      const o = JSON.parse(l);
      for (const k of Object.keys(o)) if (k.startsWith("time/") || k === "tokens_per_s") delete o[k];
      return o;
    };
    assert.deepEqual(logB.map(strip), logA.map(strip));
    assert.ok(existsSync(join(b, "final", "model.safetensors")));
    tree.dispose(full.params);
    tree.dispose(resumed.params);
  });

  it("a NaN loss stops the run with a clear error and keeps the last good checkpoint", async () => {
    const policy = bigramPolicy({ seed: 4 });
    // From the 3rd step on the reward is NaN, so advantages and the loss are NaN.
    const cfg = toyConfig({
      prompts_per_step: 2,
      num_generations: 2,
      max_completion_length: 3,
      max_steps: 4,
      save_steps: 1,
      reward: "majority",
      learning_rate: 0.01,
    });
    const out = tmp();
    await assert.rejects(
      trainGrpo({
        policy,
        rows: toyRows(4),
        config: cfg,
        outDir: out,
        rewards: [
          {
            name: "nan_from_step_3",
            fn: (g, ctx) => ({
              rewards: g.completions.map((_, i) => ((ctx.step ?? 0) >= 2 ? Number.NaN : i)),
            }),
            weight: 1,
          },
        ],
      }),
      /non-finite loss \(NaN\) at step 3.*Last good checkpoint: .*step-2/,
    );
    assert.deepEqual(listCheckpoints(out), [1, 2]);
  });
});

describe("bad input fails before training", () => {
  const policy = () => bigramPolicy({ maxContext: 40 });
  it("accuracy reward on unlabeled rows names the first such row", async () => {
    const rows = toyRows(3);
    rows[1].answer = undefined;
    await assert.rejects(
      trainGrpo({
        policy: policy(),
        rows,
        config: toyConfig({ reward: "accuracy", max_completion_length: 4 }),
        outDir: tmp(),
        dataFile: "d.jsonl",
      }),
      /d\.jsonl:2: row "r1" has no answer/,
    );
  });
  it("majority needs no labels; empty data and long prompts are errors", async () => {
    await assert.rejects(
      trainGrpo({ policy: policy(), rows: [], config: toyConfig({}), outDir: tmp(), dataFile: "e.jsonl" }),
      /e\.jsonl: no training rows/,
    );
    const long: TrainRow[] = [{ id: "x", question: "a".repeat(30), line: 1 }];
    await assert.rejects(
      trainGrpo({
        policy: policy(),
        rows: long,
        config: toyConfig({ max_completion_length: 16 }),
        outDir: tmp(),
        dataFile: "l.jsonl",
      }),
      /l\.jsonl:1: prompt of row "x" has 37 tokens; .* context of 40/,
    );
  });
  it("conflicting options are usage errors", () => {
    assert.throws(
      () => toyConfig({ num_generations: 4, rewarded_count: 5 }),
      /M=5 exceeds num_generations N=4/,
    );
    assert.throws(() => toyConfig({ epsilon: -0.1 }), /epsilon must be ≥ 0/);
    assert.throws(() => toyConfig({ loss_type: "ppo" as never }), /loss_type must be one of/);
    assert.throws(
      () => toyConfig({ reward_funcs: ["format", "accuracy", "majority"] as never }),
      /cannot combine/,
    );
    assert.throws(
      () => resolveGrpoConfig([{ where: "x.yml", values: { nope: 1 } }]),
      /x\.yml: unknown setting "nope"/,
    );
  });
  it("settings: defaults < config file < flags, with values coerced from YAML and flag strings", () => {
    const c = resolveGrpoConfig([
      { where: "train.yml", values: { num_generations: 4, temperature: 0.7, stop: ["</x>"], beta: 0.04 } },
      { where: "command line", values: { "num-generations": "6", mask_truncated_completions: "true" } },
    ]);
    assert.equal(c.num_generations, 6);
    assert.equal(c.temperature, 0.7);
    assert.deepEqual(c.stop, ["</x>"]);
    assert.equal(c.beta, 0.04);
    assert.equal(c.mask_truncated_completions, true);
    assert.equal(c.epsilon, 0.2);
    assert.throws(
      () => resolveGrpoConfig([{ where: "train.yml", values: { num_generations: "many" } }]),
      /train\.yml: num_generations must be an integer/,
    );
  });
  it("defaults follow TRL's GRPOConfig", () => {
    const d = GRPO_DEFAULTS;
    assert.equal(d.num_generations, 8);
    assert.equal(d.epsilon, 0.2);
    assert.equal(d.beta, 0);
    assert.equal(d.loss_type, "dapo");
    assert.equal(d.scale_rewards, "group");
    assert.equal(d.learning_rate, 1e-6);
    assert.equal(d.lr_scheduler_type, "linear");
    assert.equal(d.max_grad_norm, 1);
  });
});

describe("data order", () => {
  it("is a seeded permutation per epoch", () => {
    const o = new DataOrder(5, 1, true);
    const e0 = [0, 1, 2, 3, 4].map((k) => o.index(k));
    const e1 = [5, 6, 7, 8, 9].map((k) => o.index(k));
    assert.deepEqual([...e0].sort(), [0, 1, 2, 3, 4]);
    assert.deepEqual([...e1].sort(), [0, 1, 2, 3, 4]);
    assert.deepEqual(
      [0, 1, 2, 3, 4].map((k) => new DataOrder(5, 1, true).index(k)),
      e0,
    );
    assert.deepEqual(
      [0, 1, 2].map((k) => new DataOrder(5, 1, false).index(k)),
      [0, 1, 2],
    );
  });
});
