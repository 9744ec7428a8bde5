/** Issue 15 items 8 and 14: init-model never overwrites a model without --overwrite; a file as --out is a clear error. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";

const root = mkdtempSync(join(tmpdir(), "ttrl-init-"));
after(() => rmSync(root, { recursive: true, force: true }));

const ttrl = (...args: string[]) =>
  spawnSync(process.execPath, ["bin/ttrl.mjs", "init-model", "--preset", "tiny", ...args], {
    encoding: "utf8",
    env: { ...process.env, TTRL_QUIET: "1", TTRL_THREADS: "1" },
  });
const noStack = (stderr: string) => assert.doesNotMatch(stderr, /\n\s+at |Error: E[A-Z]+:/, stderr);

test("init-model into an existing model folder is refused without --overwrite (trained weights were replaced silently)", () => {
  const out = join(root, "m");
  let r = ttrl("--out", out, "--seed", "1");
  assert.equal(r.status, 0, r.stderr);
  const weights = readFileSync(join(out, "model.safetensors"));
  writeFileSync(join(out, "README.md"), "my notes");
  r = ttrl("--out", out, "--seed", "2");
  assert.equal(r.status, 2, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(`${out}: already exists and holds a model \\(config\\.json, .*\\); use --overwrite`),
  );
  noStack(r.stderr);
  assert.ok(readFileSync(join(out, "model.safetensors")).equals(weights), "weights untouched");
  // --overwrite replaces the model and keeps the user's other files
  r = ttrl("--out", out, "--seed", "2", "--overwrite");
  assert.equal(r.status, 0, r.stderr);
  assert.ok(!readFileSync(join(out, "model.safetensors")).equals(weights), "new weights");
  assert.equal(readFileSync(join(out, "README.md"), "utf8"), "my notes");
});

test("init-model --out <existing file> or a path under a file: a clear error, no stack trace, the file untouched", () => {
  const file = join(root, "f.txt");
  writeFileSync(file, "keep");
  let r = ttrl("--out", file);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`${file}: exists and is a file, not a folder`));
  noStack(r.stderr);
  r = ttrl("--out", join(file, "sub"));
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /f\.txt\/sub: a parent of --out is a file, not a folder/);
  noStack(r.stderr);
  assert.equal(readFileSync(file, "utf8"), "keep");
});

test("init-model into an existing empty folder is fine; a non-empty folder without a model still needs --overwrite", () => {
  const empty = mkdtempSync(join(root, "empty-"));
  assert.equal(ttrl("--out", empty).status, 0);
  const other = mkdtempSync(join(root, "other-"));
  writeFileSync(join(other, "notes.txt"), "x");
  const r = ttrl("--out", other);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /already exists and is not empty \(1 entries\); use --overwrite/);
});
