#!/usr/bin/env bash
# Turns a finished training run into the bundled default model: package (ONNX export + weights),
# measure the mixed-mode text budget on the whole-package held-out set, evaluate both held-out
# sets in every mode through the TypeScript CLI, write the model card (MODEL.md, DATA.md,
# loss/em charts) with the measured tables, and record the figures in arc-model.json (the e2e
# suite reads them).
#
#   bash tools/finalize_default.sh RUN [CONFIG] [CONTINUES]
#     RUN        the training run folder (ckpt.pt, or a GPU run's final-*.pt)
#     CONFIG     the config that run used (default tools/configs/arc-tiny-code.json)
#     CONTINUES  the previous package's arc-model.json + train-log.jsonl, when RUN started from
#                its weights (train.py --init-from): training cost and log become cumulative
#   bash tools/finalize_default.sh --remeasure
#     measure the package already in OUT again (no training run, nothing repackaged): for a change of
#     decoding or context policy in the TypeScript pipeline; the text budget is swept again, and
#     CONTEXT_ORDER / QUOTE_CHUNKS are recorded in its manifest first
#   env: SWEEP="1 96 192 320"  mixed text budgets to measure (tokens as text; the best-ranked chunk is
#                              text even when larger, so 1 means "that chunk only")
#        TEXT_BUDGET=N         skip the sweep and use N
#        NOTES=FILE            run notes (Markdown) for MODEL.md
#        OUT=DIR               package folder (default models/arc-tiny-code)
#        EXTRACTIVE=0          package with free decoding (default 1: prompt.extractive, answers are spans
#                              of the context; the whole-package set is also decoded freely for comparison)
#        CONTEXT_ORDER=rank    prompt.contextOrder: "rank" (default: best-ranked chunks first) or "document"
#        QUOTE_CHUNKS=1        prompt.quoteChunks: extractive answers quote the N best-ranked chunks (default
#                              1); "all" leaves the field out
#
# The text budget chosen is the one with the best mixed exact match on the DEVELOPMENT set
# (tools/.data/dev-repos.jsonl, made by make_repo_heldout.py --dev from training packages: 900 rows) among
# those whose mean source tokens read are at least twice full mode's there (the point of
# compressing). The held-out sets only measure the result: nothing is chosen on them.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:?usage: bash tools/finalize_default.sh RUN [CONFIG] [CONTINUES] | --remeasure}
CONFIG=${2:-tools/configs/arc-tiny-code.json}
CONTINUES=${3:-}
OUT=${OUT:-models/arc-tiny-code}
EVAL_DIR=${EVAL_DIR:-$(mktemp -d)}
mkdir -p "$EVAL_DIR"
SWEEP=${SWEEP:-1 96 192 320}
PY=/usr/bin/python3
CACHE="$EVAL_DIR/cache"
REPOS=models/arc-tiny-code/heldout-repos.jsonl
DEV=tools/.data/dev-repos.jsonl
CONTEXT_ORDER=${CONTEXT_ORDER:-rank}
QUOTE_CHUNKS=${QUOTE_CHUNKS:-1}

# Records prompt.KEY = VALUE (JSON; "null" removes the key) in the package's manifest, which every
# mode's evaluation then reads.
set_prompt() {  # KEY VALUE
  $PY - "$OUT/arc-model.json" "$1" "$2" <<'PY'
import json, sys
p, key, value = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
m = json.load(open(p))
if value is None:
    m["prompt"].pop(key, None)
else:
    m["prompt"][key] = value
with open(p, "w") as f:
    json.dump(m, f, indent=2)
    f.write("\n")
PY
}
set_text_budget() { set_prompt mixedTextBudget "$1"; }

if [ "$RUN" = --remeasure ]; then
  [ -f "$OUT/arc-model.json" ] || { echo "--remeasure: no package in $OUT" >&2; exit 2; }
  # package_default.py records these when it packages; here nothing is repackaged.
  if [ -n "${TEXT_BUDGET:-}" ]; then set_text_budget "$TEXT_BUDGET"; fi
  set_prompt contextOrder "\"$CONTEXT_ORDER\""
  set_prompt quoteChunks "$([ "$QUOTE_CHUNKS" = all ] && echo null || echo "$QUOTE_CHUNKS")"
else
  $PY tools/package_default.py --run "$RUN" --out "$OUT" --config "$CONFIG" ${CONTINUES:+--continues "$CONTINUES"} \
    ${TEXT_BUDGET:+--text-budget "$TEXT_BUDGET"} $([ "${EXTRACTIVE:-1}" = 1 ] && echo --extractive) \
    --context-order "$CONTEXT_ORDER" $([ "$QUOTE_CHUNKS" = all ] || echo --quote-chunks "$QUOTE_CHUNKS")
fi
[ -f dist/cli.js ] || npm run build

