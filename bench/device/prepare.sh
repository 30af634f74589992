#!/usr/bin/env bash
# Prepares, on the build machine, what the GPU provider check needs on a device machine that
# has no Node.js and no network: an xz-packed Node 24 binary and a minimal node_modules with
# only linux-x64 ONNX Runtime. Everything goes to .devcarry/ (git-excluded); carry it with
# `.devcarry` and `.gl` (Vulkan/EGL loaders, see the device notes) and run bench/device/run.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.devcarry/' .git/info/exclude 2>/dev/null || echo '/.devcarry/' >> .git/info/exclude
npm run build >/dev/null
node_bin=$(bash test/e2e/setup.sh --node-only | sed -n 's/^export ARC_E2E_NODE=//p' | tr -d "'\"")
rm -rf .devcarry && mkdir -p .devcarry/node_modules
xz -T0 -6 -c "$node_bin" > .devcarry/node.xz
cp -r node_modules/onnxruntime-common .devcarry/node_modules/
cp -r node_modules/onnxruntime-node .devcarry/node_modules/
rm -rf .devcarry/node_modules/onnxruntime-node/bin/napi-v*/{darwin,win32} .devcarry/node_modules/onnxruntime-node/bin/napi-v*/linux/arm64
cp -r node_modules/@huggingface .devcarry/node_modules/ 2>/dev/null || true
# the carry limit is 64 MiB: pack the ONNX Runtime binaries too
tar -C .devcarry -cf - node_modules | xz -T0 -6 > .devcarry/node_modules.tar.xz
rm -rf .devcarry/node_modules
du -sh .devcarry  # measured: about 45 MB
