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

/**
 * One per-process engine setting (the device, the compute dtype): chosen before the runtime initialises
 * (flag, config key), else read from its environment variable, else its default; fixed once the runtime
 * has started with it.
 */
function processSetting<T extends string>(spec: {
  values: readonly T[];
  flag: string;
  env: string;
  fallback: T;
  /** How an error says the running value is in use: "runs on", "computes in". */
  inUse: string;
}) {
  let selected: T | null = null;
  let started: T | null = null;
  const parse = (value: string, where = spec.flag): T => {
    if ((spec.values as readonly string[]).includes(value)) return value as T;
    throw new UsageError(`${where} must be one of ${spec.values.join(", ")}, got "${value}"`);
  };
  return {
    parse,
    select(value: T): void {
      if (started !== null && started !== value)
        throw new TtrlError(
          `the engine already ${spec.inUse} ${started} in this process; ${spec.flag} ${value} must be chosen before it starts`,
        );
      selected = value;
    },
    chosen(): T {
      if (started) return started;
      if (selected) return selected;
      const env = process.env[spec.env];
      return env ? parse(env, spec.env) : spec.fallback;
    },
    markStarted(value: T): void {
      started = value;
    },
  };
}

export const ENGINE_DEVICES = ["wasm", "webgpu"] as const;
export type EngineDevice = (typeof ENGINE_DEVICES)[number];

const device = processSetting<EngineDevice>({
  values: ENGINE_DEVICES,
  flag: "--device",
  env: "TTRL_DEVICE",
  fallback: "wasm",
  inUse: "runs on",
});

/** Parse a device name (`--device`, `device:`, `TTRL_DEVICE`); `where` names the source in the error. */
export const parseDevice: (value: string, where?: string) => EngineDevice = device.parse;

/**
 * Choose the engine's device (before the runtime initialises). Choosing the device already running is a
 * no-op; choosing another once the engine has started is an error (one device per process).
 */
export const selectDevice: (value: EngineDevice) => void = device.select;

/** The device the runtime will start (or has started): the selected one, else TTRL_DEVICE, else wasm. */
export const chosenDevice: () => EngineDevice = device.chosen;

/** Record the device the runtime started (called by ./jax.ts). */
export const markStarted: (value: EngineDevice) => void = device.markStarted;

export const COMPUTE_DTYPES = ["float32", "float16"] as const;
export type ComputeDtype = (typeof COMPUTE_DTYPES)[number];

const computeDtype = processSetting<ComputeDtype>({
  values: COMPUTE_DTYPES,
  flag: "--compute-dtype",
  env: "TTRL_COMPUTE_DTYPE",
  fallback: "float32",
  inUse: "computes in",
});

/** Parse a compute dtype (`--compute-dtype`, `compute_dtype:`, `TTRL_COMPUTE_DTYPE`); `where` names the source. */
export const parseComputeDtype: (value: string, where?: string) => ComputeDtype = computeDtype.parse;

/** Choose the compute dtype (before the runtime initialises); like `selectDevice`, fixed once it starts. */
export const selectComputeDtype: (value: ComputeDtype) => void = computeDtype.select;

/** The compute dtype in use (or to be used): the selected one, else TTRL_COMPUTE_DTYPE, else float32. */
export const chosenComputeDtype: () => ComputeDtype = computeDtype.chosen;

/** Record the compute dtype the runtime started with (called by ./jax.ts). */
export const markComputeStarted: (value: ComputeDtype) => void = computeDtype.markStarted;

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
