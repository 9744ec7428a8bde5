#!/usr/bin/env bash
# Puts TRL's wheel (pure Python, ~1 MB) into scripts/gpu/wheels/ so scripts/gpu/trl-check.sh can run on a
# GPU machine without network and without TRL. Run it here (where PyPI is reachable); the folder is
# git-ignored and travels with the working tree (e.g. the device tool's `carry: ["scripts/gpu/wheels"]`).
set -euo pipefail
cd "$(dirname "$0")"
ver="$(grep -E '^trl==' ../../python/requirements.txt | cut -d= -f3)"
python3 -m pip download --no-deps --only-binary=:all: -d wheels "trl==${ver}"
ls -la wheels
