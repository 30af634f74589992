#!/usr/bin/env bash
# Turns a finished training run into the bundled default model: package (ONNX export + weights),
# evaluate all 530 held-out rows in the three modes through the TypeScript CLI, write the model
# card (MODEL.md, DATA.md, loss/em charts) with the measured table, and record the figures in
# arc-model.json (the e2e suite reads them).
#
#   bash tools/finalize_default.sh RUN [CONFIG] [CONTINUES]
#     RUN        the training run folder (ckpt.pt, or a GPU run's final-*.pt)
#     CONFIG     the config that run used (default tools/configs/arc-tiny-code.json)
#     CONTINUES  the previous package's arc-model.json + train-log.jsonl, when RUN started from
#                its weights (train.py --init-from): training cost and log become cumulative
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:?usage: bash tools/finalize_default.sh RUN [CONFIG] [CONTINUES]}
CONFIG=${2:-tools/configs/arc-tiny-code.json}
CONTINUES=${3:-}
OUT=models/arc-tiny-code
EVAL_DIR=${EVAL_DIR:-$(mktemp -d)}
PY=/usr/bin/python3

$PY tools/package_default.py --run "$RUN" --out "$OUT" --config "$CONFIG" ${CONTINUES:+--continues "$CONTINUES"}
[ -f dist/cli.js ] || npm run build
# Two evaluations at a time (one ONNX Runtime thread each), no shared cache: every row is encoded.
eval_mode() {
  node dist/cli.js eval --model "$OUT" --data "$OUT/heldout-qa.jsonl" --mode "$1" --json --threads 1 --no-cache \
    > "$EVAL_DIR/eval-$1.json"
}
eval_mode arc & p1=$!
eval_mode full & p2=$!
wait $p1; wait $p2
eval_mode none
$PY tools/model_card.py --model "$OUT" --data tools/.data --data-md \
  --eval-json "$EVAL_DIR/eval-arc.json" "$EVAL_DIR/eval-full.json" "$EVAL_DIR/eval-none.json"
$PY - "$EVAL_DIR" <<'PY'
import json, sys
for m in ("arc", "full", "none"):
    r = json.load(open(f"{sys.argv[1]}/eval-{m}.json"))
    print(f"{m:5s} exact match {r['exactMatch']:.3f} over {r['n']} rows")
PY
echo "evaluation files in $EVAL_DIR"
