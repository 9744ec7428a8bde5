#!/usr/bin/env bash
# GPU check of the trl engine (see trl_check.py): 5 steps, random Qwen2-0.5B-shaped model, bf16, full and
# LoRA; prints step time and peak GPU memory. Needs Python with torch, transformers, accelerate and peft;
# TRL comes from scripts/gpu/wheels/ (run scripts/gpu/trl-fetch-wheel.sh first, where PyPI is reachable).
# No network, no Node. `--tiny` runs the same path on CPU with a tiny model.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec "${PYTHON:-python3}" scripts/gpu/trl_check.py "$@"
