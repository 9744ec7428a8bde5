#!/usr/bin/env node
// Runs every test/**/*.test.ts with node's own test runner (through tsx). Extra args are passed on as
// file filters: `npm test -- answers` runs only files whose path contains "answers".
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = walk("test").filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error("no test files matched");
  process.exit(1);
}
// The report's browser test needs headless Chromium: install Debian's package when missing (never fails;
// the test skips with a visible warning where it cannot be installed).
if (files.some((f) => f.includes("report"))) {
  spawnSync("bash", ["scripts/ensure-chromium.sh"], { stdio: "inherit" });
}
// The WebGPU device test needs a (software) GPU: Mesa's EGL and llvmpipe, installed the same way.
if (files.some((f) => f.includes("runtime/webgpu"))) {
  spawnSync("bash", ["scripts/ensure-mesa.sh"], { stdio: "inherit" });
}
const r = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-reporter=spec", "--test-force-exit", "--test-concurrency=2", ...files],
  { stdio: "inherit", env: { ...process.env, TTRL_QUIET: "1" } },
);
process.exit(r.status ?? 1);
