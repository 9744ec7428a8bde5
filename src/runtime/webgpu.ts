/**
 * The WebGPU device: jax-js's WebGPU backend on Dawn (the optional npm package `webgpu`, a prebuilt N-API
 * binary) in Node. Started by `initRuntime` (./jax.ts) when `--device webgpu` is chosen.
 *
 * - Adapter: Dawn's default backend first (Vulkan on Linux, Metal on macOS, D3D12 on Windows); on Linux with
 *   no such adapter, Dawn's OpenGL ES backend over Mesa (EGL, surfaceless) with `featureLevel:
 *   "compatibility"` — on a machine without a GPU that is Mesa's llvmpipe, a software rasteriser (slow, but
 *   what the tests run on). `TTRL_WEBGPU_BACKEND=vulkan|opengles|metal|d3d12` forces one.
 * - jax-js reads `navigator.gpu` (and `userAgent`, ./shims.ts); its kernels use the `GPUBufferUsage`-style
 *   globals, installed from Dawn's `globals`.
 * - Each jax-js array is one storage buffer, bound whole: a buffer over the adapter's
 *   `maxStorageBufferBindingSize` cannot be bound. `checkDeviceTensor` names a model tensor that is too
 *   large before it is uploaded; any other buffer over the limit is refused where it is created.
 * - llvmpipe runs at most 65,535 iterations of any shader loop and then silently stops (a sum of a million
 *   ones returns 65,535). See `checkLoopTrips`.
 * - No bf16 on WebGPU: checkpoints are read as float32 (src/model loads every float dtype as float32).
 * - float16 compute (`--compute-dtype float16`, ./device.ts) needs the adapter's `shader-f16`; the device is
 *   requested with it whenever the adapter has it, and ./jax.ts refuses float16 on an adapter without it.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { TtrlError } from "../util/errors.ts";

/** The subset of Dawn's WebGPU objects used here (the WebGPU types are not in the TypeScript lib). */
interface GpuLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  [k: string]: number;
}
interface GpuDevice {
  limits: GpuLimits;
  features: Set<string>;
  createShaderModule(desc: { code: string }): unknown;
  createBuffer(desc: { size: number; usage: number; mappedAtCreation?: boolean }): GpuBuffer;
}
interface GpuBuffer {
  size: number;
  destroy(): void;
}
interface GpuAdapter {
  info: {
    vendor: string;
    architecture: string;
    device: string;
    description: string;
    isFallbackAdapter?: boolean;
  };
  limits: GpuLimits;
  features: Set<string>;
  requestDevice(desc?: unknown): Promise<GpuDevice>;
}
interface Gpu {
  requestAdapter(opts?: Record<string, unknown>): Promise<GpuAdapter | null>;
  getPreferredCanvasFormat?(): string;
  wgslLanguageFeatures?: unknown;
}
interface DawnModule {
  create(flags: string[]): Gpu;
  globals: Record<string, unknown>;
}

/** What the WebGPU device runs on. */
export interface WebGpuInfo {
  /** Dawn backend: vulkan, opengles, metal, d3d12, or default (Dawn's choice). */
  backend: string;
  /** Adapter name (device / description). */
  adapter: string;
  /** A software rasteriser (llvmpipe, lavapipe, SwiftShader): loops are limited, see checkLoopTrips. */
  software: boolean;
  /** Largest buffer a kernel can bind (bytes). */
  maxBindingBytes: number;
  /** The adapter has `shader-f16`. */
  f16: boolean;
}

/** The most iterations llvmpipe runs of one shader loop (Mesa's gallivm loop limit); it then stops silently. */
export const SOFTWARE_LOOP_LIMIT = 65_535;

const MESA_HINT =
  "on Debian/Ubuntu without a GPU: apt-get install -y libegl-dev libgl1-mesa-dri (Mesa's EGL and llvmpipe; Dawn loads libEGL.so); with an NVIDIA/AMD GPU: its driver and the Vulkan loader (libvulkan1)";

let info: WebGpuInfo | null = null;
/** Dawn's instance: held for the life of the process (if it were collected, Dawn would tear the device down). */
let instance: Gpu | null = null;
const memory = { live: 0, peak: 0 };

/** The running WebGPU device's description (null before it starts). */
export function webgpuInfo(): WebGpuInfo | null {
  return info;
}

/** Bytes of GPU buffers jax-js holds now and at most so far (its buffer pool included). */
export function webgpuMemory(): { live: number; peak: number } {
  return { ...memory };
}

const fmtMiB = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

/**
 * A tensor of `shape` (float32 unless `bytesPerElement` says otherwise) must fit one storage binding of the
 * WebGPU device. No-op on other devices or before WebGPU starts.
 */
