/**
 * Node shims jax-js needs (installed by ./install.ts, before jax-js is first imported):
 *
 * - `navigator`: jax-js reads `userAgent` at import (it crashes without it), `hardwareConcurrency` (the size
 *   of its Wasm worker pool) and, for the WebGPU device, `gpu` (set by ./webgpu.ts when that device is
 *   chosen).
 * - `Float16Array` (Node 20/22 lack it): jax-js constructs it only for float16 arrays on the Wasm device,
 *   which ttrl never creates; a stub keeps its `instanceof` checks from throwing a ReferenceError.
 * - Iterator helpers (Node 20): `Iterator.prototype.map/filter/take/...`, used by `np.einsum`.
 * - Wasm relaxed SIMD (fused multiply-add in jax-js's matmul kernels, found by feature probe) ships in
 *   Node >= 22 and sits behind a flag in Node 20; the flag is set before any Wasm compiles (+25-35% matmul
 *   here). It only changes the rounding of a*b+c (fused or not). `TTRL_NO_RELAXED_SIMD=1` keeps it off.
 */
import { setFlagsFromString } from "node:v8";

/** Turn on Wasm relaxed SIMD on Node 20 (unless TTRL_NO_RELAXED_SIMD is set). */
export function enableRelaxedSimd(): void {
  if (!process.env.TTRL_NO_RELAXED_SIMD && Number(process.versions.node.split(".")[0]) === 20)
    setFlagsFromString("--experimental-wasm-relaxed-simd");
}

/**
 * A writable `navigator` with `userAgent` and `hardwareConcurrency` = `threads` (Node 21+ has a read-only
 * one, replaced here by a plain object that keeps its user agent).
 */
export function installNavigator(threads: number): void {
  const g = globalThis as Record<string, unknown>;
  const nav = (g.navigator ?? {}) as Record<string, unknown>;
  try {
    Object.defineProperty(nav, "hardwareConcurrency", { value: threads, configurable: true });
  } catch {
    /* read-only on some versions; handled below */
  }
  if (g.navigator === undefined) {
    Object.defineProperty(g, "navigator", {
      value: { userAgent: `Node.js/${process.version}`, hardwareConcurrency: threads },
      configurable: true,
      writable: true,
    });
  } else if ((g.navigator as { hardwareConcurrency?: number }).hardwareConcurrency !== threads) {
    Object.defineProperty(g, "navigator", {
      value: {
        userAgent: String(nav.userAgent ?? `Node.js/${process.version}`),
        hardwareConcurrency: threads,
      },
      configurable: true,
      writable: true,
    });
  }
}

/** A `Float16Array` stub where the runtime has none. */
export function installFloat16Stub(): void {
  const g = globalThis as Record<string, unknown>;
  if (g.Float16Array === undefined) {
    g.Float16Array = class Float16ArrayUnsupported {
      constructor() {
        throw new Error("float16 arrays are not supported on this Node version");
      }
    };
  }
}

/** Iterator helpers (Node 20): Iterator.prototype.map/filter/take/drop/flatMap/toArray/forEach/some/every/find/reduce. */
export function installIteratorHelpers(): void {
  const iterProto = Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]())) as Record<
    string,
    unknown
  >;
  const def = (name: string, fn: (...a: never[]) => unknown) => {
    if (typeof iterProto[name] !== "function")
      Object.defineProperty(iterProto, name, { value: fn, configurable: true, writable: true });
  };
  type It = Iterator<unknown> & Iterable<unknown>;
  def("map", function* (this: It, f: (x: unknown, i: number) => unknown) {
    let i = 0;
    for (const x of this) yield f(x, i++);
  } as never);
  def("filter", function* (this: It, f: (x: unknown, i: number) => boolean) {
    let i = 0;
    for (const x of this) if (f(x, i++)) yield x;
  } as never);
  def("take", function* (this: It, n: number) {
    if (n <= 0) return;
    let i = 0;
    for (const x of this) {
      yield x;
      if (++i >= n) return;
    }
  } as never);
  def("drop", function* (this: It, n: number) {
    let i = 0;
    for (const x of this) if (i++ >= n) yield x;
  } as never);
  def("flatMap", function* (this: It, f: (x: unknown, i: number) => Iterable<unknown>) {
    let i = 0;
    for (const x of this) yield* f(x, i++);
  } as never);
  def("toArray", function (this: It) {
    return [...this];
  } as never);
  def("forEach", function (this: It, f: (x: unknown, i: number) => void) {
    let i = 0;
    for (const x of this) f(x, i++);
  } as never);
  def("some", function (this: It, f: (x: unknown, i: number) => boolean) {
    let i = 0;
    for (const x of this) if (f(x, i++)) return true;
    return false;
  } as never);
  def("every", function (this: It, f: (x: unknown, i: number) => boolean) {
    let i = 0;
    for (const x of this) if (!f(x, i++)) return false;
    return true;
  } as never);
  def("find", function (this: It, f: (x: unknown, i: number) => boolean) {
    let i = 0;
    for (const x of this) if (f(x, i++)) return x;
    return undefined;
  } as never);
  def("reduce", function (this: It, f: (a: unknown, x: unknown, i: number) => unknown, ...init: unknown[]) {
    let i = 0;
    let acc: unknown;
    let started = init.length > 0;
    if (started) acc = init[0];
    for (const x of this) {
      if (!started) {
        acc = x;
        started = true;
      } else acc = f(acc, x, i);
      i++;
    }
    if (!started) throw new TypeError("Reduce of empty iterator with no initial value");
    return acc;
  } as never);
}
