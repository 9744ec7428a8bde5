#!/usr/bin/env bash
# Makes sure a headless Chromium is available for the report's browser test (test/report/browser.test.ts):
# Debian's `chromium` package, installed with apt-get when missing. Never fails the build: where it cannot be
# installed, it says so and the test skips with a visible warning.
set -u
have() {
  if [ -n "${TTRL_CHROMIUM:-}" ] && [ -x "${TTRL_CHROMIUM}" ]; then echo "$TTRL_CHROMIUM"; return 0; fi
  for c in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return 0; fi
  done
  return 1
}
if p=$(have); then
  echo "ensure-chromium: using $p"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "ensure-chromium: WARNING: chromium missing and not root (no sudo): the browser test will be skipped" >&2
    exit 0
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: WARNING: chromium missing and no apt-get: the browser test will be skipped" >&2
  exit 0
fi
echo "ensure-chromium: installing Debian's chromium (apt-get)…"
export DEBIAN_FRONTEND=noninteractive
if timeout 900 $SUDO apt-get update -qq && timeout 1200 $SUDO apt-get install -y -qq chromium >/tmp/ensure-chromium.log 2>&1; then
  echo "ensure-chromium: installed $(have || echo '?')"
else
  echo "ensure-chromium: WARNING: apt-get install chromium failed (see /tmp/ensure-chromium.log): the browser test will be skipped" >&2
  tail -5 /tmp/ensure-chromium.log >&2 2>/dev/null || true
fi
exit 0
