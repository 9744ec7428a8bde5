/**
 * The transformer forward pass (LLaMA / Qwen2) on jax-js arrays.
 *
 * Ownership follows jax-js: every function here consumes its array arguments, including the params tree.
 * Callers that keep their params pass `tree.ref(params)`.
 */
import { type Array as JArray, lax, matmulDtype, nn, numpy as np, tree } from "../runtime/jax.ts";
import { type ModelConfig, ropeInvFreq } from "./config.ts";

export type Params = Record<string, JArray>;

/**
 * The model's matmuls (projections, attention scores and values, the LM head), in the runtime's compute
 * dtype (`--compute-dtype`, src/runtime/device.ts, fixed once the runtime starts), read as each forward is
 * traced. float32: `np.matmul`, exactly. float16 (mixed precision, WebGPU with shader-f16 only): both
 * inputs cast to float16, multiplied (jax-js sums float16 products in a float32 accumulator and rounds the
 * result to float16), and the result cast back to float32 — so RMSNorm, RoPE, softmax, log-softmax, losses
 * and every array read back to JS (Node 20 has no Float16Array) stay float32, and the parameters too.
 * Differentiated forwards trace in float32 (jax-js cannot differentiate a cast: `float32Matmuls` in
 * src/runtime/jax.ts), so float16 speeds up sampling and scoring, not the update. The selection matmuls
 * that only copy rows (`selectRows`, `flushRecent`) are exact in float32 and stay there.
 */
function mm(a: JArray, b: JArray): JArray {
  if (matmulDtype() === "float32") return np.matmul(a, b);
  return np.matmul(a.astype(np.float16), b.astype(np.float16)).astype(np.float32);
}

function linear(x: JArray, w: JArray, b?: JArray): JArray {
  // w is [out, in] (HF layout). Flatten leading dims: 2-D matmuls get jax-js's tiled kernel.
  const lead = x.shape.slice(0, -1);
  const n = lead.reduce((a, c) => a * c, 1);
  const y = mm(x.reshape([n, x.shape[x.ndim - 1]]), w.transpose([1, 0]));
  const out = (b ? y.add(b) : y).reshape([...lead, w.shape[0]]);
  return out;
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

/**
 * cos/sin RoPE tables computed in JS for integer positions: each [n, 1, D/2] (float32), as transformers
 * computes them (angle = float32(pos * inv_freq), then cos/sin). Computing them outside the graph keeps jit
 * from fusing (and recomputing) the trigonometry into every kernel that reads the rotated keys.
 */
export function ropeTablesJs(config: ModelConfig, positions: ArrayLike<number>): [JArray, JArray] {
  const inv = ropeInvFreq(config);
  const half = inv.length;
  const n = positions.length;
  const c = new Float32Array(n * half);
  const s = new Float32Array(n * half);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < half; j++) {
      const ang = Math.fround(positions[i] * inv[j]);
      c[i * half + j] = Math.cos(ang);
      s[i * half + j] = Math.sin(ang);
    }
  return [np.array(c).reshape([n, 1, half]), np.array(s).reshape([n, 1, half])];
}

const range = (n: number) => Int32Array.from({ length: n }, (_, i) => i);

/**
 * Token embedding by gather. Its gradient is a scatter-add of the materialised hidden-state gradient; the
 * one-hot matmul used before (oneHot(ids) @ W) made jit fuse the whole RMSNorm backward into the weight
 * gradient's reduction and recompute it once per vocabulary entry (~45% of a tiny model's training step).
 */
