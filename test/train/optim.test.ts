// Single-threaded engine: env.ts sets TTRL_THREADS before the engine's runtime is first imported.
import "./env.ts";
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import fc from "fast-check";
import { numpy as np } from "../../src/runtime/jax.ts";
import {
  AdamW,
  clipCoefficient,
  GradAccumulator,
  globalNorm,
  learningRate,
  type Params,
} from "../../src/train/optim.ts";
import { setupRuntime } from "./helpers.ts";

before(setupRuntime);

async function read(p: Params): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const [k, v] of Object.entries(p)) out[k] = Array.from(await v.ref.data());
  return out;
}

/** torch.optim.AdamW in plain JS, the reference formula. */
function adamwRef(
  p: number[],
  grads: number[][],
  lrs: number[],
  o: { b1: number; b2: number; eps: number; wd: number },
): number[] {
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  let x = p.slice();
  grads.forEach((g, t0) => {
    const t = t0 + 1;
    const lr = lrs[t0];
    x = x.map((xi, i) => {
      let y = xi * (1 - lr * o.wd);
      m[i] = o.b1 * m[i] + (1 - o.b1) * g[i];
      v[i] = o.b2 * v[i] + (1 - o.b2) * g[i] * g[i];
      const bc1 = 1 - o.b1 ** t;
      const bc2 = 1 - o.b2 ** t;
      y -= (lr / bc1) * (m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + o.eps));
      return y;
    });
  });
  return x;
}

describe("AdamW", () => {
  it("first step matches the hand-computed formula", async () => {
    // p = 1, g = 0.5, lr = 0.1, wd = 0.01: m̂ = 0.5, v̂ = 0.25, update = 0.1 * 0.5 / (0.5 + 1e-8)
    const opt = new AdamW({ w: np.array([1]) }, { weightDecay: 0.01 });
    const out = await opt.step({ w: np.array([1]) }, { w: np.array([0.5]) }, 0.1);
    const [w] = (await read(out)).w;
    const expected = 1 * (1 - 0.1 * 0.01) - (0.1 * 0.5) / (0.5 + 1e-8);
    assert.ok(Math.abs(w - expected) < 1e-6, `${w} vs ${expected}`);
    assert.equal(opt.t, 1);
  });

  it("several steps agree with the reference (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.float({ min: -2, max: 2, noNaN: true }), { minLength: 3, maxLength: 3 }),
        fc.array(fc.array(fc.float({ min: -1, max: 1, noNaN: true }), { minLength: 3, maxLength: 3 }), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.float({ min: 0, max: Math.fround(0.1), noNaN: true }),
        async (p0, grads, wd) => {
          const lrs = grads.map((_, i) => 0.01 * (i + 1));
          const opt = new AdamW({ w: np.zeros([3]) }, { weightDecay: wd, beta2: 0.99 });
          let params: Params = { w: np.array(new Float32Array(p0)) };
          for (let i = 0; i < grads.length; i++)
            params = await opt.step(params, { w: np.array(new Float32Array(grads[i])) }, lrs[i]);
          const got = (await read(params)).w;
          const want = adamwRef(
            p0.map((x) => Math.fround(x)),
            grads.map((g) => g.map((x) => Math.fround(x))),
            lrs,
            { b1: 0.9, b2: 0.99, eps: 1e-8, wd },
          );
          opt.dispose();
          for (let i = 0; i < 3; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-5, `${got} vs ${want}`);
        },
      ),
      { numRuns: 15 },
    );
  });

  it("state round-trips so a restored optimizer continues identically", async () => {
    const mk = () => new AdamW({ a: np.zeros([2, 2]), b: np.zeros([3]) });
    const g = () => ({
      a: np.array([
        [0.1, -0.2],
        [0.3, 0.4],
      ]),
      b: np.array([1, -1, 0.5]),
    });
    const o1 = mk();
    let p1: Params = { a: np.ones([2, 2]), b: np.ones([3]) };
    p1 = await o1.step(p1, g(), 0.01);
    const state = await o1.getState();
    const o2 = mk();
    o2.setState(structuredClone(state));
    let p2: Params = { a: np.array((await read(p1)).a).reshape([2, 2]), b: np.array((await read(p1)).b) };
    p1 = await o1.step(p1, g(), 0.01);
    p2 = await o2.step(p2, g(), 0.01);
    assert.deepEqual(await read(p1), await read(p2));
    assert.equal(o2.t, 2);
  });
});

describe("clipping and accumulation", () => {
  it("global norm and clip coefficient follow torch", async () => {
    const g = { a: np.array([3, 0]), b: np.array([[4]]) };
    assert.ok(Math.abs((await globalNorm(g)) - 5) < 1e-6);
    assert.ok(Math.abs(clipCoefficient(5, 1) - 1 / (5 + 1e-6)) < 1e-12);
    assert.equal(clipCoefficient(0.5, 1), 1);
    assert.equal(clipCoefficient(100, 0), 1);
    // clipping inside the step: lr 1, one step with clip c equals a step with gradient c*g (Adam is scale
    // invariant up to eps, so check via a zero-moment comparison on the momentum instead)
    const opt = new AdamW({ a: np.zeros([2]), b: np.zeros([1, 1]) });
    await opt.step({ a: np.zeros([2]), b: np.zeros([1, 1]) }, g, 0.1, 0.2);
    const st = await opt.getState();
    const ia = st.names.indexOf("a");
    assert.ok(Math.abs(st.m[ia][0] - 0.1 * 3 * 0.2) < 1e-6);
  });

  it("accumulator sums gradients", async () => {
    const acc = new GradAccumulator();
    await acc.add({ w: np.array([1, 2]) });
    await acc.add({ w: np.array([0.5, -1]) });
    assert.equal(acc.count, 2);
    assert.deepEqual((await read(acc.take())).w, [1.5, 1]);
  });
});

describe("schedules", () => {
  const base = { lr: 1, totalSteps: 10, warmupSteps: 2 };
  it("linear warmup then linear decay (transformers get_linear_schedule_with_warmup)", () => {
    const lrs = Array.from({ length: 11 }, (_, s) => learningRate(s, { ...base, type: "linear" }));
    assert.deepEqual(lrs.slice(0, 3), [0, 0.5, 1]);
    assert.ok(Math.abs(lrs[6] - 0.5) < 1e-12);
    assert.equal(lrs[10], 0);
  });
  it("cosine", () => {
    const f = (s: number) => learningRate(s, { ...base, type: "cosine" });
    assert.equal(f(1), 0.5);
    assert.equal(f(2), 1);
    assert.ok(Math.abs(f(6) - 0.5) < 1e-12);
    assert.ok(Math.abs(f(10)) < 1e-12);
  });
  it("constant ignores warmup; constant_with_warmup ramps; warmup ratio rounds up", () => {
    assert.equal(learningRate(0, { ...base, type: "constant" }), 1);
    assert.equal(learningRate(1, { ...base, type: "constant_with_warmup" }), 0.5);
    assert.equal(learningRate(9, { ...base, type: "constant_with_warmup" }), 1);
    assert.equal(
      learningRate(1, { lr: 1, totalSteps: 10, warmupRatio: 0.15, type: "constant_with_warmup" }),
      0.5,
    );
  });
});
