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
import { topOf } from "../util/topk.ts";
import { forwardLogits, type Params } from "./forward.ts";
import { type Model, scoringBatches } from "./index.ts";

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

/** Score whole sequences (each at least one token); see the module comment. */
export async function scoreWithTop(
  model: Model,
  seqs: number[][],
  topN: number,
  opts?: { batchSize?: number },
): Promise<TokenScores[]> {
  const V = model.config.vocabSize;
  const out: TokenScores[] = seqs.map(() => ({ logprobs: [], top: [] }));
  const f = logSoftmaxFn(model);
  for (const { idx, B, Tb, ids } of scoringBatches(model, seqs, opts?.batchSize)) {
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
  }
  return out;
}
