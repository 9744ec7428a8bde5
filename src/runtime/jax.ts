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
import {
  type ComputeDtype,
  checkComputeDtype,
  chosenComputeDtype,
  chosenDevice,
  type EngineDevice,
  markComputeStarted,
  markStarted,
  selectComputeDtype,
  selectDevice,
} from "./device.ts";
import { POOL_THREADS } from "./install.ts";

export * from "@jax-js/jax";
export {
  COMPUTE_DTYPES,
  type ComputeDtype,
  ENGINE_DEVICES,
  type EngineDevice,
  parseComputeDtype,
  parseDevice,
  selectComputeDtype,
  selectDevice,
} from "./device.ts";
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
 * The precision of the model's matmuls (`--compute-dtype`): float32, or float16 mixed precision (see
 * ./device.ts and `mm` in src/model/forward.ts). Fixed once the runtime starts.
 */
export function runtimeComputeDtype(): ComputeDtype {
  return chosenComputeDtype();
}

let float32Scope = 0;

/**
 * Run `f` (a forward being traced) with float32 matmuls whatever the compute dtype. jax-js 0.1.25 cannot
 * differentiate a dtype cast (it has no transpose rule for `cast`: "Backward pass not implemented for
 * cast"), so every differentiated forward traces its matmuls in float32: `valueAndGrad` and `grad` below do
 * this for the function they differentiate, and the trainers' reference / old-policy log-probs, which meet
 * the loss's log-probs, use it too. Synchronous: the scope covers the tracing of `f` only.
 */
export function float32Matmuls<T>(f: () => T): T {
  float32Scope++;
  try {
    return f();
  } finally {
    float32Scope--;
  }
}

/** The dtype the model's matmuls trace in now: the compute dtype, or float32 inside `float32Matmuls`. */
export function matmulDtype(): ComputeDtype {
  return float32Scope > 0 ? "float32" : chosenComputeDtype();
}

type AnyFn = (...args: never[]) => unknown;
const inFloat32 =
  <F extends AnyFn>(f: F) =>
  (...args: Parameters<F>) =>
    float32Matmuls(() => f(...args));

/** jax-js's `valueAndGrad`, differentiating `f` with float32 matmuls (see `float32Matmuls`). */
export const valueAndGrad = ((f: AnyFn, opts?: unknown) =>
  jax.valueAndGrad(inFloat32(f) as never, opts as never)) as unknown as typeof jax.valueAndGrad;

/** jax-js's `grad`, differentiating `f` with float32 matmuls (see `float32Matmuls`). */
export const grad = ((f: AnyFn, opts?: unknown) =>
  jax.grad(inFloat32(f) as never, opts as never)) as unknown as typeof jax.grad;

/**
 * Initialise jax-js on the chosen device (idempotent): `opts.device`, else `selectDevice`'s choice (the CLI's
 * `--device`), else `TTRL_DEVICE`, else wasm. Arrays are then created on that device; model parameters,
 * loaded once, stay there across steps. The compute dtype (`opts.computeDtype`, else `--compute-dtype`, else
 * `TTRL_COMPUTE_DTYPE`, else float32) is checked against the device here, before any work.
 */
export async function initRuntime(opts?: {
  threads?: number;
  device?: EngineDevice;
  computeDtype?: ComputeDtype;
}): Promise<void> {
  if (opts?.device) selectDevice(opts.device);
  if (opts?.computeDtype) selectComputeDtype(opts.computeDtype);
  if (opts?.threads !== undefined && opts.threads !== POOL_THREADS && !warned) {
    warned = true;
    process.stderr.write(
      `ttrl: warning: the engine's thread count is fixed at process start (${POOL_THREADS}); set TTRL_THREADS=${opts.threads} to change it\n`,
    );
  }
  if (initialised) return initialised;
  const device = chosenDevice();
  const dtype = chosenComputeDtype();
  initialised = (async () => {
    if (device === "webgpu") {
      const { startWebGpu } = await import("./webgpu.ts");
      const gpu = await startWebGpu();
      checkComputeDtype(dtype, device, gpu); // before jax-js opens the device (its own error says less)
      const ready = await jax.init("webgpu");
      if (!ready.includes("webgpu"))
        throw new TtrlError(
          `--device webgpu: jax-js could not open a device on the adapter (${gpu.adapter})`,
        );
      jax.defaultDevice("webgpu");
      markStarted("webgpu");
      markComputeStarted(dtype);
      return;
    }
    checkComputeDtype(dtype, device);
    await jax.init("wasm");
    jax.defaultDevice("wasm");
    markStarted("wasm");
    markComputeStarted(dtype);
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
