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
import { TtrlError } from "../util/errors.ts";
import { chosenDevice, type EngineDevice, markStarted, selectDevice } from "./device.ts";
import { POOL_THREADS } from "./install.ts";

export * from "@jax-js/jax";
export { ENGINE_DEVICES, type EngineDevice, parseDevice, selectDevice } from "./device.ts";
export { poolWorkers } from "./pool.ts";
export { checkDeviceTensor, webgpuInfo, webgpuMemory } from "./webgpu.ts";

let initialised: Promise<void> | null = null;
let warned = false;

/** Number of compute threads the runtime uses. */
export function runtimeThreads(): number {
  return POOL_THREADS;
}

/** Default thread count (TTRL_THREADS, else CPUs capped at 8), as used at startup. */
export function defaultThreads(): number {
  return POOL_THREADS;
}

/** The device the engine runs on (or will run on once `initRuntime` starts it). */
export function runtimeDevice(): EngineDevice {
  return chosenDevice();
}

/**
 * Initialise jax-js on the chosen device (idempotent): `opts.device`, else `selectDevice`'s choice (the CLI's
 * `--device`), else `TTRL_DEVICE`, else wasm. Arrays are then created on that device; model parameters,
 * loaded once, stay there across steps.
 */
export async function initRuntime(opts?: { threads?: number; device?: EngineDevice }): Promise<void> {
  if (opts?.device) selectDevice(opts.device);
  if (opts?.threads !== undefined && opts.threads !== POOL_THREADS && !warned) {
    warned = true;
    process.stderr.write(
      `ttrl: warning: the engine's thread count is fixed at process start (${POOL_THREADS}); set TTRL_THREADS=${opts.threads} to change it\n`,
    );
  }
  if (initialised) return initialised;
  const device = chosenDevice();
  initialised = (async () => {
    if (device === "webgpu") {
      const { startWebGpu } = await import("./webgpu.ts");
      const gpu = await startWebGpu();
      const ready = await jax.init("webgpu");
      if (!ready.includes("webgpu"))
        throw new TtrlError(
          `--device webgpu: jax-js could not open a device on the adapter (${gpu.adapter})`,
        );
      jax.defaultDevice("webgpu");
      markStarted("webgpu");
      return;
    }
    await jax.init("wasm");
    jax.defaultDevice("wasm");
    markStarted("wasm");
    // jax-js compiles shared-memory kernels when it sees a worker pool at import; if something had imported
    // it before ./install.ts ran, the first kernel would fail on its memory import. Say so plainly.
    try {
      const probe = jax.numpy.expm1(jax.numpy.array(new Float32Array([0.25, 0.5, 1.5, 2.5, 3.5, 4.5, 7.25])));
      await probe.data();
    } catch (e) {
      if (!/memory import/i.test(String((e as Error)?.message))) throw e;
      throw new TtrlError(
        "jax-js was imported before ttrl's runtime installed its worker pool: import the engine from src/runtime/jax.ts only",
      );
    }
  })();
  return initialised;
}