export function checkDeviceTensor(name: string, shape: readonly number[], bytesPerElement = 4): void {
  if (!info) return;
  const bytes = shape.reduce((a, b) => a * b, 1) * bytesPerElement;
  if (bytes > info.maxBindingBytes)
    throw new TtrlError(
      `tensor ${name} [${shape.join(", ")}] is ${fmtMiB(bytes)}, over the WebGPU adapter's largest storage binding (maxStorageBufferBindingSize ${fmtMiB(info.maxBindingBytes)}, ${info.adapter}): use --device wasm or a GPU with larger bindings`,
    );
}

/**
 * The largest trip count of the `for` loops in a WGSL kernel whose bounds are constants.
 *
 * jax-js writes its loops as `for (var v[: ty] = START; v < END[u]; v++ | v += STEP[u])`: its reductions
 * (`ridx < N`, N the reduction length after its own unrolling and workgroup splitting, so a matmul's
 * inner dimension, a softmax/log-sum-exp over the vocabulary, a sum over a sequence) and its routines
 * (`idx = tid; idx < n; idx += workgroup`). Loops bounded by a variable (routines ttrl does not use:
 * Cholesky, QR, ...) are not counted.
 */
export function maxLoopTrips(code: string): number {
  let most = 0;
  const re =
    /for\s*\(\s*var\s+(\w+)(?:\s*:\s*\w+)?\s*=\s*([^;]+);\s*\1\s*<\s*(\d+)u?\s*;\s*\1\s*(\+\+|\+=\s*(\d+)u?)\s*\)/g;
  for (const m of code.matchAll(re)) {
    const start = /^\d+u?$/.test(m[2].trim()) ? Number.parseInt(m[2], 10) : 0; // e.g. `tid`: at least 0
    const step = m[4] === "++" ? 1 : Number(m[5]);
    most = Math.max(most, Math.ceil((Number(m[3]) - start) / step));
  }
  return most;
}

/**
 * Refuse, on a software adapter, a kernel with a loop longer than llvmpipe runs. This is checked on the
 * shader text when jax-js creates each kernel — the one place every kernel passes, with the loop lengths
 * jax-js actually chose — rather than on model dimensions: jax-js unrolls and splits reductions over
 * workgroups, so a 100,000-wide reduction may loop 6,250 times while a 65,536-long one left unsplit would
 * be cut short. For ttrl's models the loops are the matmul inner dimensions (hidden size, MLP width, head
 * dimension, sequence length in attention), the vocabulary in softmax and log-sum-exp, and reductions over
 * batch x sequence in the losses; a small model never comes near 65,535, so this only fires on shapes that
 * would otherwise give a wrong number.
 */
export function checkLoopTrips(code: string): void {
  const trips = maxLoopTrips(code);
  if (trips > SOFTWARE_LOOP_LIMIT)
    throw new TtrlError(
      `WebGPU: a kernel loops ${trips.toLocaleString("en-US")} times, but the software adapter (${info?.adapter ?? "llvmpipe"}) silently stops shader loops at ${SOFTWARE_LOOP_LIMIT.toLocaleString("en-US")} iterations and would return a wrong number: use --device wasm, smaller shapes (batch, sequence, vocabulary), or a real GPU`,
    );
}

/** Guards installed on the device jax-js creates: loop limit (software adapters), binding size, memory. */
function guardDevice(device: GpuDevice, software: boolean, maxBinding: number, storageUsage: number): void {
  const createShaderModule = device.createShaderModule.bind(device);
  device.createShaderModule = (desc) => {
    if (software) checkLoopTrips(desc.code);
    return createShaderModule(desc);
  };
  const createBuffer = device.createBuffer.bind(device);
  device.createBuffer = (desc) => {
    if (desc.usage & storageUsage && desc.size > maxBinding)
      throw new TtrlError(
        `WebGPU: an array of ${fmtMiB(desc.size)} is over the adapter's largest storage binding (maxStorageBufferBindingSize ${fmtMiB(maxBinding)}): use a smaller batch or micro-batch, shorter sequences, or --device wasm`,
      );
    const buffer = createBuffer(desc);
    memory.live += desc.size;
    memory.peak = Math.max(memory.peak, memory.live);
    const destroy = buffer.destroy.bind(buffer);
    let gone = false;
    buffer.destroy = () => {
      if (!gone) memory.live -= desc.size;
      gone = true;
      destroy();
    };
    return buffer;
  };
}

