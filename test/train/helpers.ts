// Single-threaded engine, and jax-js must see the engine's Node polyfills before it is first imported.
import "./env.ts";
import "../../src/model/polyfills.ts";
/** Shared setup for training tests: the jax-js runtime (the engine's initRuntime when present). */
import { existsSync } from "node:fs";
import { init } from "@jax-js/jax";

let ready: Promise<void> | null = null;

export function setupRuntime(): Promise<void> {
  if (!ready) {
    ready = (async () => {
      const rt = new URL("../../src/model/runtime.ts", import.meta.url);
      if (existsSync(rt)) {
        const mod = (await import(rt.href)) as { initRuntime?: (o?: { threads?: number }) => Promise<void> };
        if (mod.initRuntime) return mod.initRuntime({ threads: 1 });
      }
      await init("wasm");
    })();
  }
  return ready;
}
