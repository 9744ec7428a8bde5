/**
 * The engine's runtime: the one module that imports `@jax-js/jax`. It installs the Node shims, the worker
 * pool and the memory patch (./install.ts, evaluated first), re-exports jax-js, and initialises the device.
 * Every other file imports the engine from here (biome.json forbids `@jax-js/jax` elsewhere), so jax-js
 * always starts with its worker pool.
 *
 * The thread count is fixed when this module is first imported: set `TTRL_THREADS` (the `ttrl` CLI sets it
 * from `--threads`). `initRuntime({ threads })` with a different count warns and keeps the startup count.
 */
// A side-effect import first (import sorting keeps it first): the shims and the pool go in before jax-js loads.
import "./install.ts";
import * as jax from "@jax-js/jax";
import { POOL_THREADS } from "./install.ts";

export * from "@jax-js/jax";
export { poolWorkers } from "./pool.ts";

/** The devices ttrl's engine runs on. */
export const ENGINE_DEVICES = ["wasm"] as const;
export type EngineDevice = (typeof ENGINE_DEVICES)[number];

let initialised: Promise<void> | null = null;
let activeDevice: EngineDevice = "wasm";
let warned = false;

/** Number of compute threads the runtime uses. */
export function runtimeThreads(): number {
  return POOL_THREADS;
}

/** Default thread count (TTRL_THREADS, else CPUs capped at 8), as used at startup. */
export function defaultThreads(): number {
  return POOL_THREADS;
}

/** The device the engine was initialised on (wasm until `initRuntime` picks another). */
export function runtimeDevice(): EngineDevice {
  return activeDevice;
}

/** Initialise jax-js on the Wasm backend (idempotent). */
export async function initRuntime(opts?: { threads?: number }): Promise<void> {
  if (opts?.threads !== undefined && opts.threads !== POOL_THREADS && !warned) {
    warned = true;
    process.stderr.write(
      `ttrl: warning: the engine's thread count is fixed at process start (${POOL_THREADS}); set TTRL_THREADS=${opts.threads} to change it\n`,
    );
  }
  if (initialised) return initialised;
  initialised = (async () => {
    await jax.init("wasm");
    jax.defaultDevice("wasm");
    activeDevice = "wasm";
    // jax-js compiles shared-memory kernels when it sees a worker pool at import; if something had imported
    // it before ./install.ts ran, the first kernel would fail on its memory import. Say so plainly.
    try {
      const probe = jax.numpy.expm1(jax.numpy.array(new Float32Array([0.25, 0.5, 1.5, 2.5, 3.5, 4.5, 7.25])));
      await probe.data();
    } catch (e) {
      if (!/memory import/i.test(String((e as Error)?.message))) throw e;
      throw new Error(
        "jax-js was imported before ttrl's runtime installed its worker pool: import the engine from src/runtime/jax.ts only",
      );
    }
  })();
  return initialised;
}
