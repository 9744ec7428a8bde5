/**
 * `--compute-dtype float32|float16` (src/runtime/device.ts): parsing, the experiment's `compute_dtype:` key,
 * the refusal on the Wasm device through a real command, and what the float16 forward traces to. No machine
 * here runs float16 (jax-js's Wasm backend has no float16 kernels, llvmpipe has no shader-f16), so the
 * float16 graph is checked on its jaxpr, not its numbers; scripts/gpu/webgpu-check.sh measures it on a GPU.
 * The refusal on an adapter without shader-f16 is in ./webgpu.test.ts (it needs Dawn).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  checkComputeDtype,
  chosenComputeDtype,
  markComputeStarted,
  parseComputeDtype,
  selectComputeDtype,
} from "../../src/runtime/device.ts";
import type { Array as JArray, JsTree } from "../../src/runtime/jax.ts";
import { TtrlError, UsageError } from "../../src/util/errors.ts";

const tmp = mkdtempSync(join(tmpdir(), "ttrl-compute-dtype-"));
const env = { ...process.env, TTRL_THREADS: "1", TTRL_DEVICE: "", TTRL_COMPUTE_DTYPE: "" };
const ttrl = (args: string[], extra: Record<string, string> = {}) =>
  spawnSync(process.execPath, ["bin/ttrl.mjs", ...args], { encoding: "utf8", env: { ...env, ...extra } });
const NO_STACK = /\n\s+at .*\.m?[jt]s:\d+/;
const WASM_F16 =
  "--compute-dtype float16: jax-js's Wasm backend has no float16 kernels: use --device webgpu on an adapter with shader-f16, or --compute-dtype float32";

test("compute dtypes are parsed by name; a bad one is refused naming its source", () => {
  assert.equal(parseComputeDtype("float16"), "float16");
  assert.equal(parseComputeDtype("float32"), "float32");
  assert.throws(
    () => parseComputeDtype("bf16"),
    (e: Error) =>
      e instanceof UsageError && e.message === '--compute-dtype must be one of float32, float16, got "bf16"',
  );
  const saved = process.env.TTRL_COMPUTE_DTYPE;
  process.env.TTRL_COMPUTE_DTYPE = "float16";
  assert.equal(chosenComputeDtype(), "float16");
  process.env.TTRL_COMPUTE_DTYPE = "fp8";
  assert.throws(
    () => chosenComputeDtype(),
    /^UsageError: TTRL_COMPUTE_DTYPE must be one of float32, float16, got "fp8"$/,
  );
  delete process.env.TTRL_COMPUTE_DTYPE;
  assert.equal(chosenComputeDtype(), "float32"); // the default
  if (saved !== undefined) process.env.TTRL_COMPUTE_DTYPE = saved;
});

test("checkComputeDtype: float32 runs anywhere; float16 needs webgpu with shader-f16", () => {
  checkComputeDtype("float32", "wasm");
  checkComputeDtype("float32", "webgpu", { adapter: "llvmpipe", f16: false });
  checkComputeDtype("float16", "webgpu", { adapter: "NVIDIA H100", f16: true });
  assert.throws(
    () => checkComputeDtype("float16", "wasm"),
    (e: Error) => e instanceof UsageError && e.message === WASM_F16,
  );
  assert.throws(
    () => checkComputeDtype("float16", "webgpu", { adapter: "llvmpipe (LLVM 15.0.6, 256 bits)", f16: false }),
    (e: Error) =>
      e instanceof TtrlError &&
      !(e instanceof UsageError) &&
      e.message ===
        "--compute-dtype float16: the WebGPU adapter (llvmpipe (LLVM 15.0.6, 256 bits)) lacks shader-f16 (no float16 in its shaders): use a GPU whose adapter has shader-f16, or --compute-dtype float32",
  );
});

test("an experiment config's compute_dtype: key is checked and kept", async () => {
  const { loadExperimentConfig } = await import("../../src/experiment/config.ts");
  const file = join(tmp, "exp.yml");
  writeFileSync(file, "device: webgpu\ncompute_dtype: float16\n");
  const cfg = loadExperimentConfig(file, "quick");
  assert.equal(cfg.compute_dtype, "float16");
  assert.equal(cfg.device, "webgpu");
  assert.equal(loadExperimentConfig(undefined, "quick").compute_dtype, undefined); // absent: float32
  writeFileSync(file, "compute_dtype: half\n");
  assert.throws(
    () => loadExperimentConfig(file, "quick"),
    (e: Error) =>
      e instanceof UsageError &&
      e.message === `${file}: "compute_dtype" must be one of float32, float16, got "half"`,
  );
});

test("ttrl logprob --compute-dtype float16 --device wasm: exit 2 with one line, before the model loads", () => {
  const input = join(tmp, "seqs.jsonl");
  writeFileSync(input, '{"id": "a", "text": "Soru: 2 + 3"}\n');
  const out = join(tmp, "lp.jsonl");
  const base = ["logprob", "--model", "models/tr-math-base", "--input", input, "--out", out];
  let r = ttrl([...base, "--compute-dtype", "float16", "--device", "wasm"]);
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stderr.trim(), `ttrl: error: ${WASM_F16}`);
  assert.doesNotMatch(r.stderr, NO_STACK);
  // The same from the environment (the default device is wasm), and a bad name from the flag.
  r = ttrl(base, { TTRL_COMPUTE_DTYPE: "float16" });
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stderr.trim(), `ttrl: error: ${WASM_F16}`);
  r = ttrl([...base, "--compute-dtype", "bf16"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--compute-dtype must be one of float32, float16, got "bf16"/);
  assert.doesNotMatch(r.stderr, NO_STACK);
  // float32, the default, scores as before.
  r = ttrl([...base, "--compute-dtype", "float32"]);
  assert.equal(r.status, 0, r.stderr);
});

test("ttrl train --engine trl refuses --compute-dtype float16 (an option of engine jax only)", () => {
  const r = ttrl(
    [
      "train",
      "--engine",
      "trl",
      "--compute-dtype",
      "float16",
      "--model",
      "models/tr-math-base",
      "--data",
      "data/tr-math/train.jsonl",
      "--reward",
      "majority",
      "--out",
      join(tmp, "trl-run"),
    ],
    { TTRL_PYTHON: join(tmp, "no-such-python") },
  );
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--compute-dtype float16 is an option of engine jax only/);
});

test("float16 traces the model's matmuls in float16 with float32 around them; gradients trace in float32", async () => {
  // The Wasm device has no float16 kernels, but tracing needs none: start it in float32, then mark the
  // runtime as computing in float16 (what initRuntime records on a WebGPU adapter with shader-f16).
  const rt = await import("../../src/runtime/jax.ts");
  const { initPresetModel } = await import("../../src/model/presets.ts");
  const { tokenLogprobs } = await import("../../src/model/forward.ts");
  const model = await initPresetModel("tiny", 7);
  assert.equal(rt.matmulDtype(), "float32");
  markComputeStarted("float16");
  assert.equal(rt.matmulDtype(), "float16");
  assert.throws(() => selectComputeDtype("float32"), /already computes in float16/);
  const np = rt.numpy;
  const ids = np.array(new Int32Array([1, 2, 3, 4]), { dtype: np.int32 }).reshape([1, 4]);
  const tg = np.array(new Int32Array([2, 3, 4, 5]), { dtype: np.int32 }).reshape([1, 4]);
  const fwd = (p: typeof model.params, a: typeof ids, b: typeof ids) => tokenLogprobs(p, model.config, a, b);
  type Fwd = (p: typeof model.params, a: typeof ids, b: typeof ids) => JsTree<JArray>;
  const trace = (f: Fwd) => {
    const { jaxpr } = rt.makeJaxpr(f)(rt.tree.ref(model.params), ids.ref, tg.ref);
    const lines = String(jaxpr).split("\n");
    jaxpr.dispose();
    const eqn = (l: string) => /^\s*\w+:(\w+)\[[\d,]*\] = (\w+)/.exec(l);
    const dots = lines.flatMap((l) => (eqn(l)?.[2] === "dot" ? [eqn(l)?.[1]] : []));
    const f16Ops = new Set(lines.flatMap((l) => (eqn(l)?.[1] === "float16" ? [eqn(l)?.[2]] : [])));
    return { dots, f16Ops, last: lines.filter((l) => eqn(l)).pop() ?? "" };
  };
  const L = model.config.numLayers;
  // Per layer q, k, v, o, gate, up, down and the two attention matmuls; then the LM head.
  const f16 = trace(fwd);
  assert.equal(f16.dots.length, 9 * L + 1);
  assert.ok(f16.dots.every((d) => d === "float16"));
  assert.deepEqual([...f16.f16Ops].sort(), ["cast", "dot", "reshape", "transpose"]); // nothing else in float16
  assert.match(f16.last, /:float32\[1,4\] = reduce/); // log-probs come back float32
  // Inside float32Matmuls (the trainers' reference/old log-probs) and under valueAndGrad: float32 only.
  const scoped = trace((p, a, b) => rt.float32Matmuls(() => fwd(p, a, b)));
  assert.equal(scoped.dots.length, 9 * L + 1);
  assert.ok(scoped.dots.every((d) => d === "float32"));
  assert.deepEqual(scoped.f16Ops, new Set());
  const graded = trace((p, a, b) => rt.valueAndGrad((q: typeof p) => fwd(q, a, b).sum())(p));
  assert.ok(graded.dots.length > 9 * L + 1); // forward and backward
  assert.ok(graded.dots.every((d) => d === "float32"));
  assert.deepEqual(graded.f16Ops, new Set());
  assert.equal(rt.matmulDtype(), "float16"); // the scope ended with the trace
  markComputeStarted("float32");
  ids.dispose();
  tg.dispose();
});
