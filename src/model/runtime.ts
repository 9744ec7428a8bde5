/**
 * The one place that touches jax-js initialisation (polyfills: ./polyfills.ts, imported first).
 *
 * The thread count is fixed when jax-js is first imported: set `TTRL_THREADS` (the `ttrl` CLI sets it from
 * `--threads`). `initRuntime({ threads })` with a different count warns and keeps the startup count.
 */
import "./polyfills.ts";
import { POOL_THREADS } from "./polyfills.ts";

let initialised: Promise<void> | null = null;
let activeThreads = POOL_THREADS;
let warned = false;

/** Number of compute threads the runtime uses. */
export function runtimeThreads(): number {
  return activeThreads;
}

/** Default thread count (TTRL_THREADS, else CPUs capped at 8), as used at startup. */
export function defaultThreads(): number {
  return POOL_THREADS;
}

/** Initialise jax-js on the Wasm backend (idempotent). */
export async function initRuntime(opts?: { threads?: number }): Promise<void> {
  if (opts?.threads !== undefined && opts.threads !== activeThreads && !warned) {
    warned = true;
    process.stderr.write(
      `ttrl: warning: the engine's thread count is fixed at process start (${activeThreads}); set TTRL_THREADS=${opts.threads} to change it\n`,
    );
  }
  if (initialised) return initialised;
  initialised = (async () => {
    const jax = await import("@jax-js/jax");
    await jax.init("wasm");
    jax.defaultDevice("wasm");
    // If jax-js was imported before the polyfills, its backend has no worker pool while kernels would be
    // compiled for shared memory: detect that once and fall back to single-threaded kernels.
    try {
      const probe = jax.numpy.expm1(jax.numpy.array(new Float32Array([0.25, 0.5, 1.5, 2.5, 3.5, 4.5, 7.25])));
      await probe.data();
    } catch (e) {
      if (!/memory import/i.test(String((e as Error)?.message))) throw e;
      delete (globalThis as Record<string, unknown>).Worker;
      activeThreads = 1;
    }
  })();
  return initialised;
}
