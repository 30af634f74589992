// "ARC: Compress Workspace" (src/extension/compressWorkspace.ts has no vscode import, so it runs
// here on the real tiny-arc package): it fills the vector cache, the chunk index and the lexical
// index that ask() and a later window read, tokenizing in a worker thread while it encodes
// (compressFiles, as `arc-context compress`), with the same entries as the sequential recipe.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { ArcModel } from '../../src/core/api';
import { VectorCache } from '../../src/core/context/cache';
import { ChunkIndex, chunkFilesIndexed, chunkIndexIdentity, liveChunkWorkers, openChunkIndex } from '../../src/core/context/chunkIndex';
import { compressFiles, compressTree } from '../../src/core/context/compress';
import { clearLexiconMemo, LexicalIndex, lexiconsFor } from '../../src/core/context/lexicalIndex';
import { collectSources } from '../../src/core/context/sources';
import { loadTokenizer, type HfTokenizer } from '../../src/core/tokenizer';
import type { FileCompression, SourceInput } from '../../src/core/types';
import { compressSources } from '../../src/extension/compressWorkspace';
import { entryHashes as storeHashes, tempDir, useTinyArc } from './pipeline-helpers';

const REPO = path.resolve(__dirname, '../..');
const { skip, model: tinyArc } = useTinyArc();

/**
 * The model with a tokenizer of its own: the per-process chunk memo is per tokenizer object, and
 * a file served from it is not written to the chunk index, so each run below gets a fresh one.
 */
async function withOwnTokenizer(model: ArcModel): Promise<ArcModel> {
  return { ...model, tokenizer: await loadTokenizer((model.tokenizer as HfTokenizer).path) } as ArcModel;
}

/** Entry files under a cache folder (default: vectors .arcv, chunk index .arci, lexical index .arcl): relative path -> sha256. */
const entryHashes = (dir: string, ext = /\.arc[vil]$/): Map<string, string> => storeHashes(dir, ext);

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

test('Compress Workspace writes the entries of the sequential recipe and of `arc-context compress`, byte for byte', { skip }, async () => {
  const base = await tinyArc();
  const t = tempDir('compress-ws-same');
  try {
    const root = path.join(t.dir, 'ws');
    cpSync(path.join(REPO, 'test/fixtures/workspace-py'), root, { recursive: true });
    mkdirSync(path.join(root, 'ts'));
    for (const f of ['cache.ts', 'chunker.ts', 'select.ts', 'plan.ts']) cpSync(path.join(REPO, 'src/core/context', f), path.join(root, 'ts', f));
    // The same text under another path (other headers, other chunks) and a file without chunks.
    cpSync(path.join(REPO, 'src/core/context/chunker.ts'), path.join(root, 'ts', 'chunker-copy.ts'));
    writeFileSync(path.join(root, 'blank.py'), '\n   \n\n');
    const collected = await collectSources({ roots: [root] });
    const files = collected.files;
    const sources: SourceInput[] = files.map((f) => ({ path: f.path, absPath: f.absPath as string, origin: 'workspace' }));
    const chunkOpts = { maxTokens: base.encoder.maxChunkTokens, header: base.manifest.documentFormat.header };

    // What compressSources ran before: lexiconsFor, then chunkFilesIndexed, then compressTree.
    clearLexiconMemo();
    const oldDir = path.join(t.dir, 'old');
    const oldModel = await withOwnTokenizer(base);
    const oldIndex = await openChunkIndex(oldModel, oldDir);
    assert.ok(oldIndex, 'the tiny-arc tokenizer is file-backed');
    await lexiconsFor(files, oldModel.tokenizer, chunkOpts, oldIndex, new LexicalIndex(oldDir, oldIndex.identity));
    const chunked = await chunkFilesIndexed(files, oldModel.tokenizer, chunkOpts, oldIndex);
    const tree = compressTree(chunked.chunks, { encoder: base.encoder, modelIdentity: base.identity, cache: new VectorCache(oldDir) });
    let tr = await tree.next();
    while (!tr.done) tr = await tree.next();
    const oldFiles = new Map<string, FileCompression>();
    chunked.chunks.forEach((c, i) => {
      const f = oldFiles.get(c.path) ?? { path: c.path, tokens: 0, vectors: 0, chunks: 0, included: 0, textChunks: 0 };
      f.tokens += c.tokenIds.length;
      f.vectors += tr.value!.counts[i];
      f.chunks += 1;
      oldFiles.set(c.path, f);
    });
    const want = entryHashes(oldDir);
    assert.equal([...want.keys()].filter((k) => k.endsWith('.arcl')).length, files.length);
    assert.equal([...want.keys()].filter((k) => k.endsWith('.arci')).length, files.length);

    // Compress Workspace now.
    clearLexiconMemo();
    const newDir = path.join(t.dir, 'new');
    const logs: string[] = [];
    const progress: [string, number | undefined, number | undefined][] = [];
    const snap = await compressSources(await withOwnTokenizer(base), sources, 'Workspace', {
      cacheDir: newDir,
      log: (l) => logs.push(l),
      onProgress: (m, d, n) => progress.push([m, d, n]),
    });
    assert.ok(logs.some((l) => l.startsWith('tokenizing in 1 worker thread')), logs.join('\n'));
    assert.equal(liveChunkWorkers(), 0, 'the tokenizer worker has exited');
    assert.deepEqual(entryHashes(newDir), want, 'same vector cache, chunk index and lexical index entries, same bytes');
    assert.ok(files.some((f) => f.path === 'blank.py') && !snap.files.some((f) => f.path === 'blank.py'), 'a file without chunks is not listed');
    assert.deepEqual(snap.files, [...oldFiles.values()]);
    const c = snap.compress;
    assert.ok(c);
    assert.deepEqual([c.chunks, c.cacheHits, c.encoded, c.skippedFiles], [chunked.chunks.length, tr.value.cacheHits, tr.value.encoded, 0]);
    const last = progress[progress.length - 1];
    assert.deepEqual([last[1], last[2]], [c.chunks, c.chunks], 'the last progress is the whole tree');

    // `arc-context compress` (compressFiles, no lexical index) writes the same vectors and chunk index.
    const cliDir = path.join(t.dir, 'cli');
    const cliModel = await withOwnTokenizer(base);
    const it = compressFiles(files, {
      encoder: base.encoder,
      modelIdentity: base.identity,
      cache: new VectorCache(cliDir),
      tokenizer: cliModel.tokenizer,
      chunkOptions: chunkOpts,
      index: await openChunkIndex(cliModel, cliDir),
    });
    let r = await it.next();
    while (!r.done) r = await it.next();
    assert.deepEqual(entryHashes(cliDir), entryHashes(newDir, /\.arc[vi]$/));

    // Again in a new window (empty memos): nothing is encoded, no entry changes.
    clearLexiconMemo();
    const again = await compressSources(await withOwnTokenizer(base), sources, 'Workspace', { cacheDir: newDir });
    assert.deepEqual([again.compress?.encoded, again.compress?.cacheHits], [0, c.chunks]);
    assert.deepEqual(again.files, snap.files);
    assert.deepEqual(entryHashes(newDir), want);
  } finally {
    t.cleanup();
  }
});
