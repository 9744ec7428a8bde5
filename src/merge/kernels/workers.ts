/**
 * Parallel bf16 SLERP: WebAssembly SIMD kernels (wasm.ts) over one shared `WebAssembly.Memory`, run on the
 * main thread and on worker threads that instantiate the same module over the same memory. Tensors are read
 * from disk straight into that memory (`BufferPool`), so nothing is copied between threads.
 *
 * Per tensor, three phases, each split over the threads: Σa², Σb² per torch chunk (`sq`); the dot of the
 * normalised tensors per chunk, in the parts torch's two-pass reduction uses (`dot`); the output (`mix`).
 * The statistics are combined on the main thread in torch's order (torch.ts), so results do not depend on
 * this process's thread count.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { bf16ToF32 } from "../../io/dtype.ts";
import { coefficientsFromDot, peerSlerpStatsOf, slerpBf16Pass2 } from "../methods/slerp.ts";
import {
  cascadeLevelPower,
  EPS32,
  peerThreads,
  TORCH_CHUNK,
  torchNormOf,
  torchSplit,
  torchSum,
  torchTwoPass,
} from "./torch.ts";
import { instantiateKernels, type Kernels, kernelModule, sharedMemory } from "./wasm.ts";

const PAGE = 65536;
/** Bytes of per-thread scratch (the cascade's levels 1..3) at the start of the memory. */
const SCRATCH = 512;
const MAX_THREADS = 64;

/** The process-wide shared memory that tensors are read into and that the kernels work on. */
class Arena {
  readonly memory = sharedMemory();
  private top = Math.ceil((SCRATCH * MAX_THREADS) / PAGE) * PAGE;
  private readonly free = new Map<number, number[]>();
  readonly owned = new WeakSet<Uint8Array>();
  private kernels: Kernels | null = null;

  constructor() {
    this.memory.grow(this.top / PAGE);
  }

  main(): Kernels {
    if (!this.kernels) this.kernels = instantiateKernels(this.memory);
    return this.kernels;
  }

  /** A view of `bytes` bytes (64-byte aligned) in the memory, or null when the 4 GiB space is used up. */
  alloc(bytes: number): Uint8Array | null {
    const size = Math.max(64, Math.ceil(bytes / 64) * 64);
    let off = this.free.get(size)?.pop();
    if (off === undefined) {
      const end = this.top + size;
      const have = this.memory.buffer.byteLength;
      if (end > have) {
        const pages = Math.ceil((end - have) / PAGE);
        if (have / PAGE + pages > 65536) return null;
        this.memory.grow(pages);
      }
      off = this.top;
      this.top = end;
    }
    const v = new Uint8Array(this.memory.buffer, off, bytes);
    this.owned.add(v);
    return v;
  }

  release(v: Uint8Array): void {
    const size = Math.max(64, Math.ceil(v.byteLength / 64) * 64);
    const l = this.free.get(size);
    if (l) l.push(v.byteOffset);
    else this.free.set(size, [v.byteOffset]);
  }
}

let arena: Arena | null = null;
function theArena(): Arena {
  if (!arena) arena = new Arena();
  return arena;
}

/**
 * Let the current kernel memory go (it cannot shrink): pools and workers made afterwards get a new one,
 * and the old one is freed once nothing refers to it. `runMerge` calls this when it is done, so a
 * long-running process (`ttrl experiment`) does not keep the merge's buffers resident.
 */
export function releaseKernelMemory(): void {
  arena = null;
}

/** Reusable byte buffers in the shared kernel memory (plain SharedArrayBuffers if it is full), by length. */
export class BufferPool {
  private free = new Map<number, Uint8Array[]>();
  private readonly arena = theArena();

  get(bytes: number): Uint8Array {
    const b = this.free.get(bytes)?.pop();
    if (b) return b;
    return this.arena.alloc(bytes) ?? new Uint8Array(new SharedArrayBuffer(Math.max(bytes, 1)), 0, bytes);
  }

  put(b: Uint8Array): void {
    const l = this.free.get(b.byteLength);
    if (l) l.push(b);
    else this.free.set(b.byteLength, [b]);
  }