# Whole-package set: one vector cache for all its rows and modes (each package is compressed once).
repo_eval() {  # MODE OUTFILE [extra args]
  local mode=$1 out=$2
  shift 2
  node dist/cli.js eval --model "$OUT" --data "$REPOS" --mode "$mode" --json --threads 1 --cache "$CACHE" "$@" > "$out"
}
# Development set (training packages): where the text budget is chosen.
dev_eval() {  # MODE OUTFILE [extra args]
  local mode=$1 out=$2
  shift 2
  node dist/cli.js eval --model "$OUT" --data "$DEV" --mode "$mode" --json --threads 1 --cache "$EVAL_DIR/dev-cache" "$@" > "$out"
}
# Short-context set (the model's own held-out rows): no cache, every row is encoded.
short_eval() {
  node dist/cli.js eval --model "$OUT" --data "$OUT/heldout-qa.jsonl" --mode "$1" --json --threads 1 --no-cache \
    > "$EVAL_DIR/eval-$1.json"
}

# 1. full and arc first (arc fills the cache), two at a time (one ONNX Runtime thread each)
repo_eval full "$EVAL_DIR/repo-full.json" & p1=$!
repo_eval arc "$EVAL_DIR/repo-arc.json" & p2=$!
wait $p1; wait $p2

# 2. the text budget, on the development set
sweep_files=()
if [ -z "${TEXT_BUDGET:-}" ]; then
  # 900 rows over 131 training packages (deterministic): choices between settings a few rows apart
  # are noise on 300.
  $PY tools/make_repo_heldout.py --dev --rows 900 --max-bytes 6000000 > /dev/null
  dev_eval full "$EVAL_DIR/dev-full.json"
  set -- $SWEEP
  while [ $# -gt 0 ]; do
    dev_eval mixed "$EVAL_DIR/sweep-$1.json" --text-budget "$1" & q1=$!
    sweep_files+=("$EVAL_DIR/sweep-$1.json")
    if [ $# -gt 1 ]; then
      dev_eval mixed "$EVAL_DIR/sweep-$2.json" --text-budget "$2" & q2=$!
      sweep_files+=("$EVAL_DIR/sweep-$2.json")
      wait $q2
      shift
    fi
    wait $q1
    shift
  done
  TEXT_BUDGET=$($PY - "$EVAL_DIR/dev-full.json" "${sweep_files[@]}" <<'PY'
import json, sys
full = json.load(open(sys.argv[1]))
best = None
for path in sys.argv[2:]:
    r = json.load(open(path))
    ok = r["meanSourceTokens"] >= 2 * full["meanSourceTokens"]
    key = (ok, r["exactMatch"], -r["textBudget"])
    if best is None or key > best[0]:
        best = (key, r["textBudget"])
print(best[1])
PY
)
  echo "mixed text budget: $TEXT_BUDGET (sweep on the development set: $SWEEP)"
  set_text_budget "$TEXT_BUDGET"
fi
repo_eval mixed "$EVAL_DIR/repo-mixed.json"

# 3. the rest: closed book on the whole-package set, every mode on the short set
repo_eval none "$EVAL_DIR/repo-none.json" & p1=$!
short_eval mixed & p2=$!
wait $p1; wait $p2
short_eval arc & p1=$!
short_eval full & p2=$!
wait $p1; wait $p2
short_eval none
free_files=()
if [ "${EXTRACTIVE:-1}" = 1 ]; then
  repo_eval mixed "$EVAL_DIR/free-mixed.json" --decoding free & p1=$!
  repo_eval full "$EVAL_DIR/free-full.json" --decoding free & p2=$!
  wait $p1; wait $p2
  repo_eval arc "$EVAL_DIR/free-arc.json" --decoding free
  free_files=("$EVAL_DIR/free-mixed.json" "$EVAL_DIR/free-arc.json" "$EVAL_DIR/free-full.json")
fi

$PY tools/model_card.py --model "$OUT" --data tools/.data --data-md \
  --eval-json "$EVAL_DIR/eval-mixed.json" "$EVAL_DIR/eval-arc.json" "$EVAL_DIR/eval-full.json" "$EVAL_DIR/eval-none.json" \
  --repo-eval-json "$EVAL_DIR/repo-mixed.json" "$EVAL_DIR/repo-arc.json" "$EVAL_DIR/repo-full.json" "$EVAL_DIR/repo-none.json" \
  ${sweep_files:+--sweep-json "${sweep_files[@]}"} ${free_files:+--free-repo-eval-json "${free_files[@]}"} ${NOTES:+--notes "$NOTES"}
$PY - "$EVAL_DIR" <<'PY'
import json, sys
for m in ("mixed", "arc", "full", "none"):
    s = json.load(open(f"{sys.argv[1]}/eval-{m}.json"))
    r = json.load(open(f"{sys.argv[1]}/repo-{m}.json"))
    print(f"{m:5s} short set EM {s['exactMatch']:.3f} ({s['n']} rows) | whole packages EM {r['exactMatch']:.3f} "
          f"({r['n']} rows, {r.get('meanSourceTokens', 0):.0f} source tokens)")
PY
echo "evaluation files in $EVAL_DIR"
