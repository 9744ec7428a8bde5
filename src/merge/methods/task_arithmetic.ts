/**
 * Task arithmetic and the generalized form TIES and DARE share (mergekit's `generalized_task_arithmetic`):
 * task vectors (each model minus the base), optionally sparsified (ties.ts, dare.ts), weighted, mixed (by
 * plain sum, or by sign consensus), normalized by the weights, scaled by `lambda`, added to the base. Every
 * tensor operation's result is rounded to the merge dtype, as torch computes in it; whole tensors in float32
 * (sparsification needs whole-tensor statistics such as top-k).
 */
import type { DType } from "../../io/dtype.ts";
import {
  loadAll,
  outBytes,
  roundScalar,
  roundWork,
  type StoredTensor,
  storeChunk,
} from "../kernels/tensors.ts";
import { fr } from "../kernels/torch.ts";
import type { ParamSpec } from "../params.ts";
import {
  type MergeContext,
  type MergeMethod,
  type MethodSpec,
  perInputValues,
  type TensorJob,
} from "./types.ts";

/** Which entries of the `k`-th task vector to keep (null: all). */
export type Sparsify = (delta: Float32Array, density: number, k: number) => Uint8Array | null;

export interface TaskArithmeticOptions {
  weights: number[];
  densities: number[];
  normalize: boolean;
  rescale: boolean;
  lambda: number;
  /** TIES (magnitude) or DARE (random) sparsification; none keeps every entry. */
  sparsify?: Sparsify;
  /** TIES's sign consensus: mix only the entries that agree with the sign of the weighted sum. */
  consensus?: boolean;
}

/** The parameters of the task-arithmetic family, with the method's defaults for normalize and rescale. */
export const taParams = (normalize: boolean, rescale: boolean): ParamSpec[] => [
  { name: "int8_mask", kind: "bool", scope: "shared", default: false },
  { name: "normalize", kind: "bool", scope: "shared", default: normalize },
  { name: "rescale", kind: "bool", scope: "shared", default: rescale },
  { name: "lambda", kind: "float", scope: "shared", default: 1 },
  { name: "weight", kind: "float", scope: "nonBase" },
  { name: "density", kind: "float", scope: "nonBase", default: 1, min: 0, max: 1 },
];

/** Zero the entries a mask drops; with `rescale`, scale the rest so the L1 norm is kept (DARE). */
function applyMask(delta: Float32Array, mask: Uint8Array | null, rescale: boolean, work: DType): void {
  if (!mask) return;
  let before = 0;
  let after = 0;
  for (let i = 0; i < delta.length; i++) {
    const a = Math.abs(delta[i]);
    before += a;
    if (mask[i]) after += a;
    else delta[i] = 0;
  }
  before = fr(before);
  after = fr(after);
  if (!rescale || before < 1e-7 || after < 1e-7) return;
  const scale = fr(before / after);
  for (let i = 0; i < delta.length; i++) delta[i] = delta[i] * scale;
  roundWork(delta, work);
}

/** Weighted task vectors wₖ·sparsify(xₖ − base), each op rounded to `work`. */
function weightedTaskVectors(
  b: Float32Array,
  others: StoredTensor[],
  w: number[],
  o: TaskArithmeticOptions,
  work: DType,
): Float32Array[] {
  const n = b.length;
  return others.map((src, k) => {
    const x = loadAll(src, work);
    for (let i = 0; i < n; i++) x[i] = x[i] - b[i];
    roundWork(x, work);
    if (o.sparsify) applyMask(x, o.sparsify(x, o.densities[k], k), o.rescale, work);
    const wk = w[k];
    for (let i = 0; i < n; i++) x[i] = x[i] * wk;
    return roundWork(x, work);
  });
}

/**
 * Sign consensus: per entry, the majority sign is that of the sum of the weighted task vectors; the mix is
 * the sum of those that agree, the divisor the sum of their weights (0 → 1). Sums accumulate in float32 and
 * are rounded to `work` once (torch's reduced-precision sum).
 */
function consensusMix(deltas: Float32Array[], w: number[], normalize: boolean, work: DType): Float32Array {
  const n = deltas[0].length;
  const mixed = new Float32Array(n);
  const divisor = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let sw = 0;
    for (const d of deltas) sw = fr(sw + d[i]);
    const majority = roundScalar(sw, work) >= 0 ? 1 : -1;
    let acc = 0;
    let div = 0;
    for (let k = 0; k < deltas.length; k++) {
      const d = deltas[k][i];
      if (Math.sign(d) === majority) {
        acc = fr(acc + d);
        div = fr(div + w[k]);
      }
    }
    mixed[i] = acc;
    divisor[i] = div;
  }
  roundWork(mixed, work);
  if (normalize) {
    roundWork(divisor, work);
    for (let i = 0; i < n; i++) mixed[i] = mixed[i] / (divisor[i] === 0 ? 1 : divisor[i]);
    roundWork(mixed, work);
  }
  return mixed;
}

