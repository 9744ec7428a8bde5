#!/usr/bin/env bash
# Rebuilds the shipped base model models/tr-math-base/ (see its README.md) in three `ttrl sft` phases on
# synthetic Turkish one-operation problems that share no question with the shipped data/tr-math:
#   1. word problems only (1,000 steps, constant rate): the model learns the layout and to copy operands;
#   2. the same problems with 20,000 arithmetic-drill rows (2,400 steps, constant rate): the arithmetic;
#   3. the problems with deliberate arithmetic slips in SLIPS of the solutions, drills kept clean (300 steps,
#      rate decayed to 0): a model that is right more often than any one wrong answer, not always — the
#      regime in which majority votes carry signal.
# Then the evaluation recorded in the model card. Run from the repository root:
#   bash scripts/build-base-model.sh
# Work files go to runs/base-model/ (git-ignored); only the final weights are copied into models/.
# Env: THREADS (default 2), SKIP_EVAL=1 to skip the evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."

TTRL="node bin/ttrl.mjs"
WORK=runs/base-model
OUT=models/tr-math-base
THREADS=${THREADS:-2}
SLIPS=0.5
mkdir -p "$WORK"

# 0. The full one-operation set that data/tr-math is the 7-template subset of (data/tr-math/README.md):
#    every warm-up set below excludes all of its questions, shipped or not.
$TTRL data synth --lang tr --n 2598 --seed 20250 --levels 1 --ops 1 --max-number 30 --split 2000:598 --out "$WORK/one-op"
EXCLUDE=(--exclude "$WORK/one-op/test.jsonl" --exclude "$WORK/one-op/train.jsonl")
SYNTH=(data synth --lang tr --n 12000 --seed 777 --levels 1 --ops 1 --max-number 30 --loose-format 0.25)

# 1. Warm-up data: 12,000 problems (every one-operation template, 25% of the solutions in loose layouts);
#    the same problems with 20,000 drill rows interleaved; and those again with slips.
$TTRL "${SYNTH[@]}" "${EXCLUDE[@]}" --out "$WORK/phase1.jsonl"
$TTRL "${SYNTH[@]}" --drills 20000 "${EXCLUDE[@]}" --out "$WORK/phase2.jsonl"
$TTRL "${SYNTH[@]}" --slips "$SLIPS" --drills 20000 "${EXCLUDE[@]}" --out "$WORK/phase3.jsonl"

# 2. A random tiny LLaMA (d=96, 3 layers, 6 heads / 2 KV heads, char-tr tokenizer), seed 0.
rm -rf "$WORK/init"
$TTRL init-model --preset tiny --tokenizer char-tr --seed 0 --out "$WORK/init"

# 3. The three phases, batch 16, peak learning rate 3e-3.
SFT=(sft --batch-size 16 --learning-rate 3e-3 --save-total-limit 0 --threads "$THREADS")
rm -rf "$WORK/phase1" "$WORK/phase2" "$WORK/phase3"
$TTRL "${SFT[@]}" --model "$WORK/init" --data "$WORK/phase1.jsonl" --out "$WORK/phase1" \
  --max-steps 1000 --warmup-steps 120 --lr-scheduler-type constant_with_warmup --save-steps 500 --seed 1
$TTRL "${SFT[@]}" --model "$WORK/phase1/final" --data "$WORK/phase2.jsonl" --out "$WORK/phase2" \
  --max-steps 2400 --warmup-steps 50 --lr-scheduler-type constant_with_warmup --save-steps 400 --seed 2
$TTRL "${SFT[@]}" --model "$WORK/phase2/final" --data "$WORK/phase3.jsonl" --out "$WORK/phase3" \
  --max-steps 300 --warmup-steps 20 --lr-scheduler-type linear --save-steps 0 --seed 3

# 4. Ship the weights (the model card README.md in $OUT is kept).
mkdir -p "$OUT"
for f in config.json generation_config.json model.safetensors tokenizer.json tokenizer_config.json; do
  cp "$WORK/phase3/final/$f" "$OUT/$f"
done
echo "wrote $OUT"

# 5. The card's metrics: 8 samples per question on the whole shipped test set.
if [ "${SKIP_EVAL:-0}" != 1 ]; then
  rm -rf "$WORK/eval"
  $TTRL eval --model "$OUT" --data data/tr-math/test.jsonl --k 8 --max-tokens 96 --batch-size 64 \
    --seed 0 --out "$WORK/eval"
fi
