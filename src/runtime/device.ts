/**
 * Which device the engine runs on, chosen once per process before the runtime initialises: `wasm` (the
 * default; CPU threads) or `webgpu` (a GPU through Dawn, see ./webgpu.ts). The CLI's `--device` (and the
 * experiment's `device:` key) call `selectDevice`; `initRuntime` (./jax.ts) then starts that device. This
 * module loads no engine code, so the CLI can call it while parsing flags.
 *
 * The compute precision is chosen the same way (`--compute-dtype`, `compute_dtype:`, `TTRL_COMPUTE_DTYPE`;
 * `selectComputeDtype`): `float32` (the default) or `float16`, mixed precision — the model's matmuls cast
 * their inputs to float16 and their result back to float32 (`mm` in src/model/forward.ts); everything else
 * and the stored parameters stay float32. float16 needs the WebGPU device on an adapter with `shader-f16`;
 * `checkComputeDtype` refuses anything else when the runtime starts, before any work.
 */
import { TtrlError, UsageError } from "../util/errors.ts";

export const ENGINE_DEVICES = ["wasm", "webgpu"] as const;
export type EngineDevice = (typeof ENGINE_DEVICES)[number];

let selected: EngineDevice | null = null;
let started: EngineDevice | null = null;

/** Parse a device name (`--device`, `device:`, `TTRL_DEVICE`); `where` names the source in the error. */
export function parseDevice(value: string, where = "--device"): EngineDevice {
  if ((ENGINE_DEVICES as readonly string[]).includes(value)) return value as EngineDevice;
  throw new UsageError(`${where} must be one of ${ENGINE_DEVICES.join(", ")}, got "${value}"`);
}

/**
 * Choose the engine's device (before the runtime initialises). Choosing the device already running is a
 * no-op; choosing another once the engine has started is an error (one device per process).
 */
export function selectDevice(device: EngineDevice): void {
  if (started !== null && started !== device)
    throw new TtrlError(
      `the engine already runs on ${started} in this process; --device ${device} must be chosen before it starts`,
    );
  selected = device;
}

/** The device the runtime will start (or has started): the selected one, else TTRL_DEVICE, else wasm. */
export function chosenDevice(): EngineDevice {
  if (started) return started;
  if (selected) return selected;
  const env = process.env.TTRL_DEVICE;
  return env ? parseDevice(env, "TTRL_DEVICE") : "wasm";
}

/** Record the device the runtime started (called by ./jax.ts). */
export function markStarted(device: EngineDevice): void {
  started = device;
}

export const COMPUTE_DTYPES = ["float32", "float16"] as const;
export type ComputeDtype = (typeof COMPUTE_DTYPES)[number];

let selectedDtype: ComputeDtype | null = null;
let startedDtype: ComputeDtype | null = null;

/** Parse a compute dtype (`--compute-dtype`, `compute_dtype:`, `TTRL_COMPUTE_DTYPE`); `where` names the source. */
export function parseComputeDtype(value: string, where = "--compute-dtype"): ComputeDtype {
  if ((COMPUTE_DTYPES as readonly string[]).includes(value)) return value as ComputeDtype;
  throw new UsageError(`${where} must be one of ${COMPUTE_DTYPES.join(", ")}, got "${value}"`);
}

/** Choose the compute dtype (before the runtime initialises); like `selectDevice`, fixed once it starts. */
export function selectComputeDtype(dtype: ComputeDtype): void {
  if (startedDtype !== null && startedDtype !== dtype)
    throw new TtrlError(
      `the engine already computes in ${startedDtype} in this process; --compute-dtype ${dtype} must be chosen before it starts`,
    );
  selectedDtype = dtype;
}

/** The compute dtype in use (or to be used): the selected one, else TTRL_COMPUTE_DTYPE, else float32. */
export function chosenComputeDtype(): ComputeDtype {
  if (startedDtype) return startedDtype;
  if (selectedDtype) return selectedDtype;
  const env = process.env.TTRL_COMPUTE_DTYPE;
  return env ? parseComputeDtype(env, "TTRL_COMPUTE_DTYPE") : "float32";
}

/** Record the compute dtype the runtime started with (called by ./jax.ts). */
export function markComputeStarted(dtype: ComputeDtype): void {
  startedDtype = dtype;
}

/**
 * Refuse a compute dtype the device cannot run (called by ./jax.ts as the device starts). `gpu`: the WebGPU
 * adapter's name and whether it has `shader-f16` (absent on wasm). float32 runs everywhere.
 */
export function checkComputeDtype(
  dtype: ComputeDtype,
  device: EngineDevice,
  gpu?: { adapter: string; f16: boolean },
): void {
  if (dtype === "float32") return;
  if (device === "wasm")
    throw new UsageError(
      "--compute-dtype float16: jax-js's Wasm backend has no float16 kernels: use --device webgpu on an adapter with shader-f16, or --compute-dtype float32",
    );
  if (!gpu?.f16)
    throw new TtrlError(
      `--compute-dtype float16: the WebGPU adapter (${gpu?.adapter ?? "unknown adapter"}) lacks shader-f16 (no float16 in its shaders): use a GPU whose adapter has shader-f16, or --compute-dtype float32`,
    );
}
