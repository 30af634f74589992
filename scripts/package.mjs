// Builds the extension and packages a platform-specific VSIX that carries only that
// platform's onnxruntime-node binary.
//
//   node scripts/package.mjs [--target linux-x64] [--out file.vsix] [--no-build]
//
// The target defaults to the machine's own platform. @vscode/vsce 4 needs Node >= 22: on an
// older Node the script runs vsce with the Node 24 that test/e2e/setup.sh caches.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

// vsce target -> onnxruntime-node's binary folder (bin/napi-v6/<os>/<arch>). Targets missing
// here have no onnxruntime-node binary (1.30 ships no darwin-x64, armhf or musl builds).
const ORT_FOLDERS = {
  'linux-x64': 'linux/x64',
  'linux-arm64': 'linux/arm64',
  'win32-x64': 'win32/x64',
  'win32-arm64': 'win32/arm64',
  'darwin-arm64': 'darwin/arm64',
};

// vsce target -> @parcel/watcher's prebuilt package (bundled into dist/*.js except its native
// part, which it requires by name at run time). npm installs only the build machine's own; a VSIX
// for another target without it still works, scanning every question (treeWatch.ts).
const WATCHER_PACKAGES = {
  'linux-x64': '@parcel/watcher-linux-x64-glibc',
  'linux-arm64': '@parcel/watcher-linux-arm64-glibc',
  'win32-x64': '@parcel/watcher-win32-x64',
  'win32-arm64': '@parcel/watcher-win32-arm64',
  'darwin-arm64': '@parcel/watcher-darwin-arm64',
};

function fail(message) {
  console.error(`package: ${message}`);
  process.exit(1);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.error) fail(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}`);
  return r;
}

/** A Node >= 22 to run vsce with: this one, or the e2e toolchain's cached Node 24. */
function nodeForVsce() {
  if (Number(process.versions.node.split('.')[0]) >= 22) return process.execPath;
  const r = spawnSync('bash', [join(root, 'test/e2e/setup.sh'), '--node-only'], {
    cwd: root, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8',
  });
  const m = /export ARC_E2E_NODE=(\S+)/.exec(r.stdout ?? '');
  if (r.status !== 0 || !m) fail('could not provide Node 24 for vsce (test/e2e/setup.sh --node-only failed)');
  return m[1];
}

const { values } = parseArgs({
  options: {
    target: { type: 'string', default: `${process.platform}-${process.arch}` },
    out: { type: 'string' },
    build: { type: 'boolean', default: true },
  },
  allowNegative: true,
});
const target = values.target;
const ortFolder = ORT_FOLDERS[target];
if (!ortFolder) fail(`no onnxruntime-node binary for target ${target}; supported: ${Object.keys(ORT_FOLDERS).join(', ')}`);
const ortBin = join(root, 'node_modules/onnxruntime-node/bin/napi-v6', ortFolder);
if (!existsSync(ortBin)) fail(`${ortBin} is missing: run npm ci`);

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const out = resolve(root, values.out ?? `${pkg.name}-${pkg.version}-${target}.vsix`);

if (values.build) run('npm', ['run', 'build']);
if (!existsSync(join(root, pkg.main))) fail(`${pkg.main} (package.json "main") was not built`);
if (!existsSync(join(root, 'models/arc-tiny-code/arc-model.json'))) {
  console.warn('package: models/arc-tiny-code/arc-model.json is missing: the VSIX carries no default model');
}

// .vscodeignore is a whitelist; add this target's binary folder to a copy of it.
const work = mkdtempSync(join(tmpdir(), 'arc-package-'));
try {
  const ignoreFile = join(work, '.vscodeignore');
  const base = readFileSync(join(root, '.vscodeignore'), 'utf8');
  const watcherPkg = WATCHER_PACKAGES[target];
  const watcherDir = watcherPkg ? join(root, 'node_modules', watcherPkg) : null;
  const watcherLines = watcherDir && existsSync(watcherDir) ? `!node_modules/${watcherPkg}/package.json\n!node_modules/${watcherPkg}/*.node\n!node_modules/${watcherPkg}/LICENSE\n` : '';
  if (!watcherLines) console.warn(`package: ${watcherPkg ?? 'no @parcel/watcher package'} for ${target} is not installed here: the VSIX scans the folders on every question instead of watching them`);
  writeFileSync(ignoreFile, `${base}\n# added for --target ${target}\n!node_modules/onnxruntime-node/bin/napi-v6/${ortFolder}/*\n${watcherLines}`);
  run(nodeForVsce(), [
    join(root, 'node_modules/@vscode/vsce/vsce'), 'package',
    '--target', target,
    '--ignoreFile', ignoreFile,
    '--out', out,
    // No public repository yet; vsce would otherwise stop and ask.
    '--allow-missing-repository',
    // README images stay relative: the VSIX carries them (see .vscodeignore), so the
    // extension's details page shows them offline; there is no repository URL to point at.
    '--no-rewrite-relative-links',
  ], { stdio: ['ignore', 'inherit', 'inherit'] });
} finally {
  rmSync(work, { recursive: true, force: true });
}

const mb = (statSync(out).size / 1024 / 1024).toFixed(1);
console.log(`package: ${out} (${mb} MiB, target ${target})`);