/** Plain mix: the sum of the weighted task vectors, divided by the weights' sum (|sum| < 1e-8 → 1). */
function sumMix(deltas: Float32Array[], w: number[], normalize: boolean, work: DType): Float32Array {
  const mixed = new Float32Array(deltas[0].length);
  for (const d of deltas) for (let i = 0; i < mixed.length; i++) mixed[i] = mixed[i] + d[i];
  roundWork(mixed, work);
  if (normalize) {
    let div = 0;
    for (const x of w) div = fr(div + x);
    div = roundScalar(div, work); // the weights' sum, in the merge dtype
    if (Math.abs(div) < 1e-8) div = 1;
    for (let i = 0; i < mixed.length; i++) mixed[i] = mixed[i] / div;
    roundWork(mixed, work);
  }
  return mixed;
}

/** The generalized task arithmetic of one tensor (base, the other inputs), computed in `work`. */
export function generalTaskArithmetic(
  base: StoredTensor,
  others: StoredTensor[],
  o: TaskArithmeticOptions,
  work: DType,
  out: DType,
): Uint8Array {
  const b = loadAll(base, work);
  const n = b.length;
  const dst = outBytes(n, out);
  if (others.length === 0) {
    storeChunk(b, work, out, dst, 0);
    return dst;
  }
  const w = o.weights.map((x) => roundScalar(x, work));
  const deltas = weightedTaskVectors(b, others, w, o, work);
  const mixed = (o.consensus ? consensusMix : sumMix)(deltas, w, o.normalize, work);
  if (o.lambda !== 1) {
    const l = fr(o.lambda);
    for (let i = 0; i < n; i++) mixed[i] = mixed[i] * l;
    roundWork(mixed, work);
  }
  for (let i = 0; i < n; i++) mixed[i] = b[i] + mixed[i];
  storeChunk(mixed, work, out, dst, 0);
  return dst;
}

/** The settings a job gives every method of the family (its non-base weights and densities, shared values). */
export type TaskSettings = Omit<TaskArithmeticOptions, "sparsify" | "consensus">;

/** The per-tensor function of a variant of the family: how it sparsifies, whether it takes sign consensus. */
export type TaskTensorFn = (
  base: StoredTensor,
  others: StoredTensor[],
  o: TaskSettings,
  work: DType,
  out: DType,
) => Uint8Array;
export const variant =
  (how: Pick<TaskArithmeticOptions, "sparsify" | "consensus">): TaskTensorFn =>
  (base, others, o, work, out) =>
    generalTaskArithmetic(base, others, { ...o, ...how }, work, out);

/** Task arithmetic (no sparsification, no consensus) of one tensor. */
export const taskArithmeticTensor = variant({ consensus: false });

/** The options of a job's tensor: its non-base inputs' weights and densities, the shared settings. */
export function taskOptions(job: TensorJob): TaskSettings {
  return {
    weights: perInputValues(job, "weight", true),
    densities: perInputValues(job, "density", true),
    normalize: job.shared.normalize as boolean,
    rescale: job.shared.rescale as boolean,
    lambda: job.shared.lambda as number,
  };
}

/** A method of the family: a spec plus how it sparsifies (per tensor) and whether it takes sign consensus. */
export function taskArithmeticMethod(
  spec: MethodSpec,
  how: { consensus: boolean; sparsify?: (job: TensorJob, ctx: MergeContext) => Sparsify },
): MergeMethod {
  return {
    ...spec,
    merge(job, ctx) {
      const others = job.inputs.filter((_, k) => k !== job.baseIndex);
      const o = { ...taskOptions(job), consensus: how.consensus, sparsify: how.sparsify?.(job, ctx) };
      return generalTaskArithmetic(job.inputs[job.baseIndex], others, o, job.work, job.out);
    },
  };
}

export const taskArithmetic: MergeMethod = taskArithmeticMethod(
  {
    name: "task_arithmetic",
    prettyName: "Task Arithmetic",
    referenceUrl: "https://arxiv.org/abs/2212.04089",
    params: taParams(false, false),
    baseRequired: true,
    minInputs: 1,
  },
  { consensus: false },
);
