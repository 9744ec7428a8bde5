/**
 * What `ttrl serve` writes back: stop-string handling, log-probs in the completions and chat formats, and
 * the incremental text of a streamed choice.
 */
import type { EngineGeneration, EngineTokenizer } from "../eval/engine.ts";
import { topOf } from "../util/topk.ts";

/** Drop a matched stop string from the end of the text (OpenAI semantics); report which one. */
export function stripStop(g: EngineGeneration, stop: string[]): { text: string; stopReason: string | null } {
  if (g.finishReason !== "stop") return { text: g.text, stopReason: null };
  for (const s of stop) if (g.text.endsWith(s)) return { text: g.text.slice(0, -s.length), stopReason: s };
  // The engine already left the stop string out: find which one by asking the caller's list (first match wins).
  return { text: g.text, stopReason: stop[0] ?? null };
}

/** Length in code points (what OpenAI's and vLLM's `text_offset` count). */
export const cpLen = (s: string): number => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

/** One token as text, special tokens included (`</s>`), as the `tokens` / `token` fields show it. */
export function tokenText(tok: EngineTokenizer, id: number): string {
  return tok.decode([id], { skipSpecialTokens: false });
}

/** A token's log-prob and its top alternatives, [id, log-prob], most likely first. */
export interface TokenLp {
  token: number;
  logprob: number;
  top: [number, number][];
}

/** log softmax of one row of raw logits (float64), for the token and the `topN` most likely. */
export function lpFromLogits(logits: Float32Array, token: number, topN: number): TokenLp {
  let m = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) if (logits[i] > m) m = logits[i];
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += Math.exp(logits[i] - m);
  const lse = m + Math.log(z);
  return {
    token,
    logprob: logits[token] - lse,
    top: topOf(logits, 0, logits.length, topN).map(([i, x]) => [i, x - lse]),
  };
}

/** Completions-format log-probs (`choices[].logprobs`). */
export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

/**
 * Completions log-probs of `ids[from..]`. `lps[j]` describes token j (null for the first token of a
 * sequence, which has no context); `offsetBase` is where token `from` starts in the choice's text, and the
 * offsets of later tokens follow the decoded text (special tokens take no room).
 */
export function completionLogprobs(
  tok: EngineTokenizer,
  ids: number[],
  lps: (TokenLp | null)[],
  from: number,
  offsetBase: number,
): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  for (let j = from; j < ids.length; j++) {
    const lp = lps[j];
    out.tokens.push(tokenText(tok, ids[j]));
    out.token_logprobs.push(lp ? lp.logprob : null);
    out.top_logprobs.push(lp ? Object.fromEntries(lp.top.map(([id, x]) => [tokenText(tok, id), x])) : null);
    out.text_offset.push(offsetBase + cpLen(tok.decode(ids.slice(from, j), { skipSpecialTokens: true })));
  }
  return out;
}

export interface ChatLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

/** Chat-format log-probs (`choices[].logprobs.content[]`) of generated tokens. */
export function chatLogprobs(tok: EngineTokenizer, lps: TokenLp[]): ChatLogprob[] {
  const entry = (id: number, logprob: number) => {
    const token = tokenText(tok, id);
    return { token, logprob, bytes: [...Buffer.from(token, "utf8")] };
  };
  return lps.map((lp) => ({
    ...entry(lp.token, lp.logprob),
    top_logprobs: lp.top.map(([id, x]) => entry(id, x)),
  }));
}

/**
 * The part of a growing completion that is safe to send: a stop string and everything after it never are
 * (stop strings are left out of the text), nor a tail that may still become one, nor a trailing
 * incomplete character (U+FFFD from a partial UTF-8 token).
 */
export function safeText(text: string, stops: string[]): string {
  let cut = text.length;
  for (const s of stops) {
    const at = text.indexOf(s);
    if (at >= 0) cut = Math.min(cut, at);
  }
  let t = text.slice(0, cut);
  let hold = 0;
  for (const s of stops)
    for (let k = Math.min(s.length - 1, t.length); k > hold; k--)
      if (t.endsWith(s.slice(0, k))) {
        hold = k;
        break;
      }
  t = t.slice(0, t.length - hold);
  while (t.endsWith("\uFFFD")) t = t.slice(0, -1);
  return t;
}
