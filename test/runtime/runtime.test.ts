/**
 * The engine's runtime module (src/runtime/jax.ts): importing the engine from anywhere gives jax-js its
 * worker pool, and the lint rule keeps `@jax-js/jax` out of every other file.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";

const CHILD = `
const { generate } = await import(${JSON.stringify(resolve("src/model/index.ts"))}); // a deep importer first
const rt = await import(${JSON.stringify(resolve("src/runtime/jax.ts"))});
await rt.initRuntime();
const x = rt.numpy.ones([256, 256]);
const s = await rt.numpy.sum(rt.numpy.matmul(x.ref, x)).data();
console.log(JSON.stringify({ threads: rt.runtimeThreads(), workers: rt.poolWorkers(), sum: s[0], ok: typeof generate }));
process.exit(0); // the pool's threads keep the process alive, as in bin/ttrl.mjs
`;

function child(threads: string): { threads: number; workers: number; sum: number } {
  const file = join(mkdtempSync(join(tmpdir(), "ttrl-rt-")), "child.mjs");
  writeFileSync(file, CHILD);
  const r = spawnSync(process.execPath, ["--import", "tsx", file], {
    encoding: "utf8",
    env: { ...process.env, TTRL_THREADS: threads },
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split("\n").pop() as string);
}

test("the engine starts with its worker pool whatever module imports it first, and computes the same", () => {
  const two = child("2");
  assert.equal(two.threads, 2);
  assert.equal(
    two.workers,
    2,
    "jax-js created no worker pool: the runtime was installed after jax-js loaded",
  );
  assert.equal(two.sum, 256 * 256 * 256);
  const one = child("1");
  assert.equal(one.workers, 0);
  assert.equal(one.sum, two.sum);
});

/** Biome's diagnostics for `source` at `path`, under the repo's biome.json (in a scratch copy of the tree). */
function lint(path: string, source: string): string {
  const dir = mkdtempSync(join(tmpdir(), "ttrl-lint-"));
  copyFileSync("biome.json", join(dir, "biome.json"));
  mkdirSync(dirname(join(dir, path)), { recursive: true });
  writeFileSync(join(dir, path), source);
  const r = spawnSync(resolve("node_modules/.bin/biome"), ["lint", path], { cwd: dir, encoding: "utf8" });
  return `${r.stdout}${r.stderr}`;
}

test("biome forbids importing @jax-js/jax anywhere but src/runtime/jax.ts", () => {
  const src = 'import { numpy } from "@jax-js/jax";\nexport const n = numpy;\n';
  for (const p of ["src/train/x.ts", "test/x.test.ts", "bench/x.bench.ts", "src/runtime/pool.ts"])
    assert.match(lint(p, src), /noRestrictedImports/, p);
  assert.match(lint("src/x.ts", 'export const m = () => import("@jax-js/jax");\n'), /noRestrictedImports/);
  assert.doesNotMatch(lint("src/runtime/jax.ts", src), /noRestrictedImports/);
});
