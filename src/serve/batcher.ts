/**
 * Gathers concurrent generation requests for a few milliseconds and runs them as one batched `generate` on
 * the engine (one batch at a time). Sequences with different sampling options (or length budgets) go in separate batches, since
 * `generate` takes one set of options; each sequence keeps its own seed, so batching never changes outputs.
 */
import type { Engine, EngineGeneration } from "../eval/engine.ts";

export interface SeqOptions {
  maxNewTokens: number;
  temperature: number;
  topP: number;
  greedy: boolean;
  stop: string[];
  seed: number;
}

interface Pending {
  prompt: number[];
  opts: SeqOptions;
  resolve: (g: EngineGeneration) => void;
  reject: (e: unknown) => void;
}

export interface BatcherStats {
  batches: number;
  sequences: number;
  maxBatchSeen: number;
}

export class Batcher {
  private queue: Pending[] = [];
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  readonly stats: BatcherStats = { batches: 0, sequences: 0, maxBatchSeen: 0 };

  constructor(
    private readonly engine: Engine,
    private readonly opts: { windowMs?: number; maxBatch?: number } = {},
  ) {}

  get pending(): number {
    return this.queue.length;
  }

  submit(prompt: number[], opts: SeqOptions): Promise<EngineGeneration> {
    return new Promise((resolve, reject) => {
      this.queue.push({ prompt, opts, resolve, reject });
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
    try {
      const gens = await this.engine.generate(
        batch.map((p) => p.prompt),
        {
          maxNewTokens: o.maxNewTokens,
          temperature: o.temperature,
          topP: o.topP,
          greedy: o.greedy,
          stop: o.stop,
          seeds: batch.map((p) => p.opts.seed),
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
  return JSON.stringify([o.maxNewTokens, o.temperature, o.topP, o.greedy, o.stop]);
}
