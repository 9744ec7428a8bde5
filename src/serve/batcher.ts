/**
 * Gathers concurrent generation requests for a few milliseconds and runs them as one batched `generate` on
 * the engine (one batch at a time). Sequences with different sampling options (or length budgets) go in separate batches, since
 * `generate` takes one set of options; each sequence keeps its own seed, so batching never changes outputs.
 *
 * Streaming and cancellation: a sequence may carry `onToken` (called with each sampled token and the raw
 * logits it came from) and an AbortSignal. Aborting a queued sequence drops it (its promise rejects with
 * `Cancelled`); aborting a running one stops it before its next token, so a batch whose clients all left
 * ends at once and the next batch starts. While any sequence of a batch streams, decoding yields to the event
 * loop after each step, so sockets flush and disconnects are seen.
 */
import type { Engine, EngineGeneration } from "../eval/engine.ts";

export interface SeqOptions {
  maxNewTokens: number;
  temperature: number;
  topP: number;
  /** 0: off. */
  topK: number;
  greedy: boolean;
  stop: string[];
  seed: number;
}

export interface SeqHooks {
  /** Called after each decoding step with the sampled token and its raw logits [V] (a view: copy to keep). */
  onToken?: (token: number, logits: Float32Array) => void;
  /** Abort: a queued sequence is dropped, a running one stops before its next token. */
  signal?: AbortSignal;
}

/** The rejection of a sequence aborted before its batch started. */
export class Cancelled extends Error {
  constructor() {
    super("cancelled: the client went away");
    this.name = "Cancelled";
  }
}

interface Pending {
  prompt: number[];
  opts: SeqOptions;
  hooks: SeqHooks;
  resolve: (g: EngineGeneration) => void;
  reject: (e: unknown) => void;
}

export interface BatcherStats {
  batches: number;
  sequences: number;
  maxBatchSeen: number;
  /** Sequences whose client went away: dropped from the queue or stopped early. */
  cancelled: number;
}

export class Batcher {
  private queue: Pending[] = [];
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  readonly stats: BatcherStats = { batches: 0, sequences: 0, maxBatchSeen: 0, cancelled: 0 };

  constructor(
    private readonly engine: Engine,
    private readonly opts: { windowMs?: number; maxBatch?: number } = {},
  ) {}

  get pending(): number {
    return this.queue.length;
  }

  submit(prompt: number[], opts: SeqOptions, hooks: SeqHooks = {}): Promise<EngineGeneration> {
    return new Promise((resolve, reject) => {
      const p: Pending = { prompt, opts, hooks, resolve, reject };
      if (hooks.signal?.aborted) {
        this.stats.cancelled++;
        reject(new Cancelled());
        return;
      }
      hooks.signal?.addEventListener(
        "abort",
        () => {
          const at = this.queue.indexOf(p);
          if (at < 0) return; // running: generate sees it through `cancelled`
          this.queue.splice(at, 1);
          this.stats.cancelled++;
          reject(new Cancelled());
        },
        { once: true },
      );
      this.queue.push(p);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.running || this.timer) return;
    const maxBatch = this.opts.maxBatch ?? 32;
    const delay = this.queue.length >= maxBatch ? 0 : (this.opts.windowMs ?? 5);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.runOne();
    }, delay);
  }

  private async runOne(): Promise<void> {
    if (this.running || this.queue.length === 0) return;
    this.running = true;
    const maxBatch = this.opts.maxBatch ?? 32;
    // Take the first request's option group, oldest first, up to maxBatch sequences.
    const key = groupKey(this.queue[0].opts);
    const batch: Pending[] = [];
    const rest: Pending[] = [];
    for (const p of this.queue) {
      if (batch.length < maxBatch && groupKey(p.opts) === key) batch.push(p);
      else rest.push(p);
    }
    this.queue = rest;
    const o = batch[0].opts;
    const streaming = batch.some((p) => p.hooks.onToken || p.hooks.signal);
    const stopped = new Set<number>();
    try {
      const gens = await this.engine.generate(
        batch.map((p) => p.prompt),
        {
          maxNewTokens: o.maxNewTokens,
          temperature: o.temperature,
          topP: o.topP,
          topK: o.topK,
          greedy: o.greedy,
          stop: o.stop,
          seeds: batch.map((p) => p.opts.seed),
          ...(streaming && {
            onStep: (sampled) => {
              for (const { seq, token, logits } of sampled) {
                try {
                  batch[seq].hooks.onToken?.(token, logits);
                } catch {
                  /* a failing listener must not stop the batch */
                }
              }
              return new Promise<void>((r) => setImmediate(r));
            },
            cancelled: (seq) => {
              const gone = batch[seq].hooks.signal?.aborted ?? false;
              if (gone && !stopped.has(seq)) {
                stopped.add(seq);
                this.stats.cancelled++;
              }
              return gone;
            },
          }),
        },
      );
      this.stats.batches++;
      this.stats.sequences += batch.length;
      this.stats.maxBatchSeen = Math.max(this.stats.maxBatchSeen, batch.length);
      batch.forEach((p, i) => {
        p.resolve(gens[i]);
      });
    } catch (e) {
      for (const p of batch) p.reject(e);
    } finally {
      this.running = false;
      if (this.queue.length) this.schedule();
    }
  }
}

/** Requests share a batch when everything but the seed agrees. */
function groupKey(o: SeqOptions): string {
  return JSON.stringify([o.maxNewTokens, o.temperature, o.topP, o.topK, o.greedy, o.stop]);
}
