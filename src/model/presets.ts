/** Model presets for `ttrl init-model`: random LLaMA models with the char-tr tokenizer. */
import type { DType } from "../io/dtype.ts";
import { TtrlError } from "../util/errors.ts";
import { parseConfig } from "./config.ts";
import { type Model, modelFromParts, randomParams, saveModel } from "./index.ts";
import { charTrTokenizerFiles, charTrVocabSize } from "./tokenizer.ts";

export const PRESETS = {
  /** ~0.3 M parameters: tests. */
  tiny: { hidden: 96, inter: 256, layers: 3, heads: 6, kvHeads: 2, maxPos: 512, tie: false },
  /** ~4.4 M parameters: the shipped base model's size; samples fast on CPU. */
  small: { hidden: 256, inter: 688, layers: 6, heads: 8, kvHeads: 4, maxPos: 1024, tie: true },
  /** ~29 M parameters: benchmarks. */
  medium: { hidden: 512, inter: 1376, layers: 10, heads: 8, kvHeads: 4, maxPos: 1024, tie: true },
} as const;
export type PresetName = keyof typeof PRESETS;

/** config.json for a preset with the char-tr tokenizer. */
export function presetConfig(name: PresetName): Record<string, unknown> {
  const p = PRESETS[name];
  if (!p) throw new TtrlError(`unknown preset ${name}; known: ${Object.keys(PRESETS).join(", ")}`);
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: charTrVocabSize(),
    hidden_size: p.hidden,
    intermediate_size: p.inter,
    num_hidden_layers: p.layers,
    num_attention_heads: p.heads,
    num_key_value_heads: p.kvHeads,
    head_dim: p.hidden / p.heads,
    hidden_act: "silu",
    max_position_embeddings: p.maxPos,
    initializer_range: 0.02,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    rope_scaling: null,
    attention_bias: false,
    attention_dropout: 0.0,
    mlp_bias: false,
    tie_word_embeddings: p.tie,
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: 0,
    torch_dtype: "float32",
    use_cache: true,
    transformers_version: "4.57.0",
  };
}

/** A random char-tr LLaMA model in memory. */
export async function initPresetModel(name: PresetName, seed: number | string = 0, dir = ""): Promise<Model> {
  const raw = presetConfig(name);
  const { tokenizerJson, tokenizerConfig } = charTrTokenizerFiles(PRESETS[name].maxPos);
  const assets = {
    "tokenizer.json": `${JSON.stringify(tokenizerJson, null, 2)}\n`,
    "tokenizer_config.json": `${JSON.stringify(tokenizerConfig, null, 2)}\n`,
    "generation_config.json": `${JSON.stringify({ bos_token_id: 1, eos_token_id: 2, pad_token_id: 0 }, null, 2)}\n`,
  };
  const { initRuntime } = await import("../runtime/jax.ts");
  await initRuntime();
  return modelFromParts(dir, raw, assets, randomParams(parseConfig(raw), seed));
}

/** Write a random preset model folder (HF layout). */
export async function writePresetModel(
  name: PresetName,
  out: string,
  opts: { seed?: number; dtype?: DType } = {},
): Promise<Model> {
  const model = await initPresetModel(name, opts.seed ?? 0, out);
  await saveModel(model, out, { dtype: opts.dtype ?? "F32" });
  return model;
}
