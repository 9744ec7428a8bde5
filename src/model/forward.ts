/**
 * The transformer forward pass (LLaMA / Qwen2) on jax-js arrays.
 *
 * Ownership follows jax-js: every function here consumes its array arguments, including the params tree.
 * Callers that keep their params pass `tree.ref(params)`.
 */
import "./polyfills.ts";
import { type Array as JArray, nn, numpy as np, tree } from "@jax-js/jax";
import { type ModelConfig, ropeInvFreq } from "./config.ts";

export type Params = Record<string, JArray>;

/** Vocabularies up to this size embed by one-hot matmul (differentiable under jit(grad)); larger ones gather. */
export const ONE_HOT_EMBED_MAX_VOCAB = 8192;

function linear(x: JArray, w: JArray, b?: JArray): JArray {
  // w is [out, in] (HF layout).
  const y = np.matmul(x, w.transpose([1, 0]));
  return b ? y.add(b) : y;
}

function rmsNorm(x: JArray, w: JArray, eps: number): JArray {
  const variance = np.square(x.ref).mean(-1, { keepdims: true });
  return x.mul(np.reciprocal(np.sqrt(variance.add(eps)))).mul(w);
}

/**
 * RoPE (HF's rotate_half convention). x: [..., T, H, D]; cos/sin broadcastable to [..., T, 1, D/2].
 */
function rope(x: JArray, cos: JArray, sin: JArray, headDim: number): JArray {
  const half = headDim / 2;
  const nd = x.ndim;
  const lo: ([] | [number, number])[] = Array.from({ length: nd }, () => [] as []);
  const hi: ([] | [number, number])[] = Array.from({ length: nd }, () => [] as []);
  lo[nd - 1] = [0, half];
  hi[nd - 1] = [half, headDim];
  const x1 = x.ref.slice(...lo);
  const x2 = x.slice(...hi);
  const a = x1.ref.mul(cos.ref).sub(x2.ref.mul(sin.ref));
  const b = x2.mul(cos).add(x1.mul(sin));
  return np.concatenate([a, b], -1);
}

/** cos/sin tables for integer positions `pos` (any shape S): returns [...S, 1, D/2] each (float32). */
export function ropeTables(config: ModelConfig, pos: JArray): [JArray, JArray] {
  const inv = ropeInvFreq(config);
  const invArr = np.array(Float32Array.from(inv));
  const ang = pos
    .astype(np.float32)
    .reshape([...pos.shape, 1, 1])
    .mul(invArr);
  return [np.cos(ang.ref), np.sin(ang)];
}

function embed(params: Params, config: ModelConfig, ids: JArray, differentiable: boolean): JArray {
  const w = params["model.embed_tokens.weight"].ref;
  if (differentiable && config.vocabSize <= ONE_HOT_EMBED_MAX_VOCAB)
    return np.matmul(nn.oneHot(ids, config.vocabSize), w);
  return np.take(w, ids, 0);
}

function lmHeadWeight(params: Params, config: ModelConfig): JArray {
  return config.tieWordEmbeddings ? params["model.embed_tokens.weight"].ref : params["lm_head.weight"].ref;
}

function optional(params: Params, name: string): JArray | undefined {
  const p = params[name];
  return p ? p.ref : undefined;
}

interface AttnIO {
  /** Returns attention output [B, T, H, D] given q [B,T,H,D], k/v [B,T,Hkv,D] of this layer. */
  attend(layer: number, q: JArray, k: JArray, v: JArray): JArray;
}

