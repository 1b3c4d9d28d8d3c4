#!/usr/bin/env bash
# The whole pipeline on a generated mini corpus: `make demo` runs `bash scripts/demo.sh OUTDIR`.
#
#   OUTDIR/raw    the synthetic raw root (every source in its published layout)
#   OUTDIR/build  the compiled instruction data (samples, images, eval shards, manifest, card)
#
# Later steps (training, evaluation) append below; each step reads only what earlier ones wrote.
set -euo pipefail

OUT="${1:?usage: bash scripts/demo.sh OUTDIR}"
SKYEYE="${SKYEYE:-.venv/bin/skyeye}"

echo "== 1. synthesize the mini raw corpus"
"$SKYEYE" synth "$OUT/raw" --scale mini

echo "== 2. build recipes/demo.yaml"
"$SKYEYE" build recipes/demo.yaml --raw-root "$OUT/raw" --out "$OUT/build"

echo "== 3. statistics (exits 1 when a count differs from the recipe's expected counts)"
"$SKYEYE" stats "$OUT/build" --plot "$OUT/build-stats.png"

echo "== 3b. what the paper recipe's review policy would send to Label Studio (skyeye review queue)"
"$SKYEYE" review queue "$OUT/build" --recipe recipes/skyeye-968k.yaml

echo "== 4. train the tiny random model a few steps on the demo shards, then predict (recipes/train/tiny.yaml)"
rm -rf "$OUT/train"
"$SKYEYE" train make-tiny "$OUT/tiny-model"
"$SKYEYE" train run recipes/train/tiny.yaml --data-root "$OUT/build" --output-dir "$OUT/train" \
  --set model.llm_path="$OUT/tiny-model/llm" --set model.vision_path="$OUT/tiny-model/vision"
"$SKYEYE" predict "$OUT/train/checkpoint-0000020" "$OUT/build/eval" --out "$OUT/predictions.parquet" --max-new-tokens 16

echo "== 5. score the predictions against the eval shards' references"
"$SKYEYE" eval "$OUT/predictions.parquet" --out "$OUT/report"
echo "report: $OUT/report/report.md"
