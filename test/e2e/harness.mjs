// Drives a real VS Code workbench (code-server) in a real browser (Debian chromium through
// playwright-core). Everything this module starts is tracked and killed by process group when
// the test process ends, whether the tests pass, fail or are interrupted.
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const E2E_DIR = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(E2E_DIR, '../..');
export const CACHE = process.env.ARC_E2E_CACHE ?? join(ROOT, '.e2e-cache');
export const TMP = join(E2E_DIR, '.tmp');
export const SCREENSHOTS = join(E2E_DIR, 'screenshots');

const log = (msg) => console.error(`[e2e ${new Date().toISOString().slice(11, 19)}] ${msg}`);
export { log };

// --- process bookkeeping -----------------------------------------------------------------

/** Process groups started here (code-server and its children); killed on any exit. */
const groups = new Set();
const browsers = new Set();

function killGroups(signal) {
  for (const pid of groups) {
    try { process.kill(-pid, signal); } catch { /* already gone */ }
  }
}

/** Stops everything this module started. Safe to call more than once. */
export async function stopAll() {
  for (const b of browsers) await b.close().catch(() => {});
  browsers.clear();
  killGroups('SIGTERM');
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && [...groups].some(alive)) await sleep(100);
  killGroups('SIGKILL');
  groups.clear();
}

/** Ends a child's process group: SIGTERM, up to 5 s to exit, then SIGKILL. */
async function stopGroup(child) {
  try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ }
  const until = Date.now() + 5000;
  while (Date.now() < until && alive(child.pid)) await sleep(100);
  try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
  groups.delete(child.pid);
}

function alive(pid) {
  try { process.kill(-pid, 0); return true; } catch { return false; }
}

process.on('exit', () => killGroups('SIGKILL'));
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { killGroups('SIGKILL'); process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1)); });
}

// --- toolchain, VSIX ---------------------------------------------------------------------

