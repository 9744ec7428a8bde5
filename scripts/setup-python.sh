#!/usr/bin/env bash
# Makes .venv at the repo root for ttrl's `trl` engine (and the benchmark peers): torch==2.13.0 first (the
# CPU wheel here; an unpinned torch would download a multi-GB CUDA build), then the pinned
# python/requirements.txt under python/constraints.txt (which holds torch at 2.13.0), then makes the
# ttrl_trl package importable (a .pth file pointing at python/). Safe to rerun: pip skips what is there.
# Run it as `npm run setup:python`; `npm run setup:python -- --peers` also installs the benchmark and
# fixture peers (bench/peers/requirements.txt: mergekit, math-verify). PYTHON=python3.11 picks the
# interpreter (default python3, 3.10+).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
py="${PYTHON:-python3}"
if ! command -v "$py" >/dev/null 2>&1 || ! "$py" -c "import venv, ensurepip" >/dev/null 2>&1; then
  # A clean CI machine may lack Python: Debian's python3 + venv (apt-get, as root or with sudo -n).
  SUDO=""
  [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && SUDO="sudo -n"
  if [ -z "${PYTHON:-}" ] && command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = "0" ] || [ -n "$SUDO" ]; }; then
    echo "setup-python: installing Debian's python3 and python3-venv (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
  fi
fi
if ! command -v "$py" >/dev/null 2>&1; then
  echo "setup-python: $py not found; install Python 3.10+ (with venv) or set PYTHON=/path/to/python3" >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup-python: creating .venv with $("$py" --version 2>&1)"
  "$py" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --disable-pip-version-check --no-input -q)
echo "setup-python: torch==2.13.0"
"${pip[@]}" torch==2.13.0
echo "setup-python: python/requirements.txt"
"${pip[@]}" -r python/requirements.txt -c python/constraints.txt
if [ "${1:-}" = "--peers" ]; then
  echo "setup-python: bench/peers/requirements.txt"
  "${pip[@]}" -r bench/peers/requirements.txt -c python/constraints.txt
fi
site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$root/python" > "$site/ttrl_trl.pth"
.venv/bin/python -m ttrl_trl.check
echo "setup-python: done (.venv/bin/python)"
