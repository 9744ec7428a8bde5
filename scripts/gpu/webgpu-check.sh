#!/usr/bin/env bash
# The WebGPU device on a real GPU (issue 16). Run from the repo root on a Linux x64 machine with an NVIDIA GPU,
# after scripts/gpu/webgpu-bundle.sh made bench/out/gpu-webgpu here and the folder was carried over; it needs
# no network and no Node (the bundle brings Node, Dawn and the Vulkan loader):
#   bash scripts/gpu/webgpu-check.sh [BUNDLE_DIR]
# Prints matmul TFLOP/s, then 5 GRPO steps of the ~29M "medium" preset and of a random model of
# Qwen2.5-0.5B's shape (step times: sampling / reference / update; device memory held by jax-js; nvidia-smi).
# Then float16 compute (--compute-dtype float16) where the adapter has shader-f16: log-probs of the same random
# model with float16 vs float32 matmuls (max |difference|, ~1e-2 expected) and the GRPO steps with float16
# (float16 speeds up sampling and scoring; the update's forward/backward stay float32); without shader-f16
# that part prints "no shader-f16: skipped" and does not fail the check.
# Each part has its own time limit (TTRL_CHECK_SCALE=small runs a tiny version, e.g. on llvmpipe). JSON lines
# go to $OUT/webgpu-check.jsonl when $OUT is set.
set -uo pipefail
B=${1:-bench/out/gpu-webgpu}
[ -f "$B/node.gz" ] || { echo "webgpu-check: no bundle at $B (run scripts/gpu/webgpu-bundle.sh first)" >&2; exit 1; }
W=$(mktemp -d /tmp/ttrl-webgpu.XXXXXX)
gunzip -c "$B/node.gz" >"$W/node" && chmod +x "$W/node"
mkdir -p "$W/node_modules/webgpu/dist/linux-x64"
cp "$B/webgpu/index.js" "$B/webgpu/package.json" "$W/node_modules/webgpu/"
gunzip -c "$B/webgpu/dist/linux-x64/dawn.node.gz" >"$W/node_modules/webgpu/dist/linux-x64/dawn.node"
cp "$B/webgpu-bench.mjs" "$W/"
echo "webgpu-check: bundle $(cat "$B/commit" 2>/dev/null), Node $("$W/node" --version), $(uname -m)"

# Vulkan: the system's loader if it has one, else the bundle's; the NVIDIA driver's Vulkan ICD, declared
# here when the container has the library but no ICD file (NVIDIA_DRIVER_CAPABILITIES without "graphics").
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1 '; then
  export LD_LIBRARY_PATH="$(cd "$B/lib" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "webgpu-check: using the bundle's Vulkan loader"
fi
if ! grep -qs nvidia /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json 2>/dev/null; then
  lib=$(ldconfig -p 2>/dev/null | awk '/libGLX_nvidia.so.0/{print $NF; exit}')
  [ -z "$lib" ] && lib=$(ls /usr/lib/x86_64-linux-gnu/libGLX_nvidia.so.0 /usr/lib64/libGLX_nvidia.so.0 2>/dev/null | head -1)
  if [ -n "$lib" ]; then
    printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3.0"}}\n' "$lib" >"$W/nvidia_icd.json"
    export VK_ICD_FILENAMES="$W/nvidia_icd.json"
    echo "webgpu-check: declared the NVIDIA Vulkan ICD ($lib)"
  else
    echo "webgpu-check: WARNING: no NVIDIA Vulkan driver found (no ICD file, no libGLX_nvidia.so.0): a container needs NVIDIA_DRIVER_CAPABILITIES to include graphics" >&2
  fi
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader

