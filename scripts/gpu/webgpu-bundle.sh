#!/usr/bin/env bash
# Assembles the WebGPU GPU check's bundle for a Linux x64 machine with an NVIDIA GPU, no network and no Node:
#   bench/out/gpu-webgpu/  (git-ignored; carry it to the GPU machine, then run scripts/gpu/webgpu-check.sh)
#     node.gz                  this machine's Node binary (the check runs on it)
#     webgpu/                  the npm package `webgpu` reduced to its loader and linux-x64 dawn.node (gzipped)
#     lib/libvulkan.so.1       the Vulkan loader (Debian's libvulkan1), in case the GPU machine lacks it
#     webgpu-bench.mjs         bench/webgpu.bench.ts and the ttrl engine in one ESM file (esbuild)
# Everything must stay under 64 MiB (checked at the end). Needs: npm ci done, apt-get (for libvulkan1, from
# the Debian registry; skipped with a warning if unavailable — most GPU machines have the loader).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=bench/out/gpu-webgpu
rm -rf "$OUT"
mkdir -p "$OUT/webgpu/dist/linux-x64" "$OUT/lib"

# The app: one file; `webgpu` stays outside (loaded at run time from ./webgpu via NODE_PATH-free relative path).
node_modules/.bin/esbuild bench/webgpu.bench.ts --bundle --platform=node --format=esm --target=node20 \
  --outfile="$OUT/webgpu-bench.mjs" --external:webgpu --log-level=warning \
  --banner:js="import { createRequire as __ttrlRequire } from 'node:module'; const require = __ttrlRequire(import.meta.url);"

# Dawn: the package's loader and only the linux-x64 binary (the package ships every platform's: 130 MB).
cp node_modules/webgpu/package.json node_modules/webgpu/index.js "$OUT/webgpu/"
gzip -6 -c node_modules/webgpu/dist/linux-x64/dawn.node >"$OUT/webgpu/dist/linux-x64/dawn.node.gz"

# Node: this machine's binary (Node 20, linux-x64, glibc).
gzip -6 -c "$(command -v node)" >"$OUT/node.gz"
node --version >"$OUT/node.version"

# The Vulkan loader (libvulkan.so.1) from Debian's libvulkan1, extracted without installing it.
tmp=$(mktemp -d)
if (cd "$tmp" && apt-get download libvulkan1 >/dev/null 2>&1 && dpkg-deb -x libvulkan1_*.deb x); then
  cp -L "$tmp"/x/usr/lib/*/libvulkan.so.1 "$OUT/lib/"
else
  echo "webgpu-bundle: WARNING: could not fetch Debian's libvulkan1; the GPU machine must have libvulkan.so.1" >&2
fi
rm -rf "$tmp"

git rev-parse --short HEAD >"$OUT/commit" 2>/dev/null || true
size=$(du -sb "$OUT" | cut -f1)
echo "webgpu-bundle: $OUT is $((size / 1024 / 1024)) MiB:"
(cd "$OUT" && find . -type f -printf "  %9s  %p\n" | sort -k2)
if [ "$size" -gt $((64 * 1024 * 1024)) ]; then
  echo "webgpu-bundle: ERROR: over 64 MiB" >&2
  exit 1
fi