async function loadDawn(): Promise<DawnModule> {
  const name = "webgpu"; // an optional dependency: loaded only when --device webgpu is chosen
  try {
    return (await import(name)) as DawnModule;
  } catch (e) {
    throw new TtrlError(
      `--device webgpu: the optional package "webgpu" (Dawn) cannot be loaded (${(e as Error).message.split("\n")[0]}); install it with npm install webgpu@0.6.2, or use --device wasm`,
    );
  }
}

function isSoftware(a: GpuAdapter): boolean {
  const i = a.info;
  return (
    Boolean(i.isFallbackAdapter) ||
    /llvmpipe|lavapipe|softpipe|swiftshader|software/i.test(`${i.device} ${i.description} ${i.architecture}`)
  );
}

/** Whether libvulkan.so.1 is where the dynamic loader looks (LD_LIBRARY_PATH, the usual library folders). */
function hasVulkanLoader(): boolean {
  const dirs = [
    ...(process.env.LD_LIBRARY_PATH ?? "").split(":").filter(Boolean),
    "/usr/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/lib64",
    "/usr/lib",
    "/usr/local/lib",
  ];
  return dirs.some((d) => existsSync(join(d, "libvulkan.so.1")));
}

/** Find an adapter: Dawn's default backend, then (Linux) OpenGL ES over Mesa; `TTRL_WEBGPU_BACKEND` forces one. */
async function findAdapter(dawn: DawnModule): Promise<{ gpu: Gpu; adapter: GpuAdapter; backend: string }> {
  const forced = process.env.TTRL_WEBGPU_BACKEND;
  // On Linux Dawn's default backend is Vulkan: skip it where no Vulkan loader is installed (Dawn would only
  // print a warning and find nothing).
  const linuxTries = hasVulkanLoader() ? ["default", "opengles"] : ["opengles"];
  const tries = forced ? [forced] : process.platform === "linux" ? linuxTries : ["default"];
  for (const backend of tries) {
    if (backend === "opengles") process.env.EGL_PLATFORM ??= "surfaceless"; // no display server needed
    const gpu = dawn.create(backend === "default" ? [] : [`backend=${backend}`]);
    const opts: Record<string, unknown> = { powerPreference: "high-performance" };
    if (backend === "opengles") opts.featureLevel = "compatibility"; // GL ES is a compatibility-mode backend
    const adapter = await gpu.requestAdapter(opts);
    if (adapter) return { gpu, adapter, backend };
  }
  throw new TtrlError(
    `--device webgpu: no WebGPU adapter found (Dawn backends tried: ${tries.join(", ")}); ${MESA_HINT}; or use --device wasm`,
  );
}

/**
 * Start Dawn and point jax-js at its adapter (`navigator.gpu`); the caller then runs `init("webgpu")`.
 * Idempotent.
 */
export async function startWebGpu(): Promise<WebGpuInfo> {
  if (info) return info;
  const dawn = await loadDawn();
  const { gpu, adapter, backend } = await findAdapter(dawn);
  instance = gpu;
  const g = globalThis as Record<string, unknown>;
  for (const [k, v] of Object.entries(dawn.globals)) if (g[k] === undefined) g[k] = v;
  const software = isSoftware(adapter);
  const maxBinding = adapter.limits.maxStorageBufferBindingSize;
  const storageUsage = (dawn.globals.GPUBufferUsage as { STORAGE: number }).STORAGE;
  const f16 = adapter.features.has("shader-f16");
  const requestDevice = adapter.requestDevice.bind(adapter);
  adapter.requestDevice = async (desc?: unknown) => {
    // --compute-dtype float16 needs shader-f16 on the device: jax-js 0.1.25 already asks for it when the
    // adapter has it (createBackend's requiredFeatures); this makes sure of it for any version.
    const d = { ...((desc as { requiredFeatures?: string[] } | undefined) ?? {}) };
    if (f16 && !d.requiredFeatures?.includes("shader-f16"))
      d.requiredFeatures = [...(d.requiredFeatures ?? []), "shader-f16"];
    const device = await requestDevice(d);
    guardDevice(device, software, maxBinding, storageUsage);
    return device;
  };
  // jax-js asks navigator.gpu for an adapter itself: hand it this one.
  if (g.navigator === undefined) g.navigator = { userAgent: `Node.js/${process.version}` }; // ./shims.ts not run
  const nav = g.navigator as Record<string, unknown>;
  nav.gpu = {
    requestAdapter: async () => adapter,
    getPreferredCanvasFormat: () => "rgba8unorm",
    wgslLanguageFeatures: instance.wgslLanguageFeatures,
  };
  const name =
    [adapter.info.device, adapter.info.description].filter(Boolean).join(", ") || "unknown adapter";
  info = {
    backend,
    adapter: name,
    software,
    maxBindingBytes: maxBinding,
    f16,
  };
  return info;
}
