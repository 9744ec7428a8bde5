/**
 * Parallel bf16 SLERP over worker threads, and a pool of reusable shared buffers (no page faults and no
 * zero-filling per tensor: layers repeat the same shapes).
 *
 * A tensor is split into contiguous ranges: the main thread takes one, each worker another. Pass 1's partial
 * sums are added in range order, so results are deterministic for a given worker count.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { slerpBf16Pass1, slerpBf16Pass2, slerpCoefficients } from "./methods.ts";

/** Reusable Uint8Arrays over SharedArrayBuffers, keyed by byte length. */
export class BufferPool {
  private free = new Map<number, Uint8Array[]>();

  get(bytes: number): Uint8Array {
    const l = this.free.get(bytes);
    const b = l?.pop();
    return b ?? new Uint8Array(new SharedArrayBuffer(Math.max(bytes, 1)), 0, bytes);
  }

  put(b: Uint8Array): void {
    const l = this.free.get(b.byteLength);
    if (l) l.push(b);
    else this.free.set(b.byteLength, [b]);
  }

  clear(): void {
    this.free.clear();
  }
}

const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const slerpBf16Pass1 = ${slerpBf16Pass1.toString()};
const slerpBf16Pass2 = ${slerpBf16Pass2.toString()};
parentPort.on("message", (m) => {
  const ha = new Uint16Array(m.a, m.ao, m.n);
  const hb = new Uint16Array(m.b, m.bo, m.n);
  if (m.pass === 1) parentPort.postMessage(slerpBf16Pass1(ha, hb, m.start, m.end));
  else {
    slerpBf16Pass2(ha, hb, new Uint16Array(m.d, m.do, m.n), m.start, m.end, m.c0, m.c1);
    parentPort.postMessage(null);
  }
});
`;

/** Tensors smaller than this run on the main thread only. */
const MIN_PARALLEL = 1 << 20;

export class SlerpWorkers {
  private readonly workers: Worker[];
  private readonly waiting: ((v: unknown) => void)[][];

  constructor(count = Math.max(0, Math.min(3, availableParallelism() - 1))) {
    this.workers = [];
    this.waiting = [];
    for (let i = 0; i < count; i++) {
      const w = new Worker(WORKER_SOURCE, { eval: true });
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

  private call(i: number, msg: Record<string, unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.waiting[i].push((v) => (v instanceof Error ? reject(v) : resolve(v)));
      this.workers[i].postMessage(msg);
    });
  }

  /** SLERP of bf16 tensors held in shared buffers, into `dst` (shared too). */
  async slerpBf16(a: Uint8Array, b: Uint8Array, t: number, dst: Uint8Array): Promise<void> {
    const n = a.byteLength / 2;
    const ha = new Uint16Array(a.buffer, a.byteOffset, n);
    const hb = new Uint16Array(b.buffer, b.byteOffset, n);
    const hd = new Uint16Array(dst.buffer, dst.byteOffset, n);
    const shared =
      a.buffer instanceof SharedArrayBuffer &&
      b.buffer instanceof SharedArrayBuffer &&
      dst.buffer instanceof SharedArrayBuffer;
    const parts = shared && n >= MIN_PARALLEL ? this.workers.length + 1 : 1;
    const bounds = Array.from({ length: parts + 1 }, (_, i) => Math.round((n * i) / parts));
    const base = {
      a: a.buffer,
      ao: a.byteOffset,
      b: b.buffer,
      bo: b.byteOffset,
      d: dst.buffer,
      do: dst.byteOffset,
      n,
    };
    const p1 = this.workers
      .slice(0, parts - 1)
      .map((_, i) => this.call(i, { ...base, pass: 1, start: bounds[i + 1], end: bounds[i + 2] }));
    const mine = slerpBf16Pass1(ha, hb, 0, bounds[1]);
    const sums = [mine, ...((await Promise.all(p1)) as number[][])];
    let p = 0;
    let q = 0;
    let r = 0;
    for (const s of sums) {
      p += s[0];
      q += s[1];
      r += s[2];
    }
    const { c0, c1 } = slerpCoefficients(t, r, Math.sqrt(p), Math.sqrt(q));
    const p2 = this.workers
      .slice(0, parts - 1)
      .map((_, i) => this.call(i, { ...base, pass: 2, start: bounds[i + 1], end: bounds[i + 2], c0, c1 }));
    slerpBf16Pass2(ha, hb, hd, 0, bounds[1], c0, c1);
    await Promise.all(p2);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
