#!/usr/bin/env bash
# The project's whole test suite: TypeScript unit/integration, Python tooling, end-to-end.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build
npm run test:unit
npm run test:python
# Extension-host suite (@vscode/test-electron): says so and passes where VS Code cannot be
# downloaded; the end-to-end suite below covers the same flows in a real workbench.
npm run test:vscode
# Real-editor end-to-end: packages the VSIX, installs it into code-server, drives it with
# chromium. Installs its toolchain into .e2e-cache/ on first use (needs root for apt).
npm run test:e2e
