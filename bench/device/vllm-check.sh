#!/usr/bin/env bash
# Prepared check for a lent GPU machine (NOT run on this project's machines: none had vLLM or a
# GPU). If the machine has vLLM, serve the bundled decoder (exported as a Hugging Face Llama
# folder by tools/export_hf_llama.py) with --enable-prompt-embeds and compare, question by
# question, the answers of `arc-context ask --backend vllm` with the in-process ONNX answers
# (greedy, same prefix). Needs .devcarry (bench/device/prepare.sh) for Node; vLLM itself must
# already be installed there (the machine has no network). Results go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/devout}; mkdir -p "$out"
py=${VLLM_PYTHON:-python3}
if ! "$py" -c 'import vllm, sys; print("vllm", vllm.__version__, "python", sys.version.split()[0])' 2>&1 | tee "$out/vllm-version.txt"; then
  echo "vLLM is not installed on this machine: the engine check cannot run here." | tee "$out/vllm-result.txt"
  exit 0
fi
node=node
if [ -f .devcarry/node.xz ]; then
  mkdir -p /tmp/devnode && xz -dc .devcarry/node.xz > /tmp/devnode/node && chmod +x /tmp/devnode/node && node=/tmp/devnode/node
  rm -rf node_modules && xz -dc .devcarry/node_modules.tar.xz | tar -xf -
fi
nvidia-smi -L 2>&1 | tee "$out/gpu.txt"
hf=/tmp/arc-tiny-hf
"$py" tools/export_hf_llama.py --package models/arc-tiny-code --out "$hf" || exit 1
port=8011
# float32 to match the in-process decoder; a backend without fp32 support makes vLLM say so in the log.
"$py" -m vllm.entrypoints.openai.api_server --model "$hf" --served-model-name arc-tiny-code \
  --enable-prompt-embeds --dtype float32 --max-model-len 1024 --host 127.0.0.1 --port $port \
  --gpu-memory-utilization 0.2 > "$out/vllm-server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 1 180); do
  curl -sf "http://127.0.0.1:$port/v1/models" > /dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { echo "vLLM exited; see vllm-server.log" | tee "$out/vllm-result.txt"; tail -30 "$out/vllm-server.log"; exit 1; }
  sleep 2
done
while IFS= read -r q; do
  for mode in mixed arc; do
    a=$("$node" dist/cli.js ask --no-cache --root test/e2e/workspace --mode $mode --json "$q" 2>>"$out/cli.err")
    b=$("$node" dist/cli.js ask --no-cache --root test/e2e/workspace --mode $mode --json --backend vllm \
        --decoder-url "http://127.0.0.1:$port" --served-model arc-tiny-code "$q" 2>>"$out/cli.err")
    printf '%s\n%s\n' "$a" "$b" >> "$out/vllm-answers.jsonl"
    aa=$(printf '%s' "$a" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["answer"])')
    bb=$(printf '%s' "$b" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["answer"])')
    echo "$mode | $q | onnx: $aa | vllm: $bb"
  done
done <<'QUESTIONS' | tee "$out/vllm-compare.txt"
Which file defines `applyDiscount`?
What are the parameters of `applyDiscount`?
What is the value of `LOW_STOCK_THRESHOLD`?
What is the value of `MAX_SLUG_LENGTH`?
Which file defines `slugify`?
What are the parameters of `restock`?
QUESTIONS
n=$(grep -c . "$out/vllm-compare.txt"); diff=$(awk -F' \\| ' '{ sub(/^onnx: /,"",$3); sub(/^vllm: /,"",$4); if ($3 != $4) n++ } END { print n+0 }' "$out/vllm-compare.txt")
echo "vLLM vs in-process ONNX, greedy: $((n - diff)) of $n answers equal" | tee "$out/vllm-result.txt"
