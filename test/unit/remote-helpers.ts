// Shared by the remote-*.test.ts files: the Python that has torch (Debian's python3-torch, as
// .ci/run installs it) and a skip reason when it is missing.
import { spawnSync } from 'node:child_process';

export const PYTHON = process.env.ARC_PYTHON ?? '/usr/bin/python3';

function torchCheck(): string | false {
  const r = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (r.error) return `${PYTHON} not found (${r.error.message}); install python3-torch`;
  return r.status === 0 ? false : `${PYTHON} has no torch (install python3-torch)`;
}

/** false when torch imports, else why the torch-backed tests are skipped. */
export const NO_TORCH = torchCheck();