/** The decoder stack: ids [B,T] → final-normed hidden [B,T,d]. Consumes ids, cos, sin; borrows params. */
function decoder(
  params: Params,
  config: ModelConfig,
  ids: JArray,
  cos: JArray,
  sin: JArray,
  io: AttnIO,
  differentiable: boolean,
): JArray {
  const [B, T] = ids.shape;
  const { numHeads: H, numKvHeads: K, headDim: D, rmsNormEps: eps } = config;
  let h = embed(params, config, ids, differentiable);
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}`;
    const x = rmsNorm(h.ref, params[`${p}.input_layernorm.weight`].ref, eps);
    const q = linear(
      x.ref,
      params[`${p}.self_attn.q_proj.weight`].ref,
      optional(params, `${p}.self_attn.q_proj.bias`),
    ).reshape([B, T, H, D]);
    const k = linear(
      x.ref,
      params[`${p}.self_attn.k_proj.weight`].ref,
      optional(params, `${p}.self_attn.k_proj.bias`),
    ).reshape([B, T, K, D]);
    const v = linear(
      x,
      params[`${p}.self_attn.v_proj.weight`].ref,
      optional(params, `${p}.self_attn.v_proj.bias`),
    ).reshape([B, T, K, D]);
    const qr = rope(q, cos.ref, sin.ref, D);
    const kr = rope(k, cos.ref, sin.ref, D);
    const att = io.attend(l, qr, kr, v).reshape([B, T, H * D]);
    const o = linear(
      att,
      params[`${p}.self_attn.o_proj.weight`].ref,
      optional(params, `${p}.self_attn.o_proj.bias`),
    );
    h = h.add(o);
    const x2 = rmsNorm(h.ref, params[`${p}.post_attention_layernorm.weight`].ref, eps);
    const g = linear(
      x2.ref,
      params[`${p}.mlp.gate_proj.weight`].ref,
      optional(params, `${p}.mlp.gate_proj.bias`),
    );
    const u = linear(x2, params[`${p}.mlp.up_proj.weight`].ref, optional(params, `${p}.mlp.up_proj.bias`));
    const m = linear(
      nn.silu(g).mul(u),
      params[`${p}.mlp.down_proj.weight`].ref,
      optional(params, `${p}.mlp.down_proj.bias`),
    );
    h = h.add(m);
  }
  cos.dispose();
  sin.dispose();
  return rmsNorm(h, params["model.norm.weight"].ref, eps);
}

/** Full causal forward: ids int32 [B,T] → logits f32 [B,T,V]. Consumes params and ids. */
export function forwardLogits(
  params: Params,
  config: ModelConfig,
  ids: JArray,
  differentiable = false,
): JArray {
  const T = ids.shape[1];
  const [cos, sin] = ropeTables(config, np.arange(0, T, 1, { dtype: np.int32 }));
  const h = decoder(
    params,
    config,
    ids,
    cos,
    sin,
    { attend: (_l, q, k, v) => nn.dotProductAttention(q, k, v, { isCausal: true }) },
    differentiable,
  );
  const logits = np.matmul(h, lmHeadWeight(params, config).transpose([1, 0]));
  tree.dispose(params);
  return logits;
}

/**
 * Per-token log-probs of `targets` given `inputIds` (both int32 [B,T]) → f32 [B,T]. Differentiable and
 * jit-friendly (uses logSoftmax · oneHot, no gather). Consumes all its array arguments, params included:
 * pass `tree.ref(params)` to keep them.
 */
export function tokenLogprobs(
  params: Params,
  config: ModelConfig,
  inputIds: JArray,
  targets: JArray,
): JArray {
  const logits = forwardLogits(params, config, inputIds, true);
  const lp = nn.logSoftmax(logits, -1);
  return lp.mul(nn.oneHot(targets, config.vocabSize)).sum(-1);
}

export type StepOut = { logits: JArray; cache: KvCache };

/** KV cache: one [B, Tmax, Hkv, D] array per layer for keys and for values. */
export type KvCache = {
  k: JArray[];
  v: JArray[];
};

/**
 * Prefill: ids int32 [B,P] (right-padded prompts), last int32 [B] (index of each row's last prompt token)
 * → logits of the next token [B,V] and a KV cache of length tmax (positions ≥ P zero). Consumes its arrays.
 */
export function prefill(
  params: Params,
  config: ModelConfig,
  ids: JArray,
  last: JArray,
  tmax: number,
): StepOut {
  const [B, P] = ids.shape;
  const [cos, sin] = ropeTables(config, np.arange(0, P, 1, { dtype: np.int32 }));
  const cache: KvCache = { k: [], v: [] };
  const padTo = (x: JArray) =>
    np.pad(x, [
      [0, 0],
      [0, tmax - P],
      [0, 0],
      [0, 0],
    ]);
  const h = decoder(
    params,
    config,
    ids,
    cos,
    sin,
    {
      attend: (_l, q, k, v) => {
        cache.k.push(padTo(k.ref));
        cache.v.push(padTo(v.ref));
        return nn.dotProductAttention(q, k, v, { isCausal: true });
      },
    },
    false,
  );
  // Pick each row's last prompt position: sum over P of h * onehot(last).
  const sel = nn.oneHot(last, P).reshape([B, P, 1]);
  const hl = h.mul(sel).sum(1); // [B, d]
  const logits = np.matmul(hl, lmHeadWeight(params, config).transpose([1, 0]));
  tree.dispose(params);
  return { logits, cache };
}

/**
 * One decoding step: tokens int32 [B] at positions pos int32 [B] → next-token logits [B,V] and the updated
 * cache (the new key/value written at each row's own position). Consumes its arrays.
 */
export function decodeStep(
  params: Params,
  config: ModelConfig,
  cache: KvCache,
  tokens: JArray,
  pos: JArray,
): StepOut {
  const B = tokens.shape[0];
  const tmax = cache.k[0].shape[1];
  const [cos, sin] = ropeTables(config, pos.ref.reshape([B, 1]));
  const t = np.arange(0, tmax, 1, { dtype: np.int32 }).reshape([1, tmax]);
  const p2 = pos.reshape([B, 1]);
  const write = t.ref.equal(p2.ref).reshape([B, tmax, 1, 1]);
  const mask = t.lessEqual(p2).reshape([B, 1, 1, tmax]);
  const out: KvCache = { k: [], v: [] };
  const h = decoder(
    params,
    config,
    tokens.reshape([B, 1]),
    cos,
    sin,
    {
      attend: (l, q, k, v) => {
        const kc = np.where(write.ref, k, cache.k[l]);
        const vc = np.where(write.ref, v, cache.v[l]);
        out.k.push(kc.ref);
        out.v.push(vc.ref);
        return nn.dotProductAttention(q, kc, vc, { mask: mask.ref });
      },
    },
    false,
  );
  write.dispose();
  mask.dispose();
  const logits = np.matmul(h.reshape([B, config.hiddenSize]), lmHeadWeight(params, config).transpose([1, 0]));
  tree.dispose(params);
  return { logits, cache: out };
}
