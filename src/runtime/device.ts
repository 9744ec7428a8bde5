/**
 * Which device the engine runs on, chosen once per process before the runtime initialises: `wasm` (the
 * default; CPU threads) or `webgpu` (a GPU through Dawn, see ./webgpu.ts). The CLI's `--device` (and the
 * experiment's `device:` key) call `selectDevice`; `initRuntime` (./jax.ts) then starts that device. This
 * module loads no engine code, so the CLI can call it while parsing flags.
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
