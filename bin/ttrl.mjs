#!/usr/bin/env node
// Entry point of the `ttrl` CLI: runs the TypeScript sources through tsx's ESM loader.
import { register } from "tsx/esm/api";

register();
// The model engine's thread count and Node polyfills (worker pool, relaxed SIMD) must be in place before
// jax-js is first imported, which happens while commands are discovered: take --threads from argv here.
const argv = process.argv;
for (let i = 2; i < argv.length; i++) {
  const m = /^--threads(?:=(\d+))?$/.exec(argv[i]);
  if (m && (m[1] ?? argv[i + 1]) && /^\d+$/.test(m[1] ?? argv[i + 1]) && Number(m[1] ?? argv[i + 1]) >= 1)
    process.env.TTRL_THREADS = m[1] ?? argv[i + 1];
}
await import("../src/model/polyfills.ts");
const { main } = await import("../src/cli/main.ts");
await main(process.argv);
// The engine's worker threads can keep the event loop alive after a command has finished (or failed): exit
// explicitly. Long-running commands (serve) only return from main() once they have shut down.
process.exit(process.exitCode ?? 0);
