#!/usr/bin/env bash
# The project's whole test suite: TypeScript unit/integration, Python tooling, end-to-end.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build
npm run test:unit
npm run test:python
