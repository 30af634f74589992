// "ARC: Compress Workspace" (src/extension/compressWorkspace.ts has no vscode import, so it runs
// here on the real tiny-arc package): it fills the vector cache and the chunk index that ask()
// and a later window read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { ChunkIndex, chunkIndexIdentity } from '../../src/core/context/chunkIndex';
import { collectSources } from '../../src/core/context/sources';
import { compressSources } from '../../src/extension/compressWorkspace';
import { tempDir, useTinyArc } from './pipeline-helpers';

const { skip, model: tinyArc } = useTinyArc();

test('Compress Workspace writes the chunk index and the vectors; a second run encodes nothing', { skip }, async () => {
  const model = await tinyArc();
  const ws = tempDir('compress-ws');
  try {
    const src = path.join(ws.dir, 'src');
    mkdirSync(path.join(src, 'pkg'), { recursive: true });
    writeFileSync(path.join(src, 'a.py'), 'def area(w, h):\n    return w * h\n\n\nRATE = 0.25\n');
    writeFileSync(path.join(src, 'pkg', 'b.ts'), 'export function greet(name: string): string {\n  return `hi ${name}`;\n}\n');
    const cacheDir = path.join(ws.dir, 'cache');
    const sources = [
      { path: 'a.py', absPath: path.join(src, 'a.py'), origin: 'workspace' as const },
      { path: 'pkg/b.ts', absPath: path.join(src, 'pkg', 'b.ts'), origin: 'workspace' as const },
    ];
    const first = await compressSources(model, sources, 'Workspace', { cacheDir });
    assert.deepEqual(first.files.map((f) => f.path).sort(), ['a.py', 'pkg/b.ts']);
    const c1 = first.compress;
    assert.ok(c1 && c1.encoded > 0 && c1.cacheHits === 0, JSON.stringify(c1));
    const identity = await chunkIndexIdentity(model);
    assert.ok(identity, 'the tiny-arc tokenizer is file-backed');
    const index = new ChunkIndex(cacheDir, identity);
    const files = (await collectSources({ sources })).files;
    const opts = { maxTokens: model.encoder.maxChunkTokens, header: model.manifest.documentFormat.header };
    for (const f of files) assert.ok(existsSync(index.entryPath(index.key(f, opts))), `chunk index entry for ${f.path}`);
    const second = await compressSources(model, sources, 'Workspace', { cacheDir });
    assert.deepEqual([second.compress?.encoded, second.compress?.cacheHits], [0, c1.chunks]);
  } finally {
    ws.cleanup();
  }
});

test('Compress Workspace stops with a cancellation error when the signal has fired', { skip }, async () => {
  const model = await tinyArc();
  const ws = tempDir('compress-ws-cancel');
  try {
    writeFileSync(path.join(ws.dir, 'a.py'), 'x = 1\n');
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(
      compressSources(model, [{ path: 'a.py', absPath: path.join(ws.dir, 'a.py'), origin: 'workspace' }], 'Workspace', {
        cacheDir: path.join(ws.dir, 'cache'),
        signal: ac.signal,
      }),
      (e: Error & { code?: string }) => e.code === 'cancelled' || /cancel/i.test(e.message),
    );
  } finally {
    ws.cleanup();
  }
});
