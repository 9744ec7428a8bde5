/**
 * Parallel bf16 SLERP: WebAssembly SIMD kernels (wasm.ts) over one shared `WebAssembly.Memory`, run on the
 * main thread and on worker threads that instantiate the same module over the same memory. Tensors are read
 * from disk straight into that memory (`BufferPool`), so nothing is copied between threads.
 *
 * Per tensor, three phases, each split over the threads: Σa², Σb² per torch chunk (`sq`); the dot of the
 * normalised tensors per chunk, in the parts torch's two-pass reduction uses (`dot`); the output (`mix`).
 * The statistics are combined on the main thread in torch's order (methods.ts), so results do not depend on
 * this process's thread count.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import {
  coefficientsFromDot,
  peerThreads,
  slerpBf16Pass2,
  TORCH_CHUNK,
  torchNormOf,
  torchSplit,
  torchSum,
} from "./methods.ts";
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

/** Reusable byte buffers in the shared kernel memory (plain SharedArrayBuffers if it is full), by length. */
export class BufferPool {
  private free = new Map<number, Uint8Array[]>();

  get(bytes: number): Uint8Array {
    const b = this.free.get(bytes)?.pop();
    if (b) return b;
    return theArena().alloc(bytes) ?? new Uint8Array(new SharedArrayBuffer(Math.max(bytes, 1)), 0, bytes);
  }

  put(b: Uint8Array): void {
    const l = this.free.get(b.byteLength);
    if (l) l.push(b);
    else this.free.set(b.byteLength, [b]);
  }

  /** Hand every pooled buffer back to the shared memory (for the next merge in this process). */
  clear(): void {
    const a = arena;
    for (const l of this.free.values()) for (const b of l) if (a?.owned.has(b)) a.release(b);
    this.free.clear();
  }
}

type Call = [name: "sq" | "dot" | "mix", ...args: number[]];

const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const k = new WebAssembly.Instance(workerData.module, { env: { mem: workerData.memory } }).exports;
parentPort.on("message", (calls) => {
  const out = [];
  for (const c of calls) out.push(k[c[0]](c[1], c[2], c[3], c[4], c[5], c[6], c[7]));
  parentPort.postMessage(out);
});
`;

/** Tensors smaller than this run on the main thread only. */
const MIN_PARALLEL = 1 << 20;

function run(k: Kernels, calls: Call[]): number[] {
  const f = k as unknown as Record<string, (...a: number[]) => number>;
  return calls.map(([name, ...args]) => f[name](...args));
}

export class SlerpWorkers {
  private readonly workers: Worker[];
  private readonly waiting: ((v: unknown) => void)[][];

  constructor(count = Math.max(0, Math.min(3, availableParallelism() - 1))) {
    this.workers = [];
    this.waiting = [];
    const a = theArena();
    for (let i = 0; i < count; i++) {
      const w = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { module: kernelModule(), memory: a.memory },
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

  private call(i: number, calls: Call[]): Promise<number[]> {
    return new Promise((resolve, reject) => {
      this.waiting[i].push((v) => (v instanceof Error ? reject(v) : resolve(v as number[])));
      this.workers[i].postMessage(calls);
    });
  }

  /**
   * Run calls (each with its element count as weight) split into contiguous groups over the main thread
   * and the workers; results in call order. `scratchArg`: index of the scratch-pointer argument, set per
   * thread.
   */
  private async runAll(
    calls: Call[],
    weights: number[],
    parallel: boolean,
    scratchArg = -1,
  ): Promise<number[]> {
    const parts = parallel ? Math.min(this.workers.length + 1, calls.length) : 1;
    const total = weights.reduce((x, y) => x + y, 0);
    const groups: Call[][] = Array.from({ length: parts }, () => []);
    let acc = 0;
    calls.forEach((c, i) => {
      const g = Math.min(parts - 1, Math.floor((acc / Math.max(1, total)) * parts));
      acc += weights[i];
      groups[g].push(c);
    });
    groups.forEach((g, t) => {
      if (scratchArg >= 0) for (const c of g) c[scratchArg + 1] = t * SCRATCH;
    });
    const others = groups.slice(1).map((g, i) => (g.length ? this.call(i, g) : Promise.resolve([])));
    const mine = run(theArena().main(), groups[0]);
    const rest = await Promise.all(others);
    return [mine, ...rest].flat();
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
    const owned = theArena().owned;
    if (!owned.has(a) || !owned.has(b) || !owned.has(dst)) {
      throw new Error("slerpBf16: buffers must come from BufferPool");
    }
    const parallel = n >= MIN_PARALLEL && this.workers.length > 0;
    const chunks = Math.max(1, Math.ceil(n / TORCH_CHUNK));
    const pa = a.byteOffset;
    const pb = b.byteOffset;
    // 1: Σx² per chunk, a's then b's
    const sqCalls: Call[] = [];
    const sqW: number[] = [];
    for (const p of [pa, pb]) {
      for (let c = 0; c < chunks; c++) {
        const m = Math.min(TORCH_CHUNK, n - c * TORCH_CHUNK);
        sqCalls.push(["sq", p + 2 * c * TORCH_CHUNK, m]);
        sqW.push(m);
      }
    }
    const sq = await this.runAll(sqCalls, sqW, parallel);
    const norms = (o: number) => Float32Array.from(sq.slice(o, o + chunks), (s) => Math.fround(Math.sqrt(s)));
    let ra = torchNormOf(norms(0));
    let rb = torchNormOf(norms(chunks));
    const eps = Math.fround(1e-8);
    if (!(ra > eps)) ra = 1;
    if (!(rb > eps)) rb = 1;
    // 2: dot per chunk, in torch's per-thread parts
    const dotCalls: Call[] = [];
    const dotW: number[] = [];
    const partsOf: number[] = [];
    for (let c = 0; c < chunks; c++) {
      const s = c * TORCH_CHUNK;
      const m = Math.min(TORCH_CHUNK, n - s);
      const split = torchSplit(m, threads);
      partsOf.push(split.length === 1 && (m < 32768 || threads <= 1) ? 0 : split.length);
      for (const [b0, e0] of split) {
        const rows = (e0 - b0) >> 5;
        dotCalls.push(["dot", pa + 2 * (s + b0), pb + 2 * (s + b0), e0 - b0, ra, rb, 0, levelPower(rows)]);
        dotW.push(e0 - b0);
      }
    }
    const partial = await this.runAll(dotCalls, dotW, parallel, 5);
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
    const P = parallel ? this.workers.length + 1 : 1;
    const mixCalls: Call[] = [];
    const mixW: number[] = [];
    for (let i = 0; i < P; i++) {
      const s = Math.round((n8 / 8) * (i / P)) * 8;
      const e = Math.round((n8 / 8) * ((i + 1) / P)) * 8;
      if (e > s) {
        mixCalls.push(["mix", pa + 2 * s, pb + 2 * s, dst.byteOffset + 2 * s, e - s, c0, c1]);
        mixW.push(e - s);
      }
    }
    await this.runAll(mixCalls, mixW, parallel);
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

function levelPower(rows: number): number {
  const cl = rows <= 2 ? 1 : Math.floor(Math.log2(rows - 1)) + 1;
  return Math.max(4, Math.floor(cl / 4));
}
