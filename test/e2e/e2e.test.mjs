// End-to-end: the packaged VSIX installed into a fresh code-server (real VS Code workbench and
// extension host), driven through a real browser. Run with `npm run test:e2e`.
import assert from 'node:assert/strict';
import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as h from './harness.mjs';

const TITLES = [
  'ARC: Compress and Ask…',
  'ARC: Ask About Workspace',
  'ARC: Ask About Open Files',
  'ARC: Compress Workspace',
  'ARC: Select Model…',
  'ARC: Show Compression Stats',
  'ARC: Clear Compressed Cache',
  'ARC: Focus Chat',
];

/** A private copy of the fixture workspace, so nothing a run writes lands in the repository. */
function workspaceCopy(name) {
  const dir = join(h.TMP, `workspace-${name}-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  cpSync(join(h.E2E_DIR, 'workspace'), dir, { recursive: true });
  return dir;
}

let tc;
let vsix;
let browser;

before(async () => {
  tc = h.toolchain();
  vsix = h.packageVsix();
  browser = await h.launchBrowser(tc);
}, { timeout: 30 * 60_000 });

after(() => h.stopAll());

describe('ARC Context in code-server', { timeout: 20 * 60_000 }, () => {
  let server;
  let page;

  before(async () => {
    server = await h.startCodeServer(tc, { name: 'main', vsix, workspace: workspaceCopy('main') });
    page = await h.openWorkbench(browser, server);
  });

  after(async () => {
    await page?.context().close();
    await server?.stop();
  });

  it('lists the ARC commands in the command palette', async () => {
    const rows = await h.paletteRows(page, 'ARC:', { minRows: TITLES.length, shot: 'palette' });
    const missing = TITLES.filter((t) => !rows.some((r) => r.startsWith(t)));
    assert.deepEqual(missing, [], `palette rows: ${JSON.stringify(rows)}`);
  });
});
