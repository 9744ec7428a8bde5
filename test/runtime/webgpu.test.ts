/**
 * The WebGPU device (`--device webgpu`) against the Wasm device, on whatever adapter Dawn finds — on a
 * machine without a GPU, Mesa's llvmpipe (installed by scripts/ensure-mesa.sh through `npm test`; the tests
 * skip with a warning where no adapter can be found). Each device runs in its own process (the device is
 * fixed per process): test/runtime/device-worker.ts.
 *
 * Tolerances: log-probs within 1e-4 (the bar; measured 5e-7 on llvmpipe); greedy tokens identical;
 * SFT and GRPO losses within 1e-4, and every updated tensor's first, last and summed values within
 * 1e-4 + 1e-4·|x| (measured 1e-5: float32 sums in a different order).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { test } from "node:test";

const tmp = mkdtempSync(join(tmpdir(), "ttrl-webgpu-"));
const env = { ...process.env, TTRL_THREADS: "1", TTRL_DEVICE: "" };

/** The adapter Dawn finds here and whether it has shader-f16 (null: none found). */
let adapterInfo: { adapter: string; f16: boolean } | null = null;

/** Whether Dawn finds an adapter here (null), or why not. */
function noAdapter(): string | null {
  const file = join(tmp, "probe.mjs");
  writeFileSync(
    file,
    `const rt = await import(${JSON.stringify(resolve("src/runtime/jax.ts"))});
try { await rt.initRuntime({ device: "webgpu" }); console.log("ok " + JSON.stringify(rt.webgpuInfo())); } catch (e) { console.log(e.message); }
process.exit(0);\n`,
  );
  const r = spawnSync(process.execPath, ["--import", "tsx", file], { encoding: "utf8", env });
  const msg = r.stdout.trim().split("\n").pop() ?? "";
  if (!msg.startsWith("ok ")) return msg || r.stderr.trim();
  adapterInfo = JSON.parse(msg.slice(3));
  return null;
}
const why = noAdapter();
const skip = why ? `no WebGPU adapter: ${why}` : false;
if (why) process.stderr.write(`WARNING: WebGPU tests skipped — ${why}\n`);

function runWorker(device: string): Promise<Record<string, unknown>> {
  return new Promise((ok, fail) => {
    const p = spawn(
      process.execPath,
      ["--import", "tsx", "test/runtime/device-worker.ts", device, join(tmp, device)],
      { env },
    );
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => {
      out += d;
    });
    p.stderr.on("data", (d) => {
      err += d;
    });
    p.on("close", (code) => {
      if (code !== 0) fail(new Error(`${device} worker exited ${code}: ${err.slice(-2000)}`));
      else ok(JSON.parse(out.trim().split("\n").pop() as string));
    });
  });
}

function close(a: unknown, b: unknown, tol: (x: number) => number, what: string): void {
  if (Array.isArray(a)) {
    assert.ok(Array.isArray(b) && a.length === b.length, `${what}: lengths differ`);
    for (let i = 0; i < a.length; i++) close(a[i], (b as unknown[])[i], tol, `${what}[${i}]`);
    return;
  }
  const [x, y] = [a as number, b as number];
  assert.ok(Number.isFinite(x) && Number.isFinite(y), `${what}: ${x} vs ${y}`);
  assert.ok(Math.abs(x - y) <= tol(x), `${what}: wasm ${x} vs webgpu ${y} (|diff| ${Math.abs(x - y)})`);
}

test("webgpu computes what wasm does: log-probs, greedy tokens, one SFT step, one GRPO step", {
  skip,
}, async () => {
  const [wasm, gpu] = await Promise.all([runWorker("wasm"), runWorker("webgpu")]);
  assert.equal(wasm.device, "wasm");
  assert.equal(gpu.device, "webgpu");
  assert.ok(typeof gpu.adapter === "string" && gpu.adapter.length > 0);
  close(wasm.logprobs, gpu.logprobs, () => 1e-4, "logprobs");
  assert.ok((wasm.logprobs as number[][]).flat().length > 30);
  assert.deepEqual(gpu.greedy, wasm.greedy);
  assert.ok((wasm.greedy as number[][]).every((g) => g.length > 0));
  const params = (x: number) => 1e-4 + 1e-4 * Math.abs(x);
  close(wasm.sft_loss, gpu.sft_loss, () => 1e-4, "sft loss");
  close(wasm.sft_params, gpu.sft_params, params, "sft params");
  close(wasm.grpo_loss, gpu.grpo_loss, () => 1e-4, "grpo loss");
  assert.equal(gpu.grpo_reward, wasm.grpo_reward); // same completions sampled
  close(wasm.grpo_params, gpu.grpo_params, params, "grpo params");
  assert.deepEqual(gpu.grpo_param_devices, ["webgpu"]); // the weights stayed on the device through the step
  process.stderr.write(
    `webgpu vs wasm (s): inference ${gpu.secs_infer} vs ${wasm.secs_infer}, sft ${gpu.secs_sft} vs ${wasm.secs_sft}, grpo ${gpu.secs_grpo} vs ${wasm.secs_grpo}\n`,
  );
});