  /** Hand every pooled buffer back to the shared memory (for the next merge in this process). */
  clear(): void {
    for (const l of this.free.values()) for (const b of l) if (this.arena.owned.has(b)) this.arena.release(b);
    this.free.clear();
  }
}

type Call = [name: "sq" | "dot" | "mix", ...args: number[]];

/**
 * Workers take calls from a shared list: the next index comes from an atomic counter, so a thread that gets
 * less CPU (a busy machine) simply takes fewer calls. A `dot` call's scratch argument (-1) is replaced by
 * the running thread's own scratch area. Results go to a shared Float64Array.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const k = new WebAssembly.Instance(workerData.module, { env: { mem: workerData.memory } }).exports;
const scratch = workerData.scratch;
parentPort.on("message", ({ calls, next, results }) => {
  for (;;) {
    const i = Atomics.add(next, 0, 1);
    if (i >= calls.length) break;
    const c = calls[i];
    results[i] = k[c[0]](c[1], c[2], c[3], c[4], c[5], c[6] === -1 ? scratch : c[6], c[7]);
  }
  parentPort.postMessage(null);
});
`;

/** Elements per output task (a multiple of 8). */
const MIX_TASK = 1 << 18;

/** Tensors smaller than this run on the main thread only. */
const MIN_PARALLEL = 1 << 20;

export class SlerpWorkers {
  private readonly workers: Worker[];
  private readonly waiting: ((v: unknown) => void)[][];
  private readonly arena = theArena();

