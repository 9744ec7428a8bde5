/**
 * Optimisation pieces shared by `ttrl sft` and `ttrl train`: AdamW (PyTorch semantics, decoupled weight decay,
 * jitted over the whole parameter tree), global-norm gradient clipping (torch.nn.utils.clip_grad_norm_),
 * learning-rate schedules with warmup (Hugging Face `get_scheduler` semantics), gradient accumulation, and
 * a serialisable optimizer state for exact resume.
 *
 * Ownership: jax-js arrays are reference-counted and every call consumes its arguments. `AdamW.step`
 * consumes `params` and `grads` and returns new params; the optimizer owns its moment buffers.
 */
import type { Params } from "../model/forward.ts";
import { blockUntilReady, type Array as JArray, jit, numpy as np, tree } from "../runtime/jax.ts";

export type { Params };

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export interface OptimizerState {
  step: number;
  names: string[];
  shapes: number[][];
  m: Float32Array[];
  v: Float32Array[];
}

type Scalars = { lr: JArray; decay: JArray; stepSize: JArray; sqrtBc2: JArray; clip: JArray };

/** AdamW exactly as torch.optim.AdamW (amsgrad off, maximize off). */
export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Number of updates applied so far. */
  t = 0;
  private m: Params;
  private v: Params;
  private update: ReturnType<typeof jit>;

  constructor(params: Params, opts: AdamWOptions = {}) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.m = {};
    this.v = {};
    for (const [k, p] of Object.entries(params)) {
      this.m[k] = np.zeros(p.shape);
      this.v[k] = np.zeros(p.shape);
    }
    const b1 = this.beta1;
    const b2 = this.beta2;
    const eps = this.eps;
    this.update = jit((p: Params, g: Params, m: Params, v: Params, s: Scalars) => {
      const outP: Params = {};
      const outM: Params = {};
      const outV: Params = {};
      for (const k of Object.keys(p)) {
        const gk = g[k].mul(s.clip.ref);
        const mk = m[k].mul(b1).add(gk.ref.mul(1 - b1));
        const vk = v[k].mul(b2).add(np.square(gk).mul(1 - b2));
        const denom = np.sqrt(vk.ref).div(s.sqrtBc2.ref).add(eps);
        outP[k] = p[k].mul(s.decay.ref).sub(mk.ref.div(denom).mul(s.stepSize.ref));
        outM[k] = mk;
        outV[k] = vk;
      }
      tree.dispose(s);
      return { p: outP, m: outM, v: outV };
    });
  }

  /**
   * One AdamW update with learning rate `lr`; gradients are multiplied by `clipCoef` first (see
   * `clipCoefficient`). Consumes params and grads, resolves to the new params (computed).
   */
  async step(params: Params, grads: Params, lr: number, clipCoef = 1): Promise<Params> {
    this.t += 1;
    const bc1 = 1 - this.beta1 ** this.t;
    const bc2 = 1 - this.beta2 ** this.t;
    const s: Scalars = {
      lr: np.array(lr),
      decay: np.array(1 - lr * this.weightDecay),
      stepSize: np.array(lr / bc1),
      sqrtBc2: np.array(Math.sqrt(bc2)),
      clip: np.array(clipCoef),
    };
    const out = this.update(params, grads, this.m, this.v, s) as { p: Params; m: Params; v: Params };
    this.m = out.m;
    this.v = out.v;
    // jax-js evaluates lazily: realise the new state now, or pending work keeps old buffers alive.
    await blockUntilReady(out);
    return out.p;
  }

  async getState(): Promise<OptimizerState> {
    const names = Object.keys(this.m).sort();
    const m: Float32Array[] = [];
    const v: Float32Array[] = [];
    for (const k of names) {
      m.push(new Float32Array(await this.m[k].ref.data()));
      v.push(new Float32Array(await this.v[k].ref.data()));
    }
    return { step: this.t, names, shapes: names.map((k) => this.m[k].shape.slice()), m, v };
  }

  setState(state: OptimizerState): void {
    const want = Object.keys(this.m).sort();
    if (want.join("\n") !== state.names.join("\n"))
      throw new Error("optimizer state does not match the model's parameter names");
    tree.dispose(this.m);
    tree.dispose(this.v);
    this.m = {};
    this.v = {};
    state.names.forEach((k, i) => {
      this.m[k] = np.array(state.m[i]).reshape(state.shapes[i]);
      this.v[k] = np.array(state.v[i]).reshape(state.shapes[i]);
    });
    this.t = state.step;
  }

  dispose(): void {
    tree.dispose(this.m);
    tree.dispose(this.v);
    this.update.dispose();
  }
}

