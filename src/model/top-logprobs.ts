/**
 * Per-token log-probs of token sequences together with the top-N alternatives at each position, for
 * `ttrl serve`'s `logprobs` / `echo` (lm-evaluation-harness scores multiple-choice tasks this way).
 *
 * The numbers are `scoreSequences`'s (`ttrl logprob`): the same forward (`forwardLogits`), the same
 * log-softmax as `tokenLogprobs`, the same padding and length buckets. The whole log-softmax row comes back
 * to JS so a token's log-prob and its alternatives are read from one array: lm-eval decides "greedy" by
 * comparing them with `==`.
 */
import { type Array as JArray, jit, nn, numpy as np, type OwnedFunction, tree } from "../runtime/jax.ts";
import { TtrlError } from "../util/errors.ts";
import { pow2 } from "../util/math.ts";
import { topOf } from "../util/topk.ts";
import { forwardLogits, type Params } from "./forward.ts";
import type { Model } from "./index.ts";

export interface TokenScores {
  /** Entry i = log p(token i+1 | tokens ≤ i); n-1 entries for a sequence of n tokens. */
  logprobs: number[];
  /** Entry i: the `topN` most likely tokens at that position, [token id, log-prob], most likely first. */
  top: [number, number][][];
}

const compiled = new WeakMap<Model, OwnedFunction<(p: Params, ids: JArray) => JArray>>();

function logSoftmaxFn(model: Model) {
  let f = compiled.get(model);
  if (!f) {
    const cfg = model.config;
    f = jit((p: Params, ids: JArray) => nn.logSoftmax(forwardLogits(p, cfg, ids), -1));
    compiled.set(model, f);
  }
  return f;
}

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;

/** Score whole sequences (each at least one token); see the module comment. */
export async function scoreWithTop(
  model: Model,
  seqs: number[][],
  topN: number,
  opts?: { batchSize?: number },
): Promise<TokenScores[]> {
  const cfg = model.config;
  const V = cfg.vocabSize;
  seqs.forEach((s, i) => {
    for (const t of s)
      if (!Number.isInteger(t) || t < 0 || t >= V)
        throw new TtrlError(`sequence ${i}: token id ${t} is outside the vocabulary [0, ${V})`);
    if (s.length > cfg.maxPositionEmbeddings)
      throw new TtrlError(
        `sequence ${i} has ${s.length} tokens, more than the model's context (${cfg.maxPositionEmbeddings})`,
      );
  });
  const out: TokenScores[] = seqs.map(() => ({ logprobs: [], top: [] }));
  const order = seqs.map((_, i) => i).sort((a, b) => seqs[a].length - seqs[b].length);
  const f = logSoftmaxFn(model);
  let at = 0;
  while (at < order.length) {
    const maxLen = Math.max(
      2,
      seqs[order[Math.min(order.length - 1, at + (opts?.batchSize ?? 1e9) - 1)]].length,
    );
    const T = Math.min(roundUp(maxLen, 32), Math.max(maxLen, cfg.maxPositionEmbeddings));
    const fit = Math.max(1, Math.floor((256 * 2 ** 20) / (T * V * 4 * 3)));
    const idx = order.slice(at, at + Math.min(opts?.batchSize ?? 32, fit, order.length - at));
    const Tr = Math.max(...idx.map((i) => seqs[i].length), 2);
    const Tb = Math.min(roundUp(Tr, 32), Math.max(Tr, cfg.maxPositionEmbeddings));
    const B = pow2(idx.length);
    const ids = new Int32Array(B * Tb);
    idx.forEach((si, r) => {
      ids.set(seqs[si], r * Tb);
    });
    const lp = f(tree.ref(model.params), np.array(ids, { dtype: np.int32 }).reshape([B, Tb]));
    const data = (await lp.data()) as Float32Array;
    idx.forEach((si, r) => {
      const s = seqs[si];
      const o = out[si];
      for (let t = 0; t + 1 < s.length; t++) {
        const off = (r * Tb + t) * V;
        o.logprobs.push(data[off + s[t + 1]]);
        o.top.push(topOf(data, off, V, topN));
      }
    });
    at += idx.length;
  }
  return out;
}
