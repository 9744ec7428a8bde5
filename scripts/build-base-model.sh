#!/usr/bin/env bash
# Rebuilds the shipped base model models/tr-math-base/ (see its README.md): the separate synthetic warm-up
# set, a random tiny char-level LLaMA, a short `ttrl sft` warm-up, then the shipped-test-set evaluation
# recorded in the model card. Run from the repository root:  bash scripts/build-base-model.sh
# Work files go to runs/base-model/ (git-ignored); only the final weights are copied into models/.
# Env: THREADS (default 2), SKIP_EVAL=1 to skip the evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."

TTRL="node bin/ttrl.mjs"
WORK=runs/base-model
OUT=models/tr-math-base
THREADS=${THREADS:-2}
mkdir -p "$WORK"

# 1. Warm-up data: 20,000 synthetic problems, another seed, no question of the shipped train/test sets.
$TTRL data synth --lang tr --n 20000 --seed 777 \
  --exclude data/tr-math/test.jsonl --exclude data/tr-math/train.jsonl --out "$WORK/sft.jsonl"

# 2. A random tiny LLaMA (d=96, 3 layers, 6 heads / 2 KV heads, char-tr tokenizer), seed 0.
rm -rf "$WORK/init"
$TTRL init-model --preset tiny --tokenizer char-tr --seed 0 --out "$WORK/init"

# 3. The warm-up: three `ttrl sft` stages on the same set, each from the previous one's final/
# (400 steps at lr 3e-3, 500 at 2e-3, 1000 at 3e-3; batch 16, cosine, 2% warmup; data-order seeds 1, 2, 3).
# `ttrl sft` with more than one thread may not exit after writing final/ (the engine's worker threads
# keep the process alive), so each stage runs in the background and is stopped once it printed its summary.
sft_stage() { # name model steps lr seed
  local name=$1 model=$2 steps=$3 lr=$4 seed=$5 pid
  rm -rf "${WORK:?}/$name"
  $TTRL sft --model "$model" --data "$WORK/sft.jsonl" --out "$WORK/$name" \
    --max-steps "$steps" --batch-size 16 --learning-rate "$lr" --warmup-ratio 0.02 \
    --lr-scheduler-type cosine --save-steps 100 --save-total-limit 0 --seed "$seed" --threads "$THREADS" \
    >"$WORK/$name.log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null && ! grep -q "^final model:" "$WORK/$name.log"; do sleep 2; done
  sleep 1
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  grep -q "^final model:" "$WORK/$name.log" || { tail -20 "$WORK/$name.log"; echo "sft $name failed" >&2; exit 1; }
  grep "^sft:" "$WORK/$name.log"
}
sft_stage sft-a "$WORK/init" 400 3e-3 1
sft_stage sft-b "$WORK/sft-a/final" 500 2e-3 2
sft_stage sft-c "$WORK/sft-b/final" 1000 3e-3 3

# 4. Ship the weights (the model card README.md in $OUT is kept).
mkdir -p "$OUT"
for f in config.json generation_config.json model.safetensors tokenizer.json tokenizer_config.json; do
  cp "$WORK/sft-c/final/$f" "$OUT/$f"
done
echo "wrote $OUT"

# 5. The card's metrics: 8 samples per question on the whole shipped test set.
if [ "${SKIP_EVAL:-0}" != 1 ]; then
  rm -rf "$WORK/eval"
  $TTRL eval --model "$OUT" --data data/tr-math/test.jsonl --k 8 --max-tokens 128 --batch-size 64 \
    --seed 0 --out "$WORK/eval"
fi
