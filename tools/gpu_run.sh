#!/usr/bin/env bash
# The prepared GPU training run of the default model: about ten minutes on one NVIDIA GPU.
# Run on the GPU machine from the repository root, with tools/.data-gpu/ (tools/pack_gpu_run.py)
# carried along. Writes the run (log, final-*.pt weights, each < 16 MB) to ${OUT:-runs}/gpu.
# Back here: /usr/bin/python3 tools/package_default.py --run <that folder> --data tools/.data
# exports it; keep it if `arc-context eval` scores it above the CPU model. Its window is 1024, so
# tools/finalize_default.sh should sweep larger text budgets: SWEEP="1 192 320 512".
set -euo pipefail
out="${OUT:-runs}/gpu"
mkdir -p "$out"
PYTHONUNBUFFERED=1 python3 tools/train.py --config tools/configs/arc-tiny-code-gpu.json \
  --data tools/.data-gpu --run "$out" --device cuda --threads 4 --max-minutes "${MINUTES:-9}" 2>&1 | tee "$out/train.log"
rm -f "$out/ckpt.pt"  # optimizer state: too large to carry back, not needed for export
ls -la "$out"
