#!/usr/bin/env bash
# Makes sure the WebGPU device test (test/runtime/webgpu.test.ts) can find a software GPU on a machine without
# one: Dawn's OpenGL ES backend over Mesa's llvmpipe needs libEGL.so (Debian's libegl-dev; Dawn loads that
# name, not libEGL.so.1), Mesa's EGL (libegl-mesa0, pulled in by libegl1) and llvmpipe (libgl1-mesa-dri).
# Installed with apt-get when missing. Never fails the build: where they cannot be installed, it says so and
# the test skips with a visible warning.
set -u
[ "$(uname -s)" = "Linux" ] || exit 0
have() {
  local egl=0 dri=0
  for d in /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib; do
    [ -e "$d/libEGL.so" ] && egl=1
    [ -e "$d/dri/swrast_dri.so" ] && dri=1
  done
  [ $egl = 1 ] && [ $dri = 1 ]
}
if have; then
  echo "ensure-mesa: Mesa EGL + llvmpipe present"
  exit 0
fi
PKGS="libegl-dev libgl1-mesa-dri"
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "ensure-mesa: WARNING: Mesa ($PKGS) missing and not root (no sudo): the WebGPU device test will be skipped" >&2
    exit 0
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-mesa: WARNING: Mesa ($PKGS) missing and no apt-get: the WebGPU device test will be skipped" >&2
  exit 0
fi
echo "ensure-mesa: installing $PKGS (apt-get)…"
export DEBIAN_FRONTEND=noninteractive
if timeout 900 $SUDO apt-get update -qq && timeout 1200 $SUDO apt-get install -y -qq --no-install-recommends $PKGS >/tmp/ensure-mesa.log 2>&1; then
  echo "ensure-mesa: installed $PKGS"
else
  echo "ensure-mesa: WARNING: apt-get install $PKGS failed (see /tmp/ensure-mesa.log): the WebGPU device test will be skipped" >&2
  tail -5 /tmp/ensure-mesa.log >&2 2>/dev/null || true
fi
exit 0
