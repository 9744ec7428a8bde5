/**
 * Packing token sequences into padded [B,T] training batches. `jit` compiles once per input shape, so
 * lengths are rounded up to a few bucket sizes and micro-batches always have the same number of rows
 * (missing rows are padding with an all-zero loss mask).
 */

import type { PrefixBatch } from "../model/forward.ts";

const BUCKETS = [16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096];

/** Smallest bucket length ≥ n (multiples of 1024 past the table). */
export function bucketLength(n: number): number {
  for (const b of BUCKETS) if (b >= n) return b;
  return Math.ceil(n / 1024) * 1024;
}

export interface SeqSpec {
  /** Tokens whose next-token predictions are not trained (prompt). */
  prompt: number[];
  /** Tokens that are trained (completion / solution + EOS). */
  completion: number[];
  /** When false, the completion's tokens are not trained either (e.g. masked truncated completions). */
  train?: boolean;
}

export interface PackedBatch {
  B: number;
  T: number;
  ids: Int32Array;
  targets: Int32Array;
  /** 1 where targets[b,t] is a trained completion token. */
  mask: Float32Array;
  /** Trained tokens per row. */
  lengths: number[];
  /** Completion offset per row: position t of the batch predicts completion token t - offset. */
  offsets: number[];
}

/**
 * Pack sequences into B rows of length T (T ≥ the longest prompt+completion − 1). Row r holds inputs
 * seq[0..L-2] and targets seq[1..L-1]; the loss mask covers targets that are completion tokens.
 */
export function packSequences(seqs: SeqSpec[], B: number, T: number, padId: number): PackedBatch {
  if (seqs.length > B) throw new Error(`packSequences: ${seqs.length} sequences for ${B} rows`);
  const ids = new Int32Array(B * T).fill(padId);
  const targets = new Int32Array(B * T).fill(padId);
  const mask = new Float32Array(B * T);
  const lengths: number[] = [];
  const offsets: number[] = [];
  seqs.forEach((s, r) => {
    const full = s.prompt.concat(s.completion);
    const L = full.length;
    if (L - 1 > T) throw new Error(`packSequences: sequence of ${L} tokens does not fit T=${T}`);
    for (let t = 0; t < L - 1; t++) {
      ids[r * T + t] = full[t];
      targets[r * T + t] = full[t + 1];
    }
    let n = 0;
    if (s.train !== false) {
      for (let t = Math.max(0, s.prompt.length - 1); t < L - 1; t++) {
        mask[r * T + t] = 1;
        n++;
      }
    }
    lengths.push(n);
    offsets.push(s.prompt.length - 1);
  });
  for (let r = seqs.length; r < B; r++) {
    lengths.push(0);
    offsets.push(0);
  }
  return { B, T, ids, targets, mask, lengths, offsets };
}

export interface PackedPrefixBatch extends PrefixBatch {
  /** [B*Tc]: 1 where targets[b,t] is a trained completion token. */
  mask: Float32Array;
  /** Trained tokens per row. */
  lengths: number[];
}

/**
 * Pack sequences for `prefixLogprobs`: each distinct prompt once (its tokens but the last, right-padded
 * to Tp), and per row the prompt's last token followed by the completion (inputs) and the completion
 * (targets), right-padded to Tc. Rows past `seqs.length` are padding with an all-zero mask. Prompts need
 * at least one token; completions at least one to be trained.
 */
export function packPrefixSequences(
  seqs: SeqSpec[],
  B: number,
  padId: number,
  /** Smallest padded sizes (e.g. shared by every micro-batch of a step, so jit compiles one shape). */
  min: { Pg?: number; Tp?: number; Tc?: number } = {},
): PackedPrefixBatch {
  if (seqs.length > B) throw new Error(`packPrefixSequences: ${seqs.length} sequences for ${B} rows`);
  const key = new Map<string, number>();
  const prompts: number[][] = [];
  const rows = new Int32Array(B);
  seqs.forEach((s, r) => {
    if (s.prompt.length === 0) throw new Error("packPrefixSequences: empty prompt");
    const k = s.prompt.join(",");
    let u = key.get(k);
    if (u === undefined) {
      u = prompts.length;
      key.set(k, u);
      prompts.push(s.prompt);
    }
    rows[r] = u;
  });
  let Pg = 1;
  while (Pg < Math.max(prompts.length, min.Pg ?? 1)) Pg *= 2;
  const Tp = bucketLength(Math.max(1, min.Tp ?? 1, ...prompts.map((p) => p.length - 1)));
  const Tc = bucketLength(Math.max(1, min.Tc ?? 1, ...seqs.map((s) => s.completion.length)));
  const prefix = new Int32Array(Pg * Tp).fill(padId);
  const prefixLen = new Array<number>(Pg).fill(0);
  prompts.forEach((p, u) => {
    prefix.set(p.slice(0, -1), u * Tp);
    prefixLen[u] = p.length - 1;
  });
  const ids = new Int32Array(B * Tc).fill(padId);
  const targets = new Int32Array(B * Tc).fill(padId);
  const mask = new Float32Array(B * Tc);
  const lengths: number[] = [];
  seqs.forEach((s, r) => {
    const n = s.completion.length;
    ids[r * Tc] = s.prompt[s.prompt.length - 1];
    for (let t = 0; t < n; t++) {
      if (t + 1 < Tc && t + 1 < n) ids[r * Tc + t + 1] = s.completion[t];
      targets[r * Tc + t] = s.completion[t];
      if (s.train !== false) mask[r * Tc + t] = 1;
    }
    lengths.push(s.train !== false ? n : 0);
  });
  for (let r = seqs.length; r < B; r++) lengths.push(0);
  return { Pg, Tp, B, Tc, prefix, prefixLen, rows, ids, targets, mask, lengths };
}