const sumSquares = jit((g: Params) => {
  let acc: JArray | null = null;
  for (const k of Object.keys(g).sort()) {
    const s = np.sum(np.square(g[k]));
    acc = acc === null ? s : acc.add(s);
  }
  return acc ?? np.array(0);
});

/** Global L2 norm of a gradient tree (does not consume it). */
export async function globalNorm(grads: Params): Promise<number> {
  const s = sumSquares(tree.ref(grads)) as JArray;
  const [v] = await s.data();
  return Math.sqrt(v);
}

/** torch.nn.utils.clip_grad_norm_: multiply gradients by min(1, maxNorm / (norm + 1e-6)); maxNorm ≤ 0 disables. */
export function clipCoefficient(norm: number, maxNorm: number): number {
  if (!(maxNorm > 0)) return 1;
  return Math.min(1, maxNorm / (norm + 1e-6));
}

const addTrees = jit((a: Params, b: Params) => {
  const out: Params = {};
  for (const k of Object.keys(a)) out[k] = a[k].add(b[k]);
  return out;
});

/** Sums micro-batch gradients (each loss already carries its share of the normaliser). */
export class GradAccumulator {
  private sum: Params | null = null;
  count = 0;
  /**
   * Consumes `grads`. Resolves once the running sum is computed: jax-js is lazy, and an unevaluated chain
   * of additions would keep every micro-batch's gradients alive (Wasm memory grows until it runs out).
   */
  async add(grads: Params): Promise<void> {
    this.sum = this.sum === null ? grads : (addTrees(this.sum, grads) as Params);
    this.count += 1;
    await blockUntilReady(this.sum);
  }
  /** The summed gradients (ownership passes to the caller); resets the accumulator. */
  take(): Params {
    if (this.sum === null) throw new Error("GradAccumulator.take: nothing accumulated");
    const s = this.sum;
    this.sum = null;
    this.count = 0;
    return s;
  }
  dispose(): void {
    if (this.sum) tree.dispose(this.sum);
    this.sum = null;
    this.count = 0;
  }
}

export type SchedulerType = "linear" | "cosine" | "constant" | "constant_with_warmup";
export const SCHEDULER_TYPES: readonly SchedulerType[] = [
  "linear",
  "cosine",
  "constant",
  "constant_with_warmup",
];

export interface ScheduleOptions {
  type: SchedulerType;
  lr: number;
  totalSteps: number;
  warmupSteps?: number;
  /** Used when warmupSteps is not given: ceil(warmupRatio * totalSteps), as in transformers. */
  warmupRatio?: number;
}

export function warmupStepsFor(opts: ScheduleOptions): number {
  if (opts.warmupSteps !== undefined && opts.warmupSteps > 0) return Math.floor(opts.warmupSteps);
  return Math.ceil((opts.warmupRatio ?? 0) * opts.totalSteps);
}

/**
 * Learning rate for optimizer update number `step` (0-based), as transformers' `get_scheduler` gives it:
 * linear/cosine/constant_with_warmup ramp linearly from 0 over the warmup steps; `constant` has no warmup.
 */
export function learningRate(step: number, opts: ScheduleOptions): number {
  const warm = warmupStepsFor(opts);
  const total = opts.totalSteps;
  let f: number;
  if (opts.type === "constant") f = 1;
  else if (step < warm) f = step / Math.max(1, warm);
  else if (opts.type === "constant_with_warmup") f = 1;
  else if (opts.type === "linear") f = Math.max(0, (total - step) / Math.max(1, total - warm));
  else {
    const progress = (step - warm) / Math.max(1, total - warm);
    f = Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
  }
  return opts.lr * f;
}

/** AdamW from TRL/transformers-named settings (`adam_beta1`, `adam_beta2`, `adam_epsilon`, `weight_decay`). */
export function adamwFromSettings(
  params: ConstructorParameters<typeof AdamW>[0],
  c: { adam_beta1: number; adam_beta2: number; adam_epsilon: number; weight_decay: number },
): AdamW {
  return new AdamW(params, {
    beta1: c.adam_beta1,
    beta2: c.adam_beta2,
    eps: c.adam_epsilon,
    weightDecay: c.weight_decay,
  });
}
