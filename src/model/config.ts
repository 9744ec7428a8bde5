/** Model configuration read from a Hugging Face `config.json` (LLaMA and Qwen2 families). */
import { totalmem } from "node:os";
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
export function parseConfig(
  raw: Record<string, unknown>,
  file = "config.json",
  opts: { maxBytes?: number } = {},
): ModelConfig {
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
  // Defaults are transformers' LlamaConfig / Qwen2Config ones (both untied; Qwen2's context is 32768).
  const d = ARCH_DEFAULTS[architecture];
  const rmsNormEps = num(raw, "rms_norm_eps", file, d.rms_norm_eps);
  if (!(rmsNormEps > 0))
    throw new TtrlError(`${file}: "rms_norm_eps" must be > 0 (it divides the RMS), got ${rmsNormEps}`);
  if (!(ropeTheta > 0) || !Number.isFinite(ropeTheta))
    throw new TtrlError(`${file}: "rope_theta" must be a positive number (the RoPE base), got ${ropeTheta}`);
  if (headDim % 2 !== 0) throw new TtrlError(`${file}: "head_dim" must be even for RoPE, got ${headDim}`);
  const config: ModelConfig = {
    architecture,
    vocabSize: posInt(raw, "vocab_size", file),
    hiddenSize,
    intermediateSize: posInt(raw, "intermediate_size", file),
    numLayers: posInt(raw, "num_hidden_layers", file),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps,
    ropeTheta,
    ropeScaling,
    maxPositionEmbeddings: posInt(raw, "max_position_embeddings", file, d.max_position_embeddings),
    tieWordEmbeddings: bool(raw, "tie_word_embeddings", file, d.tie_word_embeddings),
    attentionBias: isQwen ? true : bool(raw, "attention_bias", file, false),
    mlpBias: isQwen ? false : bool(raw, "mlp_bias", file, false),
    bosTokenId: typeof bos === "number" ? bos : undefined,
    eosTokenId,
    raw,
  };
  checkModelSize(config, file, opts.maxBytes ?? defaultMaxModelBytes());
  return config;
}

/** transformers' defaults for the keys a config.json may leave out. */
export const ARCH_DEFAULTS: Record<
  Architecture,
  { tie_word_embeddings: boolean; rms_norm_eps: number; max_position_embeddings: number }
> = {
  LlamaForCausalLM: { tie_word_embeddings: false, rms_norm_eps: 1e-6, max_position_embeddings: 2048 },
  Qwen2ForCausalLM: { tie_word_embeddings: false, rms_norm_eps: 1e-6, max_position_embeddings: 32768 },
};

function bool(raw: Record<string, unknown>, key: string, file: string, fallback: boolean): boolean {
  const v = raw[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "boolean")
    throw new TtrlError(`${file}: "${key}" must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * Parameter count in closed form (no per-tensor list: a config with a billion layers is refused by
 * `checkModelSize` before anything is built). Equals `paramCount`.
 */
export function paramCountOf(c: ModelConfig): { embed: number; perLayer: number; total: number } {
  const d = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const f = c.intermediateSize;
  let perLayer = 2 * d + q * d + 2 * kv * d + d * q + 3 * f * d;
  if (c.attentionBias) perLayer += q + 2 * kv + (c.architecture === "LlamaForCausalLM" ? d : 0);
  if (c.mlpBias) perLayer += 2 * f + d;
  const embed = c.vocabSize * d * (c.tieWordEmbeddings ? 1 : 2) + d;
  return { embed, perLayer, total: embed + c.numLayers * perLayer };
}

/** The most float32 parameter bytes a model may need: this machine's memory. */
export function defaultMaxModelBytes(): number {
  return totalmem();
}

function fmtBytes(n: number): string {
  const units = ["bytes", "KB", "MB", "GB", "TB", "PB", "EB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i === 0 ? n : n.toPrecision(3)} ${units[i]}`;
}

/**
 * Refuse a config whose float32 parameters cannot fit in `maxBytes` (the engine holds every parameter as
 * float32), naming the fields that make it large and the computed size — before anything is allocated.
 */
export function checkModelSize(c: ModelConfig, file: string, maxBytes: number): void {
  const { embed, perLayer, total } = paramCountOf(c);
  const bytes = total * 4;
  if (bytes <= maxBytes && Number.isSafeInteger(total)) return;
  const layers = c.numLayers * perLayer;
  const why =
    layers >= embed
      ? `num_hidden_layers (${c.numLayers}) × ${perLayer.toLocaleString("en-US")} parameters per layer (hidden_size ${c.hiddenSize}, intermediate_size ${c.intermediateSize})`
      : `vocab_size (${c.vocabSize}) × hidden_size (${c.hiddenSize})${c.tieWordEmbeddings ? "" : " × 2 (untied lm_head)"}`;
  throw new TtrlError(
    `${file}: the model is too large: ${why} gives ${total.toExponential(3)} parameters in all, ${fmtBytes(bytes)} as float32, more than the ${fmtBytes(maxBytes)} this machine's memory allows`,
  );
}

/**
 * A checkpoint whose `lm_head.weight` disagrees with `tie_word_embeddings`. Returns a warning for a tied
 * config whose checkpoint also stores a different `lm_head.weight` (transformers ties it to the embedding
 * and ignores the stored head, and so do we, but the user should know); throws for an untied config
 * without `lm_head.weight` (transformers would start a random head: every log-prob would be noise).
 * `headDiffers` is undefined when there is no `lm_head.weight`.
 */
export function checkTiedHead(
  c: ModelConfig,
  ckpt: { hasLmHead: boolean; headDiffers?: boolean },
  file: string,
): string | null {
  const explicit = c.raw.tie_word_embeddings !== undefined && c.raw.tie_word_embeddings !== null;
  const said = explicit
    ? `tie_word_embeddings is ${c.tieWordEmbeddings}`
    : `tie_word_embeddings is not set (${c.architecture}'s default in transformers: ${c.tieWordEmbeddings})`;
  if (!c.tieWordEmbeddings && !ckpt.hasLmHead)
    throw new TtrlError(
      `${file}: ${said} but the checkpoint has no lm_head.weight; set "tie_word_embeddings": true if the output layer shares model.embed_tokens.weight`,
    );
  if (c.tieWordEmbeddings && ckpt.hasLmHead && ckpt.headDiffers)
    return `${file}: ${said} but the checkpoint's lm_head.weight differs from model.embed_tokens.weight; it is ignored (the embedding is used, as transformers does); set "tie_word_embeddings": false to use it`;
  return null;
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
