/**
 * Installs the engine's Node shims, worker pool and memory patch, once per process, as a side effect of
 * being imported. Only ./jax.ts imports it, before `@jax-js/jax` (which builds its Wasm backend and decides
 * whether to use a worker pool, and how many workers, at import time); every other file imports the engine
 * from ./jax.ts, so the order cannot go wrong (biome.json forbids importing `@jax-js/jax` anywhere else).
 */
import { installGeometricMemory } from "./memory.ts";
import { installWorkerPool, startupThreads } from "./pool.ts";
import { enableRelaxedSimd, installFloat16Stub, installIteratorHelpers, installNavigator } from "./shims.ts";

/** The thread count the runtime was installed for (the jax-js worker-pool size, or 1). */
export const POOL_THREADS: number = (() => {
  const g = globalThis as Record<string, unknown>;
  const key = "__ttrlPolyfillThreads";
  if (typeof g[key] === "number") return g[key] as number;
  const threads = startupThreads();
  enableRelaxedSimd();
  installNavigator(threads);
  installFloat16Stub();
  installIteratorHelpers();
  installGeometricMemory();
  installWorkerPool(threads);
  g[key] = threads;
  return threads;
})();