function embed(params: Params, ids: JArray): JArray {
  return np.take(params["model.embed_tokens.weight"].ref, ids, 0);
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
): JArray {
  const [B, T] = ids.shape;
  const { numHeads: H, numKvHeads: K, headDim: D, rmsNormEps: eps } = config;
  let h = embed(params, ids);
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}`;
    const x = rmsNorm(h.ref, params[`${p}.input_layernorm.weight`].ref, eps);
    const q = proj(params, `${p}.self_attn.q_proj`, x.ref).reshape([B, T, H, D]);
    const k = proj(params, `${p}.self_attn.k_proj`, x.ref).reshape([B, T, K, D]);
    const v = proj(params, `${p}.self_attn.v_proj`, x).reshape([B, T, K, D]);
    const qr = rope(q, cos.ref, sin.ref, D);
    const kr = rope(k, cos.ref, sin.ref, D);
    const att = io.attend(l, qr, kr, v).reshape([B, T, H * D]);
    h = mlpBlock(params, p, h.add(proj(params, `${p}.self_attn.o_proj`, att)), eps);
  }
  cos.dispose();
  sin.dispose();
  return rmsNorm(h, params["model.norm.weight"].ref, eps);
}

/** Keys and values [B,S,K,D] that queries attend to, and which of them each query sees. */
interface KvBlock {
  k: JArray;
  v: JArray;
  /** bool, broadcastable to the scores [B,K,G,T,S]. */
  mask: JArray;
}

/**
 * Grouped-query attention of q [B,T,H,D] over one or more key/value blocks with one softmax across all of
 * them (query head h reads kv head floor(h / G), HF's repeat_kv), with batched matmuls (faster on the Wasm
 * backend than nn.dotProductAttention's repeat + einsum) → [B,T,H,D].
 * The softmax's division by its sum comes after the value matmuls, on the [B,T,H,D] layout: that
 * elementwise op materialises the head-transposed output, so the o_proj matmul reads a contiguous
 * array (jax-js's matmul on a transposed view is ~25× slower) and the division touches T×D values per
 * head instead of T×S.
 */
function attention(q: JArray, blocks: KvBlock[], config: ModelConfig): JArray {
  const [B, T, H, D] = q.shape;
  const K = config.numKvHeads;
  const G = H / K;
  const qg = q
    .transpose([0, 2, 1, 3])
    .reshape([B, K, G * T, D])
    .mul(1 / Math.sqrt(D));
  const scores = blocks.map(({ k, mask }) => {
    const S = k.shape[1];
    const s = mm(qg.ref, k.transpose([0, 2, 3, 1])).reshape([B, K, G, T, S]);
    return np.where(mask, s, Number.NEGATIVE_INFINITY);
  });
  qg.dispose();
  const m = lax.stopGradient(
    scores.map((s) => s.ref.max(-1, { keepdims: true })).reduce((a, b) => np.maximum(a, b)),
  );
  const e = scores.map((s) => np.exp(s.sub(m.ref)));
  m.dispose();
  const z = e.map((x) => x.ref.sum(-1, { keepdims: true })).reduce((a, b) => a.add(b)); // [B,K,G,T,1]
  const o = e
    .map((x, i) => mm(x.reshape([B, K, G * T, x.shape[4]]), blocks[i].v.transpose([0, 2, 1, 3])))
    .reduce((a, b) => a.add(b))
    .reshape([B, K, G, T, D]); // head h = k*G + g
  return o
    .transpose([0, 3, 1, 2, 4])
    .div(z.transpose([0, 3, 1, 2, 4]))
    .reshape([B, T, H, D]);
}

/** Causal attention over a whole sequence: q [B,T,H,D], k/v [B,T,K,D] → [B,T,H,D]. */
function causalAttention(q: JArray, k: JArray, v: JArray, config: ModelConfig): JArray {
  const T = q.shape[1];
  return attention(q, [{ k, v, mask: np.tri(T, T, 0, { dtype: np.bool }) }], config);
}

/** Full causal forward: ids int32 [B,T] → logits f32 [B,T,V]. Consumes params and ids. Differentiable. */
export function forwardLogits(params: Params, config: ModelConfig, ids: JArray): JArray {
  const T = ids.shape[1];
  const [cos, sin] = ropeTablesJs(config, range(T));
  const h = decoder(params, config, ids, cos, sin, {
    attend: (_l, q, k, v) => causalAttention(q, k, v, config),
  });
  const logits = mm(h, lmHeadWeight(params, config).transpose([1, 0]));
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
  const logits = forwardLogits(params, config, inputIds);
  const lp = nn.logSoftmax(logits, -1);
  return lp.mul(nn.oneHot(targets, config.vocabSize)).sum(-1);
}

export type StepOut = { logits: JArray; cache: KvCache };

/** KV cache: one [B, Hkv, Tmax, D] array per layer for keys and for values. */
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
  const [cos, sin] = ropeTablesJs(config, range(P));
  const cache: KvCache = { k: [], v: [] };
  // Cache layout [B, Hkv, Tmax, D]: decode attention is then batched matmuls.
  const padTo = (x: JArray) =>
    np.pad(x.transpose([0, 2, 1, 3]), [
      [0, 0],
      [0, 0],
      [0, tmax - P],
      [0, 0],
    ]);
  const h = decoder(params, config, ids, cos, sin, {
    attend: (_l, q, k, v) => {
      cache.k.push(padTo(k.ref));
      cache.v.push(padTo(v.ref));
      return causalAttention(q, k, v, config);
    },
  });
  // Pick each row's last prompt position: sum over P of h * onehot(last).
  const sel = nn.oneHot(last, P).reshape([B, P, 1]);
  const hl = h.mul(sel).sum(1); // [B, d]
  const logits = mm(hl, lmHeadWeight(params, config).transpose([1, 0]));
  tree.dispose(params);
  return { logits, cache };
}

/**
 * One decoding step with a two-level KV cache: `cache` ([B, Hkv, Tmax, D] per layer, read-only here) holds
 * each row's positions < base[b]; `recent` ([B, Hkv, W, D]) holds the positions base[b] .. base[b]+slot,
 * and this step writes its key/value into slot `slot` (int32 [B], the same for every row). Rewriting the
 * whole cache every step costs more than the attention itself on the Wasm backend, so `flushRecent` moves
 * a full block of W steps into the cache once every W steps.
 * tokens/pos int32 [B]; cos/sin: `ropeTablesJs(config, pos)` reshaped to [B, 1, 1, D/2].
 * Returns next-token logits [B,V] and the updated recent buffer. Consumes its arrays (pass
 * `tree.ref(cache)` to keep the cache).
 */
export function decodeStep(
  params: Params,
  config: ModelConfig,
  cache: KvCache,
  recent: KvCache,
  tokens: JArray,
  base: JArray,
  slot: JArray,
  cos: JArray,
  sin: JArray,
): { logits: JArray; recent: KvCache } {
  const B = tokens.shape[0];
  const { numKvHeads: K, numHeads: H, headDim: D } = config;
  const G = H / K;
  const tmax = cache.k[0].shape[2];
  const W = recent.k[0].shape[2];
  const tj = np.arange(0, tmax, 1, { dtype: np.int32 }).reshape([1, 1, 1, tmax]);
  const cacheMask = tj.less(base.reshape([B, 1, 1, 1]));
  const wi = np.arange(0, W, 1, { dtype: np.int32 });
  const sl = slot.reshape([B, 1, 1, 1]);
  const write = wi.ref.reshape([1, 1, W, 1]).equal(sl.ref);
  const recentMask = wi.reshape([1, 1, 1, W]).less(sl);
  const scale = 1 / Math.sqrt(D);
  const out: KvCache = { k: [], v: [] };
  const neg = Number.NEGATIVE_INFINITY;
  const h = decoder(params, config, tokens.reshape([B, 1]), cos, sin, {
    attend: (l, q, k, v) => {
      // q [B,1,H,D] → [B,K,G,D] (HF's repeat_kv: query head n reads kv head floor(n / G)).
      // Three score blocks: the cache, the recent slots before `slot`, and this step's own key. Scoring
      // the new key on its own (not through the updated recent buffer) makes jit materialise the rotated
      // key once instead of recomputing RoPE inside the buffer update for every slot.
      const kn = k.reshape([B, K, 1, D]);
      const vn = v.reshape([B, K, 1, D]);
      out.k.push(np.where(write.ref, kn.ref, recent.k[l].ref));
      out.v.push(np.where(write.ref, vn.ref, recent.v[l].ref));
      const qg = q.reshape([B, K, G, D]).mul(scale);
      const s1 = np.where(cacheMask.ref, mm(qg.ref, cache.k[l].transpose([0, 1, 3, 2])), neg);
      const s2 = np.where(recentMask.ref, mm(qg.ref, recent.k[l].transpose([0, 1, 3, 2])), neg);
      const s3 = mm(qg, kn.transpose([0, 1, 3, 2])); // [B,K,G,1]
      const m = np.maximum(
        np.maximum(s1.ref.max(-1, { keepdims: true }), s2.ref.max(-1, { keepdims: true })),
        s3.ref,
      );
      const e1 = np.exp(s1.sub(m.ref));
      const e2 = np.exp(s2.sub(m.ref));
      const e3 = np.exp(s3.sub(m));
      const z = e1.ref
        .sum(-1, { keepdims: true })
        .add(e2.ref.sum(-1, { keepdims: true }))
        .add(e3.ref);
      const o = mm(e1, cache.v[l]).add(mm(e2, recent.v[l])).add(e3.mul(vn)).div(z);
      return o.reshape([B, 1, H, D]);
    },
  });
  write.dispose();
  cacheMask.dispose();
  recentMask.dispose();
  const logits = mm(h.reshape([B, config.hiddenSize]), lmHeadWeight(params, config).transpose([1, 0]));
  tree.dispose(params);
  return { logits, recent: out };
}

/** Move a full recent block (positions base[b] .. base[b]+W-1) into the cache. Consumes its arrays. */
export function flushRecent(cache: KvCache, recent: KvCache, base: JArray): KvCache {
  const [B, , tmax] = cache.k[0].shape;
  const W = recent.k[0].shape[2];
  const idx = np
    .arange(0, tmax, 1, { dtype: np.int32 })
    .reshape([1, tmax])
    .sub(base.reshape([B, 1])); // [B,T]
  const inRange = idx.ref.greaterEqual(0).mul(idx.ref.less(W)); // [B,T] bool
  const sel = nn.oneHot(np.clip(idx, 0, W - 1), W).mul(inRange.ref.astype(np.float32).reshape([B, tmax, 1]));
  const selB = sel.reshape([B, 1, tmax, W]);
  const mask = inRange.reshape([B, 1, tmax, 1]);
  const put = (c: JArray, r: JArray) => np.where(mask.ref, np.matmul(selB.ref, r), c);
  const out: KvCache = {
    k: cache.k.map((c, l) => put(c, recent.k[l])),
    v: cache.v.map((c, l) => put(c, recent.v[l])),
  };
  selB.dispose();
  mask.dispose();
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Training forward with shared prompts: GRPO trains N completions of each prompt, so the prompt's keys and
// values are computed once per distinct prompt and every completion row attends to its prompt's copy.

/** Host-side layout of a shared-prefix batch (see `prefixArrays`). */
export interface PrefixBatch {
  /** Distinct prefixes (rows of `prefix`) and their padded length. */
  Pg: number;
  Tp: number;
  /** Completion rows and their padded length. */
  B: number;
  Tc: number;
  /** int32 [Pg*Tp]: prompt tokens 0 .. len-2 of each distinct prompt (the last one starts the row). */
  prefix: Int32Array;
  /** Tokens in each distinct prefix (prompt length − 1). */
  prefixLen: number[];
  /** int32 [B]: which prefix each row continues. */
  rows: Int32Array;
  /** int32 [B*Tc]: the prompt's last token, then completion tokens 0 .. n-2. */
  ids: Int32Array;
  /** int32 [B*Tc]: completion tokens 0 .. n-1. */
  targets: Int32Array;
}

/** Device arrays of a shared-prefix batch, the argument tree of `prefixLogprobs`. */
export interface PrefixArrays {
  prefix: JArray;
  ids: JArray;
  targets: JArray;
  /** bool [B,1,1,1,Tp]: prefix key j is visible to row b (j < prefixLen[rows[b]]). */
  prefixMask: JArray;
  /** RoPE tables of the prefix positions [Tp,1,D/2] and of each row's positions [B,Tc,1,D/2]. */
  cosP: JArray;
  sinP: JArray;
  cosC: JArray;
  sinC: JArray;
  /**
   * f32 [B,Pg]: one-hot of `rows`. Rows read their prompt's keys/values as sel @ prefix (exact: one 1 and
   * zeros), whose gradient is the matmul selᵀ @ grad. `np.take` would be a gather whose gradient is
   * jax-js's scatter-add routine, which runs in JavaScript (about 7% of a GRPO update's kernel time, 2026-12-01).
   */
  sel: JArray;
}

export function prefixArrays(config: ModelConfig, b: PrefixBatch): PrefixArrays {
  const half = config.headDim / 2;
  const [cosP, sinP] = ropeTablesJs(config, range(b.Tp));
  const pos = new Int32Array(b.B * b.Tc);
  const mask = new Int32Array(b.B * b.Tp);
  for (let r = 0; r < b.B; r++) {
    const n = b.prefixLen[b.rows[r]];
    for (let t = 0; t < b.Tc; t++) pos[r * b.Tc + t] = n + t;
    for (let j = 0; j < n; j++) mask[r * b.Tp + j] = 1;
  }
  const [cosC, sinC] = ropeTablesJs(config, pos);
  const sel = new Float32Array(b.B * b.Pg);
  for (let r = 0; r < b.B; r++) sel[r * b.Pg + b.rows[r]] = 1;
  return {
    prefix: np.array(b.prefix, { dtype: np.int32 }).reshape([b.Pg, b.Tp]),
    ids: np.array(b.ids, { dtype: np.int32 }).reshape([b.B, b.Tc]),
    targets: np.array(b.targets, { dtype: np.int32 }).reshape([b.B, b.Tc]),
    prefixMask: np.array(mask, { dtype: np.int32 }).reshape([b.B, 1, 1, 1, b.Tp]).greater(0),
    cosP,
    sinP,
    cosC: cosC.reshape([b.B, b.Tc, 1, half]),
    sinC: sinC.reshape([b.B, b.Tc, 1, half]),
    sel: np.array(sel).reshape([b.B, b.Pg]),
  };
}

/** Row b of the result is prefix row rows[b]: x [Pg, ...] → [B, ...] as the matmul sel @ x (see PrefixArrays.sel). */
function selectRows(sel: JArray, x: JArray): JArray {
  const [Pg, ...rest] = x.shape;
  const B = sel.shape[0];
  const n = rest.reduce((a, c) => a * c, 1);
  return np.matmul(sel, x.reshape([Pg, n])).reshape([B, ...rest]);
}

function proj(params: Params, name: string, x: JArray): JArray {
  return linear(x, params[`${name}.weight`].ref, optional(params, `${name}.bias`));
}

function mlpBlock(params: Params, p: string, h: JArray, eps: number): JArray {
  const x2 = rmsNorm(h.ref, params[`${p}.post_attention_layernorm.weight`].ref, eps);
  const g = proj(params, `${p}.mlp.gate_proj`, x2.ref);
  const u = proj(params, `${p}.mlp.up_proj`, x2);
  return h.add(proj(params, `${p}.mlp.down_proj`, nn.silu(g).mul(u)));
}

/**
 * Per-token log-probs [B,Tc] of a shared-prefix batch: entry (b,t) = log softmax(logits / temperature) of
 * targets[b,t] after prefix rows[b] and ids[b, ≤t] — the same numbers `tokenLogprobs` gives on the full
 * sequences (up to float rounding), with each prompt's prefix run once. Differentiable and jit-friendly.
 * Consumes its arguments (params included).
 */
export function prefixLogprobs(
  params: Params,
  config: ModelConfig,
  a: PrefixArrays,
  temperature = 1,
): JArray {
  const { numHeads: H, numKvHeads: K, headDim: D, rmsNormEps: eps, numLayers: L } = config;
  const [Pg, Tp] = a.prefix.shape;
  const [B, Tc] = a.ids.shape;
  let hp = embed(params, a.prefix);
  let hc = embed(params, a.ids);
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    const last = l === L - 1; // the prefix's last layer output is never read
    const xp = rmsNorm(hp.ref, params[`${p}.input_layernorm.weight`].ref, eps);
    const xc = rmsNorm(hc.ref, params[`${p}.input_layernorm.weight`].ref, eps);
    // The prompt's keys are rotated once here (positions 0 .. Tp-1) and then selected per row.
    const kp = rope(
      proj(params, `${p}.self_attn.k_proj`, xp.ref).reshape([Pg, Tp, K, D]),
      a.cosP.ref,
      a.sinP.ref,
      D,
    );
    const vp = proj(params, `${p}.self_attn.v_proj`, last ? xp : xp.ref).reshape([Pg, Tp, K, D]);
    if (!last) {
      const qp = proj(params, `${p}.self_attn.q_proj`, xp).reshape([Pg, Tp, H, D]);
      const att = causalAttention(rope(qp, a.cosP.ref, a.sinP.ref, D), kp.ref, vp.ref, config).reshape([
        Pg,
        Tp,
        H * D,
      ]);
      hp = mlpBlock(params, p, hp.add(proj(params, `${p}.self_attn.o_proj`, att)), eps);
    }
    const qc = proj(params, `${p}.self_attn.q_proj`, xc.ref).reshape([B, Tc, H, D]);
    const kc = proj(params, `${p}.self_attn.k_proj`, xc.ref).reshape([B, Tc, K, D]);
    const vc = proj(params, `${p}.self_attn.v_proj`, xc).reshape([B, Tc, K, D]);
    // completion rows attend to their prompt's prefix and, causally, to themselves: one softmax
    const att = attention(
      rope(qc, a.cosC.ref, a.sinC.ref, D),
      [
        { k: selectRows(a.sel.ref, kp), v: selectRows(a.sel.ref, vp), mask: a.prefixMask.ref },
        { k: rope(kc, a.cosC.ref, a.sinC.ref, D), v: vc, mask: np.tri(Tc, Tc, 0, { dtype: np.bool }) },
      ],
      config,
    ).reshape([B, Tc, H * D]);
    hc = mlpBlock(params, p, hc.add(proj(params, `${p}.self_attn.o_proj`, att)), eps);
  }
  hp.dispose();
  tree.dispose([a.prefixMask, a.cosP, a.sinP, a.cosC, a.sinC, a.sel]);
  const h = rmsNorm(hc, params["model.norm.weight"].ref, eps);
  let logits = mm(h, lmHeadWeight(params, config).transpose([1, 0]));
  tree.dispose(params);
  if (temperature !== 1 && temperature > 0) logits = logits.mul(1 / temperature);
  return nn.logSoftmax(logits, -1).mul(nn.oneHot(a.targets, config.vocabSize)).sum(-1);
}
