/**
 * The engine seam shared by `ttrl eval` (local backend) and `ttrl serve`: the model's `Sampler`
 * (src/model/sampler.ts: a tokenizer plus a batched `generate` with one seed per sequence, so a sequence's
 * output never depends on what it was batched with) with a name. `loadEngine(dir)` adapts the real model
 * engine (src/model); tests use a deterministic fake (test/eval/fake-engine.ts).
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Completion, SampleOptions, Sampler, SamplerTokenizer } from "../model/sampler.ts";
import { TtrlError } from "../util/errors.ts";

export interface EngineGenerateOptions extends SampleOptions {
  /** Streaming: after each decoding step, the token each running sequence sampled and its raw logits [V]. */
  onStep?: (sampled: { seq: number; token: number; logits: Float32Array }[]) => void | Promise<void>;
  /** Cancellation: a sequence for which this returns true stops early (its client went away). */
  cancelled?: (seq: number) => boolean;
}

export type EngineGeneration = Completion;

/** The sampler's tokenizer, with a chat template (eval and serve format chats). */
export type EngineTokenizer = SamplerTokenizer & Required<Pick<SamplerTokenizer, "applyChatTemplate">>;

export interface Engine extends Sampler<EngineGeneration> {
  /** Model name reported by `serve` and recorded by `eval`. */
  name: string;
  /** Model folder, when loaded from disk. */
  dir?: string;
  tokenizer: EngineTokenizer;
  generate(prompts: number[][], opts: EngineGenerateOptions): Promise<EngineGeneration[]>;
  /**
   * Per-token log-probs of whole sequences (entry i = log p(token i+1 | tokens ≤ i), as `ttrl logprob`)
   * with the `topN` most likely tokens at each position; absent on engines that cannot score.
   */
  score?(seqs: number[][], topN: number): Promise<{ logprobs: number[]; top: [number, number][][] }[]>;
}

/** Throw a clear error unless `dir` looks like a model folder (config + weights + tokenizer). */
export function checkModelDir(dir: string): void {
  if (!existsSync(dir)) throw new TtrlError(`${dir}: model folder not found`);
  if (!statSync(dir).isDirectory()) throw new TtrlError(`${dir}: not a folder (expected a model folder)`);
  const missing: string[] = [];
  if (!existsSync(join(dir, "config.json"))) missing.push("config.json");
  if (!existsSync(join(dir, "model.safetensors")) && !existsSync(join(dir, "model.safetensors.index.json")))
    missing.push("model.safetensors (or model.safetensors.index.json)");
  if (!existsSync(join(dir, "tokenizer.json"))) missing.push("tokenizer.json");
  if (missing.length)
    throw new TtrlError(`${dir}: not a model folder (missing ${missing.join(", ")}; expected the HF layout)`);
}

/** Load a model folder through the model engine (src/model). */
export async function loadEngine(
  dir: string,
  opts: { name?: string; threads?: number } = {},
): Promise<Engine> {
  checkModelDir(dir);
  // Imported lazily: loading jax-js is only paid by commands that run a model.
  const runtime = await import("../runtime/jax.ts");
  const mod = await import("../model/index.ts");
  await runtime.initRuntime({ threads: opts.threads });
  let model: Awaited<ReturnType<typeof mod.loadModel>>;
  try {
    model = await mod.loadModel(dir);
  } catch (e) {
    if (e instanceof TtrlError) throw e;
    throw new TtrlError(`${dir}: cannot load model: ${(e as Error).message}`, { cause: e });
  }
  const name = opts.name ?? dir.replace(/\/+$/, "").split("/").pop() ?? dir;
  return {
    name,
    dir,
    tokenizer: model.tokenizer,
    maxContext: model.config.maxPositionEmbeddings,
    async generate(prompts, o) {
      const gens = await mod.generate(model, prompts, o);
      return gens.map((g) => ({ tokens: g.tokens, text: g.text, finishReason: g.finishReason }));
    },
    async score(seqs, topN) {
      const { scoreWithTop } = await import("../model/top-logprobs.ts");
      return scoreWithTop(model, seqs, topN);
    },
  };
}
