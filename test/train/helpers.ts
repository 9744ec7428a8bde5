// Single-threaded engine: env.ts sets TTRL_THREADS before the engine's runtime is first imported.
import "./env.ts";
/** Shared setup for training tests: the engine's runtime, one thread. */
import { initRuntime } from "../../src/runtime/jax.ts";

export function setupRuntime(): Promise<void> {
  return initRuntime({ threads: 1 });
}
