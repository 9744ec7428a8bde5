/** The device choice and the WebGPU guards' pure parts (no adapter needed). */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { chosenDevice, markStarted, parseDevice, selectDevice } from "../../src/runtime/device.ts";
import { checkLoopTrips, maxLoopTrips, SOFTWARE_LOOP_LIMIT } from "../../src/runtime/webgpu.ts";
import { TtrlError, UsageError } from "../../src/util/errors.ts";

test("maxLoopTrips reads the loop lengths jax-js writes into its WGSL kernels", () => {
  // A reduction (pipelineSource) and a routine's strided loop; a loop bounded by a variable is not counted.
  const reduction =
    "var acc0: f32 = f32(0);\nfor (var ridx: i32 = 0; ridx < 100000; ridx++) {\n  acc0 += in0[ridx];\n}";
  assert.equal(maxLoopTrips(reduction), 100000);
  assert.equal(maxLoopTrips("for (var idx = tid; idx < 1048576u; idx += 256u) {"), 4096);
  assert.equal(maxLoopTrips("for (var jj = 0u; jj < 300u; jj++) {"), 300);
  assert.equal(maxLoopTrips("for (var r = 0u; r < params.block_size; r++) {"), 0);
  assert.equal(maxLoopTrips(`${reduction}\nfor (var jj = 0u; jj < 70000u; jj++) {}`), 100000);
  assert.equal(maxLoopTrips("loop { if (done) { break; } }"), 0);
});

test("checkLoopTrips refuses a loop llvmpipe would cut short, and only such a loop", () => {
  const loop = (n: number) => `for (var ridx: i32 = 0; ridx < ${n}; ridx++) { acc0 += 1.0; }`;
  checkLoopTrips(loop(SOFTWARE_LOOP_LIMIT));
  assert.throws(
    () => checkLoopTrips(loop(SOFTWARE_LOOP_LIMIT + 1)),
    (e: Error) =>
      e instanceof TtrlError && /loops 65,536 times.*65,535 iterations.*--device wasm/.test(e.message),
  );
});

test("the device is chosen once per process: names checked, a second device refused once one started", () => {
  assert.equal(parseDevice("webgpu"), "webgpu");
  assert.throws(
    () => parseDevice("cuda", "exp.yml: device"),
    (e: Error) =>
      e instanceof UsageError && /exp\.yml: device must be one of wasm, webgpu, got "cuda"/.test(e.message),
  );
  const env = process.env.TTRL_DEVICE;
  process.env.TTRL_DEVICE = "webgpu";
  assert.equal(chosenDevice(), "webgpu");
  process.env.TTRL_DEVICE = "tpu";
  assert.throws(() => chosenDevice(), /TTRL_DEVICE must be one of wasm, webgpu, got "tpu"/);
  if (env === undefined) delete process.env.TTRL_DEVICE;
  else process.env.TTRL_DEVICE = env;
  selectDevice("webgpu");
  assert.equal(chosenDevice(), "webgpu");
  selectDevice("wasm");
  markStarted("wasm");
  selectDevice("wasm"); // the running one: fine
  assert.throws(() => selectDevice("webgpu"), /already runs on wasm/);
  assert.equal(chosenDevice(), "wasm");
});

test("an experiment config's device: key is checked and kept (the CLI's --device wins over it)", async () => {
  const { loadExperimentConfig } = await import("../../src/experiment/config.ts");
  const dir = mkdtempSync(join(tmpdir(), "ttrl-device-"));
  const file = join(dir, "exp.yml");
  writeFileSync(file, "device: webgpu\n");
  assert.equal(loadExperimentConfig(file, "quick").device, "webgpu");
  assert.equal(loadExperimentConfig(undefined, "quick").device, undefined); // absent: TTRL_DEVICE or wasm
  writeFileSync(file, "device: cuda\n");
  assert.throws(
    () => loadExperimentConfig(file, "quick"),
    (e: Error) =>
      e instanceof UsageError &&
      e.message.includes(`${file}: "device" must be one of wasm, webgpu, got "cuda"`),
  );
});
