/**
 * What a merge method is: a spec (its parameters and input contract, checked when the merge is planned)
 * and a per-tensor function. Each method lives in its own file of this folder and is listed once in
 * `index.ts`; `planMerge` / `runMerge` (../index.ts) dispatch through that registry.
 */
import type { DType } from "../../io/dtype.ts";
import type { Rng } from "../../util/rng.ts";
import type { StoredTensor } from "../kernels/tensors.ts";
import type { BufferPool, SlerpWorkers } from "../kernels/workers.ts";
import type { ParamSpec } from "../params.ts";

export interface MethodSpec {
  name: string;
  prettyName: string;
  referenceUrl: string;
  params: ParamSpec[];
  baseRequired: boolean;
  minInputs: number;
  maxInputs?: number;
}

/** Parameters resolved for one output tensor (as planned, before anything is read). */
export interface TensorParams {
  name: string;
  /** Index of the base model among the inputs, -1 if none. */
  baseIndex: number;
  shared: Record<string, number | boolean>;
  perInput: Record<string, number | boolean>[];
}

/** One output tensor to compute: its parameters, its inputs as stored, and its dtypes. */
export interface TensorJob extends TensorParams {
  inputs: StoredTensor[];
  /** The dtype inputs are brought to and results rounded to. */
  work: DType;
  /** The dtype the result is encoded in. */
  out: DType;
}

/** What the runner lends a method: kernel-memory buffers, the SLERP worker threads, the seeded generator. */
export interface MergeContext {
  pool: BufferPool;
  workers: SlerpWorkers;
  /** The merge's generator: fork it per tensor (`rng.fork(job.name)`), never draw from it directly. */
  rng: Rng;
}

export interface MergeMethod extends MethodSpec {
  /** Settings that cannot give a finite merge, refused before anything is written: a message, or null. */
  check?(t: TensorParams): string | null;
  /** The merged tensor's bytes, encoded in `job.out`. */
  merge(job: TensorJob, ctx: MergeContext): Uint8Array | Promise<Uint8Array>;
}

/** The per-input values of parameter `name`, leaving the base out when `nonBase`. */
export function perInputValues(t: TensorParams, name: string, nonBase = false): number[] {
  return t.perInput.filter((_, k) => !nonBase || k !== t.baseIndex).map((p) => p[name] as number);
}
