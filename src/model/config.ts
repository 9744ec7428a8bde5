/** Model configuration read from a Hugging Face `config.json` (LLaMA and Qwen2 families). */
import { TtrlError } from "../util/errors.ts";

export const SUPPORTED_ARCHITECTURES = ["LlamaForCausalLM", "Qwen2ForCausalLM"] as const;
export type Architecture = (typeof SUPPORTED_ARCHITECTURES)[number];

export interface RopeScaling {
  type: "llama3";
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

export interface ModelConfig {
  architecture: Architecture;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling?: RopeScaling;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  attentionBias: boolean;
  /** LLaMA's `mlp_bias` (biases on gate/up/down projections); false for Qwen2. */
  mlpBias: boolean;
  bosTokenId?: number;
  eosTokenId: number[];
  raw: Record<string, unknown>;
}

function num(raw: Record<string, unknown>, key: string, file: string, fallback?: number): number {
  const v = raw[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new TtrlError(`${file}: missing "${key}"`);
  }
  if (typeof v !== "number" || !Number.isFinite(v))
    throw new TtrlError(`${file}: "${key}" must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function posInt(raw: Record<string, unknown>, key: string, file: string, fallback?: number): number {
  const v = num(raw, key, file, fallback);
  if (!Number.isInteger(v) || v < 1)
    throw new TtrlError(`${file}: "${key}" must be a positive integer, got ${v}`);
  return v;
}

/** Parse a `config.json` object; `file` names it in error messages. */
export function parseConfig(raw: Record<string, unknown>, file = "config.json"): ModelConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new TtrlError(`${file}: expected a JSON object`);
  const archs = raw.architectures;
  const arch = Array.isArray(archs) && archs.length > 0 ? String(archs[0]) : undefined;
  const modelType = raw.model_type;
  let architecture: Architecture;
  if (arch && (SUPPORTED_ARCHITECTURES as readonly string[]).includes(arch))
    architecture = arch as Architecture;
  else if (!arch && modelType === "llama") architecture = "LlamaForCausalLM";
  else if (!arch && modelType === "qwen2") architecture = "Qwen2ForCausalLM";
  else
    throw new TtrlError(
      `${file}: unsupported architecture ${JSON.stringify(arch ?? modelType ?? null)}; supported: ${SUPPORTED_ARCHITECTURES.join(", ")}`,
    );
  const hiddenSize = posInt(raw, "hidden_size", file);
  const numHeads = posInt(raw, "num_attention_heads", file);
  const numKvHeads = posInt(raw, "num_key_value_heads", file, numHeads);
  if (numHeads % numKvHeads !== 0)
    throw new TtrlError(
      `${file}: num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`,
    );
  const headDim = posInt(raw, "head_dim", file, hiddenSize / numHeads);
  let ropeScaling: RopeScaling | undefined;
  // transformers >= 5 writes `rope_parameters` (with rope_theta inside); older versions `rope_scaling`.
  const rp = raw.rope_parameters as Record<string, unknown> | null | undefined;
  const rs = (rp && typeof rp === "object" ? rp : raw.rope_scaling) as
    | Record<string, unknown>
    | null
    | undefined;
  const ropeTheta =
    rp && typeof rp === "object" && typeof rp.rope_theta === "number"
      ? rp.rope_theta
      : num(raw, "rope_theta", file, 10000);
  if (rs !== undefined && rs !== null) {
    const type = rs.rope_type ?? rs.type;
    if (type === "default" || type === undefined) ropeScaling = undefined;
    else if (type === "llama3")
      ropeScaling = {
        type: "llama3",
        factor: num(rs, "factor", `${file} rope_scaling`),
        lowFreqFactor: num(rs, "low_freq_factor", `${file} rope_scaling`),
        highFreqFactor: num(rs, "high_freq_factor", `${file} rope_scaling`),
        originalMaxPositionEmbeddings: posInt(rs, "original_max_position_embeddings", `${file} rope_scaling`),
      };
    else
      throw new TtrlError(
        `${file}: unsupported rope_scaling type ${JSON.stringify(type)}; supported: llama3`,
      );
  }
  const eosRaw = raw.eos_token_id;
  const eosTokenId =
    eosRaw === undefined || eosRaw === null
      ? []
      : (Array.isArray(eosRaw) ? eosRaw : [eosRaw]).map((x) => {
          if (typeof x !== "number" || !Number.isInteger(x))
            throw new TtrlError(`${file}: eos_token_id must be an integer or a list of integers`);
          return x;
        });
  const bos = raw.bos_token_id;
  const isQwen = architecture === "Qwen2ForCausalLM";
  if (raw.hidden_act !== undefined && raw.hidden_act !== "silu")
    throw new TtrlError(`${file}: unsupported hidden_act ${JSON.stringify(raw.hidden_act)}; supported: silu`);
  return {
    architecture,
    vocabSize: posInt(raw, "vocab_size", file),
    hiddenSize,
    intermediateSize: posInt(raw, "intermediate_size", file),
    numLayers: posInt(raw, "num_hidden_layers", file),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: num(raw, "rms_norm_eps", file, 1e-6),
    ropeTheta,
    ropeScaling,
    maxPositionEmbeddings: posInt(raw, "max_position_embeddings", file, 2048),
    tieWordEmbeddings: Boolean(raw.tie_word_embeddings ?? !isQwen),
    attentionBias: isQwen ? true : Boolean(raw.attention_bias ?? false),
    mlpBias: isQwen ? false : Boolean(raw.mlp_bias ?? false),
    bosTokenId: typeof bos === "number" ? bos : undefined,
    eosTokenId,
    raw,
  };
}

/** Expected parameter names and shapes, in HF's order. */
export function expectedParams(c: ModelConfig): { name: string; shape: number[] }[] {
  const out: { name: string; shape: number[] }[] = [];
  const d = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  out.push({ name: "model.embed_tokens.weight", shape: [c.vocabSize, d] });
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    out.push({ name: `${p}.input_layernorm.weight`, shape: [d] });
    out.push({ name: `${p}.self_attn.q_proj.weight`, shape: [q, d] });
    if (c.attentionBias) out.push({ name: `${p}.self_attn.q_proj.bias`, shape: [q] });
    out.push({ name: `${p}.self_attn.k_proj.weight`, shape: [kv, d] });
    if (c.attentionBias) out.push({ name: `${p}.self_attn.k_proj.bias`, shape: [kv] });
    out.push({ name: `${p}.self_attn.v_proj.weight`, shape: [kv, d] });
    if (c.attentionBias) out.push({ name: `${p}.self_attn.v_proj.bias`, shape: [kv] });
    out.push({ name: `${p}.self_attn.o_proj.weight`, shape: [d, q] });
    // Qwen2 has no o_proj bias; LLaMA's attention_bias covers o_proj too.
    if (c.attentionBias && c.architecture === "LlamaForCausalLM")
      out.push({ name: `${p}.self_attn.o_proj.bias`, shape: [d] });
    out.push({ name: `${p}.post_attention_layernorm.weight`, shape: [d] });
    out.push({ name: `${p}.mlp.gate_proj.weight`, shape: [c.intermediateSize, d] });
    if (c.mlpBias) out.push({ name: `${p}.mlp.gate_proj.bias`, shape: [c.intermediateSize] });
    out.push({ name: `${p}.mlp.up_proj.weight`, shape: [c.intermediateSize, d] });
    if (c.mlpBias) out.push({ name: `${p}.mlp.up_proj.bias`, shape: [c.intermediateSize] });
    out.push({ name: `${p}.mlp.down_proj.weight`, shape: [d, c.intermediateSize] });
    if (c.mlpBias) out.push({ name: `${p}.mlp.down_proj.bias`, shape: [d] });
  }
  out.push({ name: "model.norm.weight", shape: [d] });
  if (!c.tieWordEmbeddings) out.push({ name: "lm_head.weight", shape: [c.vocabSize, d] });
  return out;
}

/** Number of parameters implied by a config. */
export function paramCount(c: ModelConfig): number {
  return expectedParams(c).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
}

/** Inverse RoPE frequencies (float64), with llama3 scaling applied as in transformers. */
export function ropeInvFreq(c: ModelConfig): Float64Array {
  const half = c.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) {
    // transformers computes this in float32: 1 / base ** (arange(0, dim, 2).float() / dim)
    inv[i] = Math.fround(1 / Math.fround(c.ropeTheta ** Math.fround((2 * i) / c.headDim)));
  }
  const rs = c.ropeScaling;
  if (rs?.type === "llama3") {
    const lowWav = rs.originalMaxPositionEmbeddings / rs.lowFreqFactor;
    const highWav = rs.originalMaxPositionEmbeddings / rs.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const f = inv[i];
      const wavelen = (2 * Math.PI) / f;
      let g = wavelen > lowWav ? f / rs.factor : f;
      if (!(wavelen < highWav) && !(wavelen > lowWav)) {
        const smooth =
          (rs.originalMaxPositionEmbeddings / wavelen - rs.lowFreqFactor) /
          (rs.highFreqFactor - rs.lowFreqFactor);
        g = ((1 - smooth) * g) / rs.factor + smooth * g;
      }
      inv[i] = Math.fround(g);
    }
  }
  return inv;
}
