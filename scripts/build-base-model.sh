#!/usr/bin/env bash
# Rebuilds the shipped base model models/tr-math-base/ (see its README.md): the separate synthetic warm-up
# set (small-number problems, a quarter in loose layouts, arithmetic drills), a random tiny char-level LLaMA, a
# `ttrl sft` warm-up at a constant learning rate, then the
# shipped-test-set evaluation recorded in the model card. Run from the repository root:
#   bash scripts/build-base-model.sh
# Work files go to runs/base-model/ (git-ignored); only the final weights are copied into models/.
# Env: THREADS (default 2), SKIP_EVAL=1 to skip the evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."

TTRL="node bin/ttrl.mjs"
WORK=runs/base-model
OUT=models/tr-math-base
THREADS=${THREADS:-2}
mkdir -p "$WORK"

# 1. Warm-up data: 12,000 synthetic problems like the shipped ones (another seed, no question of the shipped
#    sets), 25% of the solutions in loose layouts, plus 20,000 arithmetic-drill rows, interleaved.
$TTRL data synth --lang tr --n 12000 --seed 777 --levels 1 --ops 1,2 --max-number 30 --loose-format 0.25 \
  --drills 20000 --exclude data/tr-math/test.jsonl --exclude data/tr-math/train.jsonl --out "$WORK/sft.jsonl"

# 2. A random tiny LLaMA (d=96, 3 layers, 6 heads / 2 KV heads, char-tr tokenizer), seed 0.
rm -rf "$WORK/init"
$TTRL init-model --preset tiny --tokenizer char-tr --seed 0 --out "$WORK/init"

# 3. The warm-up: 1,000 steps of batch 16 (16,000 rows, half a pass over the warm-up set) at a constant
#    learning rate of 3e-3 after 120 warm-up steps; data-order seed 1. (The shipped model's run was started
#    with --max-steps 6000 and its step-1000 checkpoint taken; with a constant rate and --warmup-steps that
#    is the same run as this one.)
rm -rf "$WORK/sft"
$TTRL sft --model "$WORK/init" --data "$WORK/sft.jsonl" --out "$WORK/sft" \
  --max-steps 1000 --batch-size 16 --learning-rate 3e-3 --warmup-steps 120 \
  --lr-scheduler-type constant_with_warmup --save-steps 250 --save-total-limit 0 --seed 1 --threads "$THREADS"

# 4. Ship the weights (the model card README.md in $OUT is kept).
mkdir -p "$OUT"
for f in config.json generation_config.json model.safetensors tokenizer.json tokenizer_config.json; do
  cp "$WORK/sft/final/$f" "$OUT/$f"
done
echo "wrote $OUT"

# 5. The card's metrics: 8 samples per question on the whole shipped test set.
if [ "${SKIP_EVAL:-0}" != 1 ]; then
  rm -rf "$WORK/eval"
  $TTRL eval --model "$OUT" --data data/tr-math/test.jsonl --k 8 --max-tokens 128 --batch-size 64 \
    --seed 0 --out "$WORK/eval"
fi