export TTRL_THREADS=1 TTRL_QUIET=1
[ -n "${TTRL_WEBGPU_BACKEND:-}" ] && export TTRL_WEBGPU_BACKEND_FORCED=1
LOG=${OUT:-$W}/webgpu-check.jsonl
: >"$LOG"
run() { # LIMIT_S ARGS...
  local limit=$1
  shift
  local t0=$SECONDS
  local line
  line=$(cd "$W" && timeout "$limit" ./node webgpu-bench.mjs --worker "$@" 2>"$W/err.txt" | grep '^{' | tail -1)
  if [ -z "$line" ]; then
    echo "webgpu-check: '$*' failed or ran past ${limit}s after $((SECONDS - t0))s:" >&2
    grep -v '^Warning' "$W/err.txt" | tail -8 >&2
    return 1
  fi
  echo "$line" >>"$LOG"
  local mem=""
  command -v nvidia-smi >/dev/null && mem=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader | head -1)
  echo "$line" | "$W/node" -e '
    const r = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const f = (x, d = 2) => (typeof x === "number" ? x.toFixed(d) : String(x));
    if (r.skipped) console.log(`float16 compute: ${r.skipped}: skipped (${r.reason})`);
    else if (r.logprob_max_abs_diff !== undefined)
      console.log(`float16 vs float32 log-probs (${r.logprob_tokens} tokens, ${r.shape}): max |diff| ${r.logprob_max_abs_diff.toExponential(2)}, mean ${r.logprob_mean_abs_diff.toExponential(2)}; forward ${f(r.forward_f16_s * 1000, 1)} vs ${f(r.forward_f32_s * 1000, 1)} ms; GRPO below in ${r.compute_dtype}`);
    if (r.step_s) {
      const n = r.step_s.length, last = (k) => r[k].slice(1), mean = (a) => a.reduce((s, x) => s + x, 0) / a.length;
      console.log(`grpo ${r.shape} (${(r.params / 1e6).toFixed(1)}M params) on ${r.adapter}: steps (s) ${r.step_s.map((x) => f(x)).join(", ")}`);
      if (n > 1) console.log(`  steps 2-${n} mean: step ${f(mean(last("step_s")))} s = sampling ${f(mean(last("sampling_s")))} + reference ${f(mean(last("reference_s")))} + update ${f(mean(last("update_s")))}`);
      console.log(`  losses ${r.loss.map((x) => f(x, 4)).join(", ")}; jax-js device memory peak ${f(r.gpu_peak_mib, 0)} MiB; host RSS ${f(r.peak_rss_mib, 0)} MiB; model init ${f(r.init_s, 1)} s`);
    } else if (!r.skipped) {
      const ks = Object.keys(r).filter((k) => k.startsWith("gflops_"));
      console.log(`matmul on ${r.adapter}: ` + ks.map((k) => `N=${k.slice(7)} ${f(r[k] / 1000, 3)} TFLOP/s (${f(r[k], 1)} GFLOP/s)`).join(", "));
    }' -
  [ -n "$mem" ] && echo "  nvidia-smi memory.used after: $mem"
  return 0
}

# Which Dawn backend finds the GPU: Vulkan first, else OpenGL ES over the driver's EGL (compatibility mode).
if [ -z "${TTRL_WEBGPU_BACKEND_FORCED:-}" ]; then
  for be in vulkan opengles; do
    if (cd "$W" && TTRL_WEBGPU_BACKEND=$be timeout 60 ./node webgpu-bench.mjs --worker matmul webgpu 64 2>"$W/err.txt" | grep -q '^{'); then
      export TTRL_WEBGPU_BACKEND=$be
      echo "webgpu-check: Dawn backend $be"
      break
    fi
    echo "webgpu-check: backend $be: $(grep -m1 '^webgpu-bench:' "$W/err.txt" || tail -1 "$W/err.txt")" >&2
  done
fi

status=0
if [ "${TTRL_CHECK_SCALE:-full}" = small ]; then
  run 120 matmul webgpu 128 256 || status=1
  run 300 grpo webgpu tiny 2 4 8 2 || status=1
  run 300 f16 webgpu tiny 2 4 8 2 || status=1
else
  run 120 matmul webgpu 1024 2048 4096 8192 || status=1
  run 180 grpo webgpu medium 16 8 64 5 || status=1
  run 270 grpo webgpu 0.5b 8 8 64 5 || status=1
  run 240 f16 webgpu medium 16 8 64 5 || status=1 # the same steps as the float32 medium run above
fi
echo "webgpu-check: results in $LOG"
exit $status
