/**
 * What the trainers need from a language model, as one small interface: a differentiable per-token
 * log-prob function, a sampler, a tokenizer, and save/load of the weights. `enginePolicy` adapts the model
 * engine (src/model); tests plug in tiny models written directly with jax-js.
 */
import type { Params } from "../model/forward.ts";
import type { Generation, SampleOptions as SamplerOptions, SamplerTokenizer } from "../model/sampler.ts";
import type { Array as JArray } from "../runtime/jax.ts";
import type { PackedPrefixBatch } from "./batch.ts";

/** The sampler's tokenizer plus the special ids the trainers pad and stop with. */
export interface PolicyTokenizer extends SamplerTokenizer {
  eosTokenIds: number[];
  padTokenId: number;
  bosTokenId?: number | null;
}

/** The sampler's options, with one seed per prompt row required (samples are reproducible). */
export type SampleOptions = SamplerOptions & { seeds: number[] };

/** A sampled completion with its token log-probs (the model sampler's `Generation`). */
export type Sample = Generation;

export interface Policy {
  tokenizer: PolicyTokenizer;
  /** Longest sequence (prompt + completion) the model accepts. */
  maxContext: number;
  /** Current trainable weights (owned by the trainer once training starts). */
  params: Params;
  /**
   * Differentiable: log p(targets[b,t] | inputIds[b,≤t]) as f32 [B,T]. Consumes its arguments (jax-js
   * convention) and must be traceable under jit(valueAndGrad(...)).
   */
  logprobs(params: Params, inputIds: JArray, targets: JArray): JArray;
  /** The model's `Sampler.generate` with the weights `params` (not consumed). */
  generate(params: Params, prompts: number[][], opts: SampleOptions): Promise<Sample[]>;
  /** Write `params` (not consumed) as a loadable model folder, float32 unless `dtype` says otherwise. */
  save(params: Params, dir: string, opts?: { dtype?: "F32" | "F16" | "BF16" }): Promise<void>;
  /**
   * Rough Wasm memory (bytes) one token of a [B,T] training micro-batch needs (forward + backward);
   * trainers shrink micro-batches to stay under MICRO_BATCH_BYTES (1 GiB, train/batch.ts). Optional (no limit when absent).
   */
  bytesPerToken?(T: number): number;
  /** Read the weights of a folder written by `save` (exact for F32). */
  loadParams(dir: string): Promise<Params>;
  /**
   * Optional: log-probs of completions that share prompts, each distinct prompt run once (batches from
   * `packPrefixSequences`). `inputs` turns a packed batch into the argument tree of `logprobs`, which is
   * differentiable and traceable like `Policy.logprobs` and returns f32 [B,Tc] aligned with the batch's
   * mask. GRPO uses it when present.
   */
  prefix?: {
    inputs(batch: PackedPrefixBatch): PrefixInputs;
    logprobs(params: Params, inputs: PrefixInputs): JArray;
  };
}

/** Device arrays of a shared-prompt batch (a policy-defined tree). */
export type PrefixInputs = Record<string, JArray>;
