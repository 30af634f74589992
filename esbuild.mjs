// Bundles the extension host code, the CLI and the webview UI.
import * as esbuild from 'esbuild';
import { existsSync } from 'node:fs';

const watch = process.argv.includes('--watch');
const common = { bundle: true, sourcemap: true, logLevel: 'info', target: 'es2022' };
const builds = [
  { entryPoints: ['src/cli.ts'], outfile: 'dist/cli.js', platform: 'node', format: 'cjs',
    external: ['onnxruntime-node', 'vscode'], banner: { js: '#!/usr/bin/env node' } },
  { entryPoints: ['src/extension/extension.ts'], outfile: 'dist/extension.js', platform: 'node',
    format: 'cjs', external: ['onnxruntime-node', 'vscode'] },
  // The tokenizer worker of whole-tree compression, loaded by dist/cli.js and dist/extension.js
  // from their own folder (chunkIndex.ts: chunkWorkerScript).
  { entryPoints: ['src/core/context/chunkWorker.ts'], outfile: 'dist/chunkWorker.js', platform: 'node',
    format: 'cjs', external: ['onnxruntime-node', 'vscode'] },
  { entryPoints: ['webview/main.ts'], outfile: 'dist/webview.js', platform: 'browser', format: 'iife' },
].filter((b) => existsSync(b.entryPoints[0]));

for (const b of builds) {
  const opts = { ...common, ...b };
  if (watch) await (await esbuild.context(opts)).watch();
  else await esbuild.build(opts);
}
