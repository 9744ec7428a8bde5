/**
 * The worker-pool kernel scheduler (installed by ./install.ts, before jax-js is first imported).
 *
 * jax-js's Wasm backend runs kernels on a pool of browser `Worker`s when a global `Worker` and
 * `SharedArrayBuffer` exist, sized by `navigator.hardwareConcurrency`. Node has `node:worker_threads`
 * instead, so a minimal browser-style `Worker` is installed: the pool creates workers from a `blob:` URL,
 * which is read with `resolveObjectURL` and evaluated inside a worker thread whose
 * `self.onmessage`/`postMessage` are bridged to the thread's port. The pool's first worker runs on the main
 * thread (see InlineRunner).
 *
 * Threads: `TTRL_THREADS` (default: CPU count, at most 8). 1 runs every kernel on the main thread.
 */
import { resolveObjectURL } from "node:buffer";
import { availableParallelism } from "node:os";
import { Worker as NodeWorker } from "node:worker_threads";

/** Threads requested at startup (TTRL_THREADS or CPU count capped at 8). */
export function startupThreads(): number {
  const env = process.env.TTRL_THREADS;
  if (env && /^\d+$/.test(env) && Number(env) >= 1) return Number(env);
  return Math.max(1, Math.min(8, availableParallelism()));
}

// A thread worker reports a finished kernel or routine by bumping a shared counter (ctrl[0]; ctrl[1] counts
// failures, whose details still go by message) instead of posting "done": the main thread, which runs its own
// chunk of the same kernel meanwhile, then picks the reply up with Atomics.wait and needs no event-loop turn.
const WORKER_BOOTSTRAP = `
const { parentPort, workerData } = require("node:worker_threads");
const self = globalThis;
self.self = self;
const ctrl = workerData.ctrl ? new Int32Array(workerData.ctrl) : null;
self.postMessage = (data) => {
  if (ctrl && data && data.type === "done") {
    if (!data.ok) {
      Atomics.add(ctrl, 1, 1);
      parentPort.postMessage(data);
    }
    Atomics.add(ctrl, 0, 1);
    Atomics.notify(ctrl, 0);
    return;
  }
  parentPort.postMessage(data);
};
parentPort.on("message", (data) => { if (typeof self.onmessage === "function") self.onmessage({ data }); });
(0, eval)(workerData.source);
`;

type Reply = (data: unknown) => void;
/** `Atomics.waitAsync` (Node >= 16; not in TypeScript's ES2022 lib). */
type AtomicsWaitAsync = {
  waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<unknown> | string };
};

/**
 * The pool's worker script evaluated on the main thread: jax-js's pool dispatches every kernel to its
 * workers and then only waits, so the first "worker" of the pool runs here instead of on a thread (the
 * main thread does its share of each kernel, and one thread fewer competes for the cores).
 */
class InlineRunner {
  private onmessage: ((e: { data: unknown }) => void) | null = null;
  private reply: Reply | null = null;
  /** Milliseconds per work item of each kernel, measured on its inline chunks. */
  readonly cost = new Map<string, number>();

  constructor(source: string) {
    const self: { onmessage: ((e: { data: unknown }) => void) | null } = { onmessage: null };
    const post = (data: unknown) => this.reply?.(data);
    new Function("self", "postMessage", source)(self, post);
    this.onmessage = self.onmessage;
  }

  /** Run one message of the worker protocol now; its reply goes to `reply`. */
  run(data: unknown, reply: Reply): void {
    const msg = data as { type?: string; kernelHash?: string; begin?: number; end?: number };
    const t0 = msg.type === "kernel" ? performance.now() : 0;
    this.reply = reply;
    try {
      this.onmessage?.({ data });
    } finally {
      this.reply = null;
    }
    // The pool posted this kernel's other chunks to the threads before this one ran: collect their replies.
    if (msg.type === "kernel" || msg.type === "routine") for (const w of threadWorkers) w.collect(true);
    if (msg.type === "kernel" && msg.kernelHash !== undefined && msg.end !== undefined) {
      const items = Math.max(1, msg.end - (msg.begin ?? 0));
      this.cost.set(msg.kernelHash, (performance.now() - t0) / items);
    }
  }
}

let inline: Promise<InlineRunner> | null = null;
let workersMade = 0;
/** Thread workers whose replies come through their shared counters (see WORKER_BOOTSTRAP). */
const threadWorkers: BlobWorker[] = [];

/** A chunk expected to take less than this (ms) on the main thread runs there rather than on a thread. */
const INLINE_CHUNK_MS = 0.08;

/**
 * A browser-style Worker for jax-js's WasmWorkerPool: the pool's first worker runs inline on the main
 * thread (see InlineRunner), the others on node:worker_threads. A thread worker hands a kernel chunk to
 * the main thread instead when that kernel's chunks are known to be too small to be worth a thread round
 * trip. Chunks are the pool's own, so results do not depend on where they run.
 */
