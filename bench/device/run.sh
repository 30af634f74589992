#!/usr/bin/env bash
# On the device machine (repository root, with .devcarry and .gl carried): which ONNX Runtime
# execution providers initialise there, and the encoder speed on each, in one run.
# Expected there: cuda is skipped (onnxruntime-node's CUDA provider libraries are downloaded by
# its install script, which cannot run offline), webgpu runs through Vulkan if the loaders
# are present, cpu always runs. The bench output names the provider actually used.
set -uo pipefail
for f in .gl/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done; ldconfig 2>/dev/null || true
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
mkdir -p /tmp/devnode && xz -dc .devcarry/node.xz > /tmp/devnode/node && chmod +x /tmp/devnode/node
rm -rf node_modules && xz -dc .devcarry/node_modules.tar.xz | tar -xf -
out=${OUT:-/tmp/devout}; mkdir -p "$out"
nvidia-smi -L 2>&1 | tee "$out/gpu.txt"
for p in cuda webgpu cpu; do
  echo "== provider $p"
  /tmp/devnode/node dist/cli.js bench --quick --provider "$p" --out "$out/$p" -v 2>&1 | tee "$out/bench-$p.txt"
done