const GUARDS = `
const rt = await import(${JSON.stringify(resolve("src/runtime/jax.ts"))});
await rt.initRuntime({ device: "webgpu" });
const np = rt.numpy;
const out = { info: rt.webgpuInfo() };
const attempt = async (f) => { try { return { value: await f() }; } catch (e) { return { error: e.name + ": " + e.message }; } };
out.sumAtLimit = await attempt(async () => (await np.sum(np.ones([65535])).data())[0]);
out.sumOver = await attempt(async () => (await np.sum(np.ones([100000])).data())[0]);
out.bigArray = await attempt(async () => (await np.zeros([40000000]).data()).length);
out.tensor = await attempt(() => rt.checkDeviceTensor("model.embed_tokens.weight", [50000, 1000]));
console.log(JSON.stringify(out));
process.exit(0);
`;

test("webgpu guards: loops llvmpipe would cut short and arrays over the binding limit are refused, by name", {
  skip,
}, () => {
  const file = join(tmp, "guards.mjs");
  writeFileSync(file, GUARDS);
  const r = spawnSync(process.execPath, ["--import", "tsx", file], { encoding: "utf8", env });
  assert.equal(r.status, 0, r.stderr);
  const o = JSON.parse(r.stdout.trim().split("\n").pop() as string);
  assert.equal(o.sumAtLimit.value, 65535, JSON.stringify(o.sumAtLimit));
  if (o.info.software) {
    // Unguarded, llvmpipe returns 65,535 here.
    assert.match(o.sumOver.error ?? "", /TtrlError: .*loops 100,000 times.*65,535 iterations.*--device wasm/);
  } else assert.equal(o.sumOver.value, 100000);
  if (o.info.maxBindingBytes < 160_000_000)
    assert.match(o.bigArray.error ?? "", /152\.6 MiB is over .*maxStorageBufferBindingSize/);
  const limit = o.info.maxBindingBytes;
  if (limit < 200_000_000)
    assert.match(
      o.tensor.error ?? "",
      /tensor model\.embed_tokens\.weight \[50000, 1000\] is 190\.7 MiB, over .*maxStorageBufferBindingSize/,
    );
});

test("webgpu: a forced backend with no adapter is a clear error naming what to install", { skip }, () => {
  const r = spawnSync(
    process.execPath,
    ["bin/ttrl.mjs", "generate", "--model", "nowhere", "--prompt", "x", "--device", "webgpu"],
    { encoding: "utf8", env: { ...env, TTRL_WEBGPU_BACKEND: "vulkan" } },
  );
  if (r.status === 0 || /model folder not found/.test(r.stderr)) return; // this machine has a Vulkan GPU
  assert.equal(r.status, 1);
  assert.match(
    r.stderr,
    /no WebGPU adapter found \(Dawn backends tried: vulkan\).*libegl-dev libgl1-mesa-dri.*--device wasm/,
  );
  assert.doesNotMatch(r.stderr, /\n\s+at .*\.m?[jt]s:\d+/); // no stack trace of ours (Dawn's warnings name .cpp lines)
});

test("ttrl generate --device webgpu on a bf16 checkpoint samples the same greedy tokens as --device wasm", {
  skip,
}, () => {
  const dir = join(tmp, "model");
  const run = (...args: string[]) =>
    spawnSync(process.execPath, ["bin/ttrl.mjs", ...args], { encoding: "utf8", env });
  // A bf16 checkpoint: WebGPU has no bf16, so the weights must be converted to float32 on load.
  let r = run("init-model", "--preset", "tiny", "--out", dir, "--seed", "3", "--dtype", "BF16");
  assert.equal(r.status, 0, r.stderr);
  const gen = (device: string) => {
    r = run(
      "generate",
      "--model",
      dir,
      "--prompt",
      "Soru: ",
      "--greedy",
      "--max-new-tokens",
      "10",
      "--json",
      "--device",
      device,
    );
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim()).tokens as number[];
  };
  const w = gen("wasm");
  assert.equal(w.length, 10);
  assert.deepEqual(gen("webgpu"), w);
  r = run("generate", "--model", dir, "--prompt", "x", "--device", "cuda");
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--device must be one of wasm, webgpu, got "cuda"/);
});

test("--compute-dtype float16 on an adapter without shader-f16 (llvmpipe) is refused by name before any work", {
  skip,
}, () => {
  const input = join(tmp, "f16.jsonl");
  writeFileSync(input, '{"id": "a", "text": "Soru: 2 + 3"}\n');
  const out = join(tmp, "f16-out.jsonl");
  const r = spawnSync(
    process.execPath,
    [
      "bin/ttrl.mjs",
      "logprob",
      "--model",
      "models/tr-math-base",
      "--input",
      input,
      "--out",
      out,
      "--device",
      "webgpu",
      "--compute-dtype",
      "float16",
    ],
    { encoding: "utf8", env },
  );
  const info = adapterInfo as { adapter: string; f16: boolean } | null;
  assert.ok(info);
  if (info.f16) {
    // A GPU with shader-f16: float16 runs and the log-probs come back (as float32).
    assert.equal(r.status, 0, r.stderr);
    return;
  }
  assert.equal(r.status, 1, r.stderr);
  const line = r.stderr
    .split("\n")
    .filter((l) => l.startsWith("ttrl:"))
    .join("\n");
  assert.equal(
    line,
    `ttrl: error: --compute-dtype float16: the WebGPU adapter (${info.adapter}) lacks shader-f16 (no float16 in its shaders): use a GPU whose adapter has shader-f16, or --compute-dtype float32`,
  );
  assert.doesNotMatch(r.stderr, /WebGPU device does not support shader-f16/); // ours comes first
  assert.doesNotMatch(r.stderr, /\n\s+at .*\.m?[jt]s:\d+/);
  assert.ok(!existsSync(out)); // no output written
});