  constructor(count = Math.max(0, Math.min(3, availableParallelism() - 1))) {
    this.workers = [];
    this.waiting = [];
    const a = this.arena;
    for (let i = 0; i < Math.min(count, MAX_THREADS - 1); i++) {
      const w = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { module: kernelModule(), memory: a.memory, scratch: (i + 1) * SCRATCH },
      });
      const q: ((v: unknown) => void)[] = [];
      w.on("message", (v) => q.shift()?.(v));
      w.on("error", (e) => {
        for (const r of q.splice(0)) r(e);
      });
      this.workers.push(w);
      this.waiting.push(q);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  private call(i: number, msg: unknown): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.waiting[i].push((v) => (v instanceof Error ? reject(v) : resolve(v)));
      this.workers[i].postMessage(msg);
    });
  }

  /** Run the calls on the main thread and (when `parallel`) the workers, taking them in turn; results in call order. */
  private async runAll(calls: Call[], parallel: boolean): Promise<Float64Array> {
    const results = new Float64Array(new SharedArrayBuffer(8 * Math.max(1, calls.length)));
    const next = new Int32Array(new SharedArrayBuffer(4));
    const helpers = parallel && calls.length > 1 ? this.workers : [];
    const done = helpers.map((_, i) => this.call(i, { calls, next, results }));
    const k = this.arena.main() as unknown as Record<string, (...a: number[]) => number>;
    for (;;) {
      const i = Atomics.add(next, 0, 1);
      if (i >= calls.length) break;
      const c = calls[i];
      results[i] = k[c[0]](c[1], c[2], c[3], c[4], c[5], c[6] === -1 ? 0 : c[6], c[7]);
    }
    await Promise.all(done);
    return results;
  }

  /**
   * SLERP of bf16 tensors held in pool buffers (shared kernel memory), into `dst` (a pool buffer too), with
   * mergekit's statistics for a torch run on `threads` intra-op threads; returns them and the coefficients.
   */
  async slerpBf16(
    a: Uint8Array,
    b: Uint8Array,
    t: number,
    dst: Uint8Array,
    threads = peerThreads(),
  ): Promise<{ normA: number; normB: number; dot: number; c0: number; c1: number }> {
    const n = a.byteLength / 2;
    const owned = this.arena.owned;
    if (!owned.has(a) || !owned.has(b) || !owned.has(dst)) return slerpBf16Js(a, b, t, dst, threads);
    const parallel = n >= MIN_PARALLEL && this.workers.length > 0;
    const chunks = Math.max(1, Math.ceil(n / TORCH_CHUNK));
    const pa = a.byteOffset;
    const pb = b.byteOffset;
    // 1: Σx² per chunk, a's then b's
    const sqCalls: Call[] = [];
    for (const p of [pa, pb]) {
      for (let c = 0; c < chunks; c++) {
        const m = Math.min(TORCH_CHUNK, n - c * TORCH_CHUNK);
        sqCalls.push(["sq", p + 2 * c * TORCH_CHUNK, m]);
      }
    }
    const sq = await this.runAll(sqCalls, parallel);
    const norms = (o: number) => Float32Array.from(sq.slice(o, o + chunks), (s) => Math.fround(Math.sqrt(s)));
    let ra = torchNormOf(norms(0));
    let rb = torchNormOf(norms(chunks));
    if (!(ra > EPS32)) ra = 1;
    if (!(rb > EPS32)) rb = 1;
    // 2: dot per chunk, in torch's per-thread parts
    const dotCalls: Call[] = [];
    const partsOf: number[] = [];
    for (let c = 0; c < chunks; c++) {
      const s = c * TORCH_CHUNK;
      const m = Math.min(TORCH_CHUNK, n - s);
      const split = torchSplit(m, threads);
      partsOf.push(torchTwoPass(m, threads) ? split.length : 0);
      for (const [b0, e0] of split) {
        const rows = (e0 - b0) >> 5;
        dotCalls.push([
          "dot",
          pa + 2 * (s + b0),
          pb + 2 * (s + b0),
          e0 - b0,
          ra,
          rb,
          -1,
          cascadeLevelPower(rows),
        ]);
      }
    }
    const partial = await this.runAll(dotCalls, parallel);
    const dots = new Float32Array(chunks);
    let j = 0;
    for (let c = 0; c < chunks; c++) {
      if (partsOf[c] === 0) dots[c] = partial[j++];
      else {
        const buf = new Float32Array(threads);
        for (let t = 0; t < partsOf[c]; t++) buf[t] = partial[j++];
        dots[c] = torchSum(buf, 0, threads);
      }
    }
    const dot = torchSum(dots, 0, chunks);
    const { c0, c1 } = coefficientsFromDot(t, dot);
    // 3: output, in ranges of whole 8-element groups; the < 8 tail in JS
    const n8 = n - (n % 8);
    const mixCalls: Call[] = [];
    for (let s = 0; s < n8; s += MIX_TASK) {
      const e = Math.min(n8, s + MIX_TASK);
      mixCalls.push(["mix", pa + 2 * s, pb + 2 * s, dst.byteOffset + 2 * s, e - s, c0, c1]);
    }
    await this.runAll(mixCalls, parallel);
    if (n8 < n) {
      const h = (x: Uint8Array) => new Uint16Array(x.buffer, x.byteOffset, n);
      slerpBf16Pass2(h(a), h(b), h(dst), n8, n, c0, c1);
    }
    return { normA: ra, normB: rb, dot, c0, c1 };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/**
 * The same SLERP in JavaScript for buffers outside the kernel memory (a tensor too large for its 4 GiB):
 * the same statistics, decoded a chunk at a time.
 */
function slerpBf16Js(
  a: Uint8Array,
  b: Uint8Array,
  t: number,
  dst: Uint8Array,
  threads: number,
): { normA: number; normB: number; dot: number; c0: number; c1: number } {
  const n = a.byteLength / 2;
  const h = (x: Uint8Array) => new Uint16Array(x.buffer, x.byteOffset, n);
  const [ha, hb] = [h(a), h(b)];
  const bufA = new Float32Array(Math.min(TORCH_CHUNK, n));
  const bufB = new Float32Array(Math.min(TORCH_CHUNK, n));
  const chunk = (x: Uint16Array, buf: Float32Array) => (s: number, m: number) =>
    bf16ToF32(x.subarray(s, s + m), buf.subarray(0, m));
  const st = peerSlerpStatsOf(n, chunk(ha, bufA), chunk(hb, bufB), threads);
  const { c0, c1 } = coefficientsFromDot(t, st.dot);
  slerpBf16Pass2(ha, hb, h(dst), 0, n, c0, c1);
  return { ...st, c0, c1 };
}