export class BlobWorker {
  onmessage: ((e: { data: unknown }) => void) | null = null;
  onerror: ((e: { message: string }) => void) | null = null;
  private worker: NodeWorker | null = null;
  private readonly pending: unknown[] = [];

  private runner: InlineRunner | null = null;
  private readonly isInline: boolean;
  /** Shared counters of a thread worker: [finished, failed] (null: replies come by message). */
  private readonly ctrl: Int32Array | null = null;
  private posted = 0;
  private dead = false;
  private finished = 0;
  private failed = 0;

  constructor(url: string | URL, _opts?: unknown) {
    const href = String(url);
    const blob = resolveObjectURL(href);
    if (!blob) throw new Error(`Worker adapter: cannot resolve ${href}`);
    this.isInline = workersMade++ === 0 && !process.env.TTRL_NO_INLINE_WORKER;
    // Counter replies need the main thread to collect them, which the inline worker does after its chunk.
    if (!this.isInline && inline) {
      this.ctrl = new Int32Array(new SharedArrayBuffer(8));
      threadWorkers.push(this);
    }
    const text = blob.text();
    if (this.isInline) inline = text.then((source) => new InlineRunner(source));
    const runner = inline;
    const ctrl = this.ctrl?.buffer ?? null;
    // The blob's text is only available asynchronously; queue messages until the worker exists.
    const ready = text.then(async (source) => {
      this.runner = runner ? await runner : null;
      if (this.isInline) {
        for (const m of this.pending.splice(0)) this.postMessage(m);
        return;
      }
      const w = new NodeWorker(WORKER_BOOTSTRAP, { eval: true, workerData: { source, ctrl } });
      w.unref();
      w.on("message", (data) => this.onmessage?.({ data }));
      w.on("error", (err) => {
        this.dead = true;
        this.onerror?.({ message: String(err?.message ?? err) });
      });
      w.on("exit", () => {
        this.dead = true;
      });
      this.worker = w;
      for (const m of this.pending.splice(0)) this.send(m);
    });
    ready.catch((err) => this.onerror?.({ message: String(err) }));
  }

  postMessage(data: unknown): void {
    const runner = this.runner;
    const reply: Reply = (d) => this.onmessage?.({ data: d });
    if (this.isInline) {
      if (!runner) this.pending.push(data);
      // Deferred, so that the pool posts the kernel's other chunks to the threads before this one runs.
      else queueMicrotask(() => runner.run(data, reply));
      return;
    }
    if (runner && this.worker) {
      const m = data as { type?: string; kernelHash?: string; begin?: number; end?: number };
      const c = m.type === "kernel" && m.kernelHash !== undefined ? runner.cost.get(m.kernelHash) : undefined;
      if (c !== undefined && c * ((m.end ?? 0) - (m.begin ?? 0)) < INLINE_CHUNK_MS) {
        queueMicrotask(() => runner.run(data, reply));
        return;
      }
    }
    if (this.worker) this.send(data);
    else this.pending.push(data);
  }

  /** Post a message to the thread; a kernel or routine will be answered through the counters. */
  private send(data: unknown): void {
    const type = (data as { type?: string }).type;
    const counted = this.ctrl !== null && (type === "kernel" || type === "routine");
    (this.worker as NodeWorker).postMessage(data);
    if (!counted) return;
    const ctrl = this.ctrl as Int32Array;
    const seen = Atomics.load(ctrl, 0);
    this.posted++;
    // Normally the inline worker collects the reply right after its own chunk; this is the fallback.
    const w = (Atomics as unknown as AtomicsWaitAsync).waitAsync(ctrl, 0, seen);
    if (w.async) void (w.value as Promise<unknown>).then(() => this.collect(false));
    else this.collect(false);
  }

  /**
   * Deliver the "done" replies of finished jobs (failures arrive as messages). With `block`, wait until every
   * posted job has finished.
   */
  collect(block: boolean): void {
    const ctrl = this.ctrl;
    if (!ctrl) return;
    while (this.finished < this.posted) {
      const fin = Atomics.load(ctrl, 0);
      if (fin <= this.finished) {
        // A job still running after a second (or a dead thread) is left to the waitAsync fallback.
        if (!block || this.dead || Atomics.wait(ctrl, 0, fin, 1000) === "timed-out") return;
        continue;
      }
      const failed = Atomics.load(ctrl, 1);
      for (; this.finished < fin; this.finished++) {
        if (failed > this.failed) this.failed++;
        else this.onmessage?.({ data: { type: "done", ok: true } });
      }
    }
  }

  terminate(): void {
    void this.worker?.terminate();
  }
}

/** How many pool workers jax-js has created in this process (0: kernels run on the main thread alone). */
export function poolWorkers(): number {
  return workersMade;
}

/** Install `BlobWorker` as the global `Worker` when more than one thread is wanted. */
export function installWorkerPool(threads: number): void {
  const g = globalThis as Record<string, unknown>;
  if (threads > 1 && typeof g.Worker === "undefined") g.Worker = BlobWorker;
}