/** Runs test/e2e/setup.sh (idempotent) and returns the tools it provides. */
export function toolchain() {
  const started = Date.now();
  const r = spawnSync('bash', [join(E2E_DIR, 'setup.sh')], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`test/e2e/setup.sh failed (exit ${r.status ?? r.signal})`);
  const env = Object.fromEntries([...r.stdout.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
  const tc = { node: env.ARC_E2E_NODE, codeServer: env.ARC_E2E_CODE_SERVER, chromium: env.ARC_E2E_CHROMIUM };
  for (const [k, v] of Object.entries(tc)) {
    if (!v || !existsSync(v)) throw new Error(`setup.sh did not provide ${k} (${v})`);
  }
  log(`toolchain ready (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  return tc;
}

/** Builds and packages the VSIX for this platform, or reuses ARC_E2E_VSIX when set. */
export function packageVsix() {
  if (process.env.ARC_E2E_VSIX) return resolve(process.env.ARC_E2E_VSIX);
  const out = join(CACHE, 'arc-context-e2e.vsix');
  rmSync(out, { force: true });
  const started = Date.now();
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/package.mjs'), '--out', out], {
    cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.status !== 0 || !existsSync(out)) throw new Error(`npm run package failed (exit ${r.status ?? r.signal})`);
  log(`packaged ${out} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  return out;
}

// --- code-server -------------------------------------------------------------------------

export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

/** Settings that keep the workbench quiet and deterministic for screenshots and key presses. */
const BASE_SETTINGS = {
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.welcomePage.walkthroughs.openOnInstall': false,
  'workbench.enableExperiments': false,
  'security.workspace.trust.enabled': false,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.autoUpdate': false,
  'extensions.autoCheckUpdates': false,
  'extensions.ignoreRecommendations': true,
  'chat.disableAIFeatures': true,
  'chat.commandCenter.enabled': false,
  'editor.minimap.enabled': false,
  'workbench.secondarySideBar.defaultVisibility': 'hidden',
  // The temporary workspaces live inside this repository's checkout; keep git out of them.
  'git.enabled': false,
  'git.openRepositoryInParentFolders': 'never',
  'window.zoomLevel': 0,
};

function codeServerEnv(tc, dir) {
  // code-server's child processes (extension host, pty host) run on the same Node. Its config
  // and log folders go to the instance's own folder, not the user's home.
  const env = {
    ...process.env,
    PATH: `${dirname(tc.node)}:${process.env.PATH}`,
    XDG_CONFIG_HOME: join(dir, 'xdg-config'),
    XDG_DATA_HOME: join(dir, 'xdg-data'),
  };
  delete env.NODE_OPTIONS; // a loader from the test runner must not leak into the extension host
  delete env.VSCODE_IPC_HOOK_CLI;
  return env;
}

const WATCHDOG = `
"$@" &
server=$!
while kill -0 "$ARC_E2E_OWNER" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 1; done
kill -KILL 0
`;

/**
 * A fresh code-server: its own user-data and extensions folders, the VSIX installed, the given
 * settings in both the user and the machine settings file (arcContext.modelPath is
 * machine-scoped), listening on a free loopback port.
 */
export async function startCodeServer(tc, { name, vsix, workspace, settings = {} }) {
  mkdirSync(TMP, { recursive: true });
  const dir = mkdtempSync(join(TMP, `${name}-`));
  const userData = join(dir, 'user-data');
  const extensions = join(dir, 'extensions');
  const merged = JSON.stringify({ ...BASE_SETTINGS, ...settings }, null, 2);
  for (const sub of ['User', 'Machine']) {
    mkdirSync(join(userData, sub), { recursive: true });
    writeFileSync(join(userData, sub, 'settings.json'), merged);
  }
  const env = codeServerEnv(tc, dir);
  const common = ['--config', join(dir, 'config.yaml'), '--user-data-dir', userData, '--extensions-dir', extensions];

  const started = Date.now();
  const inst = spawnSync(tc.node, [tc.codeServer, ...common, '--install-extension', vsix], {
    env, encoding: 'utf8', timeout: 180_000,
  });
  const installOut = `${inst.stdout ?? ''}${inst.stderr ?? ''}`;
  if (inst.status !== 0 || !/successfully installed/i.test(installOut)) {
    throw new Error(`code-server --install-extension failed (exit ${inst.status ?? inst.signal}):\n${installOut}`);
  }
  log(`[${name}] extension installed (${((Date.now() - started) / 1000).toFixed(0)} s)`);

  const port = await freePort();
  const logFile = join(dir, 'code-server.log');
  const out = createWriteStream(logFile);
  // code-server runs in its own process group under a watchdog shell that takes the whole group
  // down when this test process is gone, even if it was killed too hard to clean up itself.
  const child = spawn('bash', ['-c', WATCHDOG, 'code-server', tc.node,
    tc.codeServer, ...common,
    '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none',
    '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust',
    '--disable-getting-started-override',
    workspace,
  ], { env: { ...env, ARC_E2E_OWNER: String(process.pid) }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  groups.add(child.pid);
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  let exited = null;
  child.on('exit', (code, signal) => { exited = code ?? signal; });

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (exited !== null) throw new Error(`code-server exited (${exited}); log:\n${readFileSync(logFile, 'utf8')}`);
    if (Date.now() > deadline) throw new Error(`code-server did not answer /healthz in 90 s; log: ${logFile}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) break;
    } catch { /* not listening yet */ }
    await sleep(250);
  }
  log(`[${name}] code-server on ${url} (${((Date.now() - started) / 1000).toFixed(0)} s), log ${logFile}`);

  return {
    name, url, dir, userData, extensions, logFile, workspace,
    log: () => readFileSync(logFile, 'utf8'),
    stop: () => stopGroup(child),
  };
}

/**
 * tools/engine_test_server.py (the stand-in for vLLM / SGLang) on a free loopback port, in its
 * own process group under the same watchdog as code-server. `--verbose` makes it log every HTTP
 * request line on stderr; `requests()` returns those lines (the suite's own /_test/ calls left
 * out), so a test can tell that nothing at all reached the server.
 */
export async function startEngineServer({ name, python = '/usr/bin/python3', packageDir, servedModel, args = [] }) {
  mkdirSync(TMP, { recursive: true });
  const dir = mkdtempSync(join(TMP, `${name}-`));
  const logFile = join(dir, 'engine-server.log');
  const out = createWriteStream(logFile);
  const child = spawn('bash', ['-c', WATCHDOG, 'engine-test-server', python,
    join(ROOT, 'tools', 'engine_test_server.py'), '--package', packageDir, '--host', '127.0.0.1', '--port', '0',
    '--test-controls', '--verbose', ...(servedModel ? ['--served-model-name', servedModel] : []), ...args,
  ], { env: { ...process.env, OMP_NUM_THREADS: '1', ARC_E2E_OWNER: String(process.pid) }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  groups.add(child.pid);
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d.toString(); out.write(d); });
  let exited = null;
  child.on('exit', (code, signal) => { exited = code ?? signal; });
  const started = Date.now();
  const url = await new Promise((res, rej) => {
    let buf = '';
    const timer = setInterval(() => {
      if (exited !== null) { clearInterval(timer); rej(new Error(`engine_test_server exited (${exited}):\n${stderr}`)); }
      else if (Date.now() - started > 90_000) { clearInterval(timer); rej(new Error(`engine_test_server did not start in 90 s:\n${stderr}`)); }
    }, 200);
    child.stdout.on('data', (d) => {
      out.write(d);
      buf += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(buf);
      if (m) { clearInterval(timer); res(m[1]); }
    });
  });
  log(`[${name}] engine test server on ${url} (${((Date.now() - started) / 1000).toFixed(0)} s), log ${logFile}`);
  return {
    url, host: new URL(url).host, logFile,
    /** Every request line the server logged, except the suite's own /_test/ calls. */
    requests: () => [...stderr.matchAll(/^engine-test-server: "(\w+ \S+) HTTP\/[\d.]+" (\d+)/gm)]
      .map((m) => `${m[1]} ${m[2]}`).filter((l) => !/ \/_test\//.test(l)),
    /** The generation requests it served: path, outcome, tokens. */
    async served() { return (await fetch(`${url}/_test/log`)).json(); },
    stop: () => stopGroup(child),
  };
}

/** The extension's own log files (LogOutputChannel) under the server's user-data folder. */
export function extensionLogs(server) {
  const r = spawnSync('bash', ['-c', `find "${server.userData}/logs" -type f -iname '*arc*' -exec sh -c 'echo "== $1"; tail -c 4000 "$1"' _ {} \\;`], { encoding: 'utf8' });
  return r.stdout;
}

// --- browser and workbench ---------------------------------------------------------------

export async function launchBrowser(tc) {
  // Chromium's crash-report and config folders go to the run's temporary folder, not to ~.
  const xdg = join(TMP, 'chromium-xdg');
  mkdirSync(xdg, { recursive: true });
  const browser = await chromium.launch({
    executablePath: tc.chromium,
    headless: true,
    env: { ...process.env, XDG_CONFIG_HOME: join(xdg, 'config'), XDG_CACHE_HOME: join(xdg, 'cache') },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage'],
  });
  browsers.add(browser);
  return browser;
}

/** Opens the server's workbench and waits until it is usable. */
export async function openWorkbench(browser, server) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => log(`[${server.name}] page error: ${e.message}`));
  await page.goto(`${server.url}/?folder=${encodeURIComponent(server.workspace)}`);
  await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
  // The explorer shows the workspace once the file service is up.
  await page.locator('.explorer-folders-view .monaco-list-row').first().waitFor({ timeout: 60_000 });
  return page;
}

/** The quick input box that is on screen (hidden quick inputs stay in the DOM). */
const quickInput = (page) => page.locator('.quick-input-widget .quick-input-box input').filter({ visible: true });

/**
 * Runs a command from the palette: F1, type the title, Enter once the top row is that
 * command. Retyping covers a workbench whose extensions are still registering commands.
 */
export async function runCommand(page, title, timeout = 30_000) {
  // No click first: focus must stay where it is (a selection-only command needs the editor).
  await page.keyboard.press('F1');
  const input = quickInput(page);
  await input.waitFor({ timeout: 10_000 });
  const row = page.locator('.quick-input-widget .monaco-list-row.focused');
  await expectEventually(async () => {
    await input.fill(`>${title}`);
    await sleep(250);
    const label = (await row.count()) > 0 ? await row.first().getAttribute('aria-label') : null;
    if (label?.startsWith(title)) return true;
    await input.fill('>');
    await sleep(500);
    return `focused palette row is "${label}", not "${title}"`;
  }, timeout, 0);
  await page.keyboard.press('Enter');
}

/**
 * The command palette rows for a query once at least `minRows` match (extensions register
 * their contributions a moment after the workbench appears), then closes the palette.
 */
export async function paletteRows(page, query, { minRows = 1, timeout = 30_000, shot } = {}) {
  await page.keyboard.press('F1');
  const input = quickInput(page);
  await input.waitFor({ timeout: 10_000 });
  let labels = [];
  const deadline = Date.now() + timeout;
  for (;;) {
    await input.fill(`>${query}`);
    await sleep(300);
    labels = await page.locator('.quick-input-widget .monaco-list-row').evaluateAll(
      (rows) => rows.map((r) => r.getAttribute('aria-label') ?? ''));
    if (labels.filter((l) => !/No matching commands/.test(l)).length >= minRows || Date.now() > deadline) break;
    await input.fill('>');
    await sleep(700);
  }
  if (shot) await screenshot(page, shot);
  await page.keyboard.press('Escape');
  return labels;
}

const escapeRe = (t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The row labelled exactly `label` in the quick pick titled `title`. Waiting for the title
 * matters: right after a palette command the palette's own rows may still be on screen.
 */
export async function quickPickRow(page, title, label, timeout = 30_000) {
  await page.locator('.quick-input-widget .quick-input-title', { hasText: title })
    .filter({ visible: true }).waitFor({ timeout });
  const row = page.locator('.quick-input-widget .monaco-list-row')
    .filter({ has: page.locator('.label-name', { hasText: new RegExp(`^\\s*${escapeRe(label)}\\s*$`) }) })
    .filter({ visible: true }).first();
  await row.waitFor({ timeout });
  return row;
}

/** Clicks the row labelled `label` in the quick pick titled `title`. */
export async function pickQuickItem(page, title, label) {
  await (await quickPickRow(page, title, label)).click();
}

/** Waits for the input box whose prompt contains `prompt`, types `text` and accepts it. */
export async function answerInputBox(page, prompt, text) {
  await page.locator('.quick-input-widget .quick-input-message', { hasText: prompt })
    .filter({ visible: true }).waitFor({ timeout: 30_000 });
  const input = quickInput(page);
  await input.fill(text);
  await page.keyboard.press('Enter');
}

/**
 * Webview content sits in nested iframes (workbench -> webview host -> content). Returns the
 * frame that contains `selector`, waiting up to `timeout` ms.
 */
export async function frameWith(page, selector, { timeout = 30_000 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    for (const frame of page.frames()) {
      if (frame === page.mainFrame()) continue;
      try {
        if ((await frame.locator(selector).count()) > 0) return frame;
      } catch { /* frame navigated away */ }
    }
    if (Date.now() > deadline) throw new Error(`no webview frame contains ${selector} within ${timeout} ms`);
    await sleep(200);
  }
}

/** Opens a workspace file through Quick Open (Ctrl+P). */
export async function openFile(page, relPath) {
  await page.keyboard.press('Control+P');
  const input = quickInput(page);
  await input.waitFor({ timeout: 10_000 });
  await input.fill(relPath);
  const name = relPath.split('/').pop();
  await page.locator('.quick-input-widget .monaco-list-row.focused', { hasText: name }).waitFor({ timeout: 15_000 });
  await page.keyboard.press('Enter');
  await activeTab(page, name);
}

/** Waits until the active editor tab is `name`; returns its aria-label. */
export async function activeTab(page, name, timeout = 15_000) {
  let label = '';
  await expectEventually(async () => {
    label = (await page.locator('.tabs-container .tab.active').first().getAttribute('aria-label').catch(() => '')) ?? '';
    return label.includes(name) ? true : `active tab is "${label}", expected ${name}`;
  }, timeout);
  return label;
}

/** Polls `check` (returns true or a reason string) until it is true. */
export async function expectEventually(check, timeout = 30_000, interval = 200) {
  const deadline = Date.now() + timeout;
  let last = 'never checked';
  for (;;) {
    try {
      const r = await check();
      if (r === true) return;
      last = String(r);
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms: ${last}`);
    await sleep(interval);
  }
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const file = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file });
  log(`screenshot ${file}`);
  return file;
}
