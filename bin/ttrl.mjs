#!/usr/bin/env node
// Entry point of the `ttrl` CLI: runs the TypeScript sources through tsx's ESM loader.
import { register } from "tsx/esm/api";

register();
// The model engine's thread count is fixed when its runtime (src/runtime/jax.ts, which installs the worker
// pool before jax-js loads) is first imported: take --threads from argv here, before any command loads.
const argv = process.argv;
for (let i = 2; i < argv.length; i++) {
  const m = /^--threads(?:=(\d+))?$/.exec(argv[i]);
  if (m && (m[1] ?? argv[i + 1]) && /^\d+$/.test(m[1] ?? argv[i + 1]) && Number(m[1] ?? argv[i + 1]) >= 1)
    process.env.TTRL_THREADS = m[1] ?? argv[i + 1];
}
const { main } = await import("../src/cli/main.ts");
await main(process.argv);
// The engine's worker threads can keep the event loop alive after a command has finished (or failed): exit
// explicitly. Long-running commands (serve) only return from main() once they have shut down.
process.exit(process.exitCode ?? 0);
