/**
 * Packing token sequences into padded [B,T] training batches. `jit` compiles once per input shape, so
 * lengths are rounded up to a few bucket sizes and micro-batches always have the same number of rows
 * (missing rows are padding with an all-zero loss mask).
 */

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
