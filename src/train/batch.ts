/**
 * Packing token sequences into padded [B,T] training batches. `jit` compiles once per input shape, so
 * lengths are rounded up to a few bucket sizes and micro-batches always have the same number of rows
 * (missing rows are padding with an all-zero loss mask). Micro-batches are sized to fit the Wasm memory
 * (fitMicroBatch, fitPrefixMicroBatch), and GRPO's shared-prompt micro-batches hold whole groups
 * (chunkByGroups).
 */

import type { PrefixBatch } from "../model/forward.ts";
import { TtrlError } from "../util/errors.ts";
import { pow2 } from "../util/math.ts";
import type { Policy } from "./policy.ts";

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

/** Wasm memory the trainers aim to stay under for one micro-batch. */
export const MICRO_BATCH_BYTES = 2 ** 30;

export { pow2 };

function tooLong(tokens: number, bpt: number): TtrlError {
  return new TtrlError(
    `one sequence of ${tokens} tokens needs about ${((bpt * tokens) / 2 ** 30).toFixed(1)} GiB for a training step, more than the ${MICRO_BATCH_BYTES / 2 ** 30} GiB a micro-batch may use (Wasm memory is capped at 4 GiB); lower max_completion_length`,
  );
}

/**
 * Rows per micro-batch: `want`, or fewer (a power of two) when `want` rows of length T would need more
 * than MICRO_BATCH_BYTES by the policy's estimate. Fails clearly if a single row cannot fit.
 */
export function fitMicroBatch(want: number, T: number, policy: Policy): number {
  const bpt = policy.bytesPerToken?.(T);
  if (!bpt) return want;
  const maxRows = Math.floor(MICRO_BATCH_BYTES / (bpt * T));
  if (maxRows < 1) throw tooLong(T, bpt);
  if (want <= maxRows) return want;
  let r = 1;
  while (r * 2 <= maxRows) r *= 2;
  return r;
}

/**
 * Rows per shared-prompt micro-batch (see packPrefixSequences): `want`, or the largest power of two below
 * it whose micro-batches (consecutive rows of `work`) stay under MICRO_BATCH_BYTES by the policy's
 * estimate, counting each distinct prompt's tokens once.
 */
export function fitPrefixMicroBatch(
  want: number,
  work: { prompt: number[]; completion: number[]; group?: number }[],
  policy: Policy,
  /** Rows per group: micro-batches are then whole groups (see chunkByGroups). */
  rowsPerGroup?: number,
): number {
  const Tp = bucketLength(Math.max(1, ...work.map((s) => s.prompt.length - 1)));
  const Tc = bucketLength(Math.max(1, ...work.map((s) => s.completion.length)));
  const bpt = policy.bytesPerToken?.(Tp + Tc);
  if (!bpt) return want;
  const fits = (rows: number) => {
    const chunks: (typeof work)[] = [];
    if (rowsPerGroup) chunks.push(...chunkByGroups(work, rows, Math.max(1, Math.floor(rows / rowsPerGroup))));
    else for (let i = 0; i < work.length; i += rows) chunks.push(work.slice(i, i + rows));
    for (const ch of chunks) {
      const distinct = new Set(ch.map((s) => s.prompt.join(","))).size;
      const B = Math.min(pow2(ch.length), Math.max(rows, ch.length));
      if (bpt * (B * Tc + pow2(distinct) * Tp) > MICRO_BATCH_BYTES) return false;
    }
    return true;
  };
  if (fits(want)) return want;
  let r = 1;
  while (r * 2 < want) r *= 2;
  for (; r >= 1; r /= 2) if (fits(r)) return r;
  throw tooLong(Tp + Tc, bpt);
}

/**
 * Split rows (in group order) into micro-batches of at most `rows` rows and `groups` groups; a group
 * larger than `rows` is split. Rows without a group count as one group each.
 */
export function chunkByGroups<T extends { group?: number }>(work: T[], rows: number, groups: number): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let n = 0;
  let last: number | undefined;
  for (const s of work) {
    const isNew = s.group === undefined || s.group !== last;
    if (cur.length === rows || (isNew && n === groups)) {
      out.push(cur);
      cur = [];
      n = 0;
    }
    if (isNew || cur.length === 0) n++;
    last = s.group;
    cur.push(s);
  }
  if (cur.length) out.push(cur);
  return out;
}

