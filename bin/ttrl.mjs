#!/usr/bin/env node
// Entry point of the `ttrl` CLI: runs the TypeScript sources through tsx's ESM loader.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/cli/main.ts");
await main(process.argv);