/** Consecutive slices of at most `rows` items. */
export function chunkRows<T>(items: T[], rows: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += rows) out.push(items.slice(i, i + rows));
  return out;
}

/** One GRPO training sequence: a kept completion of a group with its advantage. */
export interface GrpoSeq extends SeqSpec {
  /** Index of the sequence's prompt in the step (its group). */
  group: number;
  adv: number;
  train: boolean;
  truncated: boolean;
}

export interface MicroBatches {
  /** The sequences of each micro-batch. */
  chunks: GrpoSeq[][];
  packed: (PackedBatch | PackedPrefixBatch)[];
}

/**
 * A GRPO step's micro-batches. Rows that cannot change the loss — zero advantage and no KL term, or
 * nothing to train — are left out (their gradient is exactly zero), except for bnpo whose normaliser
 * depends on the micro-batch makeup. With a shared-prompt forward (`prefix`), each distinct prompt of a
 * micro-batch runs once and its completions attend to it: micro-batches are whole groups (at most `rows`
 * rows and ⌊rows / M⌋ groups), all padded to the step's largest sizes and room for the most groups a
 * micro-batch may hold, so one compiled shape serves step after step. Otherwise every row is a full
 * prompt + completion sequence.
 */
export function grpoMicroBatches(
  seqs: GrpoSeq[],
  o: { micro: number; M: number; keepZero: boolean; beta: number; prefix: boolean; policy: Policy },
): MicroBatches {
  const padId = o.policy.tokenizer.padTokenId;
  const work = o.keepZero ? seqs : seqs.filter((s) => s.train && (o.beta !== 0 || s.adv !== 0));
  const chunks: GrpoSeq[][] = [];
  let rowsCap = 0;
  if (work.length > 0) {
    if (o.prefix) {
      rowsCap = fitPrefixMicroBatch(o.micro, work, o.policy, o.M);
      chunks.push(...chunkByGroups(work, rowsCap, Math.max(1, Math.floor(rowsCap / o.M))));
    } else {
      const stepT = bucketLength(Math.max(...work.map((s) => s.prompt.length + s.completion.length)) - 1);
      rowsCap = fitMicroBatch(o.micro, stepT, o.policy);
      chunks.push(...chunkRows(work, rowsCap));
    }
  }
  const sizes = {
    Pg: Math.max(
      Math.floor(rowsCap / o.M),
      ...chunks.map((ch) => new Set(ch.map((s) => s.prompt.join(","))).size),
    ),
    Tp: Math.max(1, ...work.map((s) => s.prompt.length - 1)),
    Tc: Math.max(1, ...work.map((s) => s.completion.length)),
  };
  const packed = chunks.map((ch) => {
    const B = Math.min(pow2(ch.length), Math.max(rowsCap, ch.length));
    const specs = ch.map((s): SeqSpec => ({ prompt: s.prompt, completion: s.completion, train: s.train }));
    if (o.prefix) return packPrefixSequences(specs, B, padId, sizes);
    const T = bucketLength(Math.max(...ch.map((s) => s.prompt.length + s.completion.length)) - 1);
    return packSequences(specs, B, T, padId);
  });
  return { chunks, packed };
}

/**
 * Stage 4: the kept completions of each group as training sequences with their advantages. Empty
 * completions (nothing to train) and, with `mask_truncated_completions`, truncated ones are not trained.
 */
export function toSequences(
  prompts: number[][],
  groups: { tokens: number[]; finishReason: string }[][],
  kept: number[][],
  advantages: number[][],
  maskTruncated: boolean,
): GrpoSeq[] {
  return prompts.flatMap((prompt, pi) =>
    kept[pi].map((gi, j): GrpoSeq => {
      const s = groups[pi][gi];
      const truncated = s.finishReason === "length";
      return {
        group: pi,
        prompt,
        completion: s.tokens,
        adv: advantages[pi][j],
        train: !(maskTruncated && truncated) && s.tokens.length > 0,
        truncated,
      };
    }),
  );
}
