// Whole-tree compression with tokenizing and encoding overlapped (compressFiles: a worker thread
// tokenizes while this thread encodes), on the real tiny-arc package and real files: the chunks,
// the token ids, the vector cache and the chunk index come out byte for byte as on the
// sequential path (chunkFilesIndexed then compressTree), with one or two workers, with a tight
// lead budget, and when the worker cannot start; a cancellation stops the worker, leaves only
// valid entries, and the next run encodes and tokenizes only what was left.
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import type { ArcModel, TextTokenizer } from '../../src/core/api';
import { VectorCache, decodeEntry } from '../../src/core/context/cache';
import { ChunkIndex, chunkFilesIndexed, chunkWorkerScript, liveChunkWorkers, openChunkIndex, streamFileChunks } from '../../src/core/context/chunkIndex';
import type { ChunkOptions } from '../../src/core/context/chunker';
import { compressFiles, compressTree, type TreeCompression } from '../../src/core/context/compress';
import { collectSources, type SourceFile } from '../../src/core/context/sources';
import { ArcError } from '../../src/core/errors';
import { counting, entryHashes as storeHashes, separateTokenizer as otherTokenizer, tempDir, useTinyArc } from './pipeline-helpers';

/** Vector and chunk index entries: relative path -> sha256. */
const entryHashes = (dir: string): Map<string, string> => storeHashes(dir, /\.arc[vi]$/);

const REPO = path.resolve(__dirname, '../..');
const { skip, model: tinyArc } = useTinyArc();
/** Small slices, so that a few hundred chunks make several and files straddle their ends. */
const SLICE = 40;

/** A folder of real files: the Python fixture workspace and this folder's neighbours' sources. */
async function workspace(dir: string): Promise<SourceFile[]> {
  const root = path.join(dir, 'ws');
  cpSync(path.join(REPO, 'test/fixtures/workspace-py'), root, { recursive: true });
  mkdirSync(path.join(root, 'ts'));
  for (const f of ['cache.ts', 'chunker.ts', 'select.ts', 'locations.ts', 'plan.ts']) cpSync(path.join(REPO, 'src/core/context', f), path.join(root, 'ts', f));
  // The same text under two paths: different chunks (the header differs), same file size.
  cpSync(path.join(REPO, 'src/core/context/chunker.ts'), path.join(root, 'ts', 'chunker-copy.ts'));
  return (await collectSources({ roots: [root] })).files;
}

const chunkOpts = (model: ArcModel): ChunkOptions => ({ maxTokens: model.encoder.maxChunkTokens, header: model.manifest.documentFormat.header });

/** The sequential path as `arc-context compress` ran it before: chunk every file, then compressTree. */
async function sequential(model: ArcModel, files: SourceFile[], cacheDir: string) {
  const index = await openChunkIndex(model, cacheDir);
  const chunked = await chunkFilesIndexed(files, await otherTokenizer(model), chunkOpts(model), index);
  const it = compressTree(chunked.chunks, { encoder: model.encoder, modelIdentity: model.identity, cache: new VectorCache(cacheDir), sliceSize: SLICE });
  let r = await it.next();
  while (!r.done) r = await it.next();
  return { chunks: chunked.chunks, counts: r.value.counts, cacheHits: r.value.cacheHits, encoded: r.value.encoded };
}

async function overlapped(
  model: ArcModel,
  files: SourceFile[],
  cacheDir: string,
  extra: { workers?: number; maxBufferedChars?: number; tokenizer?: TextTokenizer; signal?: AbortSignal; onProgress?: (encoded: number) => void } = {},
): Promise<{ res: TreeCompression; logs: string[]; seen: string[] }> {
  const logs: string[] = [];
  const seen: string[] = [];
  const it = compressFiles(files, {
    encoder: model.encoder,
    modelIdentity: model.identity,
    cache: new VectorCache(cacheDir),
    signal: extra.signal,
    tokenizer: extra.tokenizer ?? model.tokenizer,
    chunkOptions: chunkOpts(model),
    index: await openChunkIndex(model, cacheDir, { log: (l) => logs.push(l) }),
    sliceSize: SLICE,
    workers: extra.workers,
    maxBufferedChars: extra.maxBufferedChars,
    log: (l) => logs.push(l),
    onFile: (fc) => void seen.push(`${fc.file.path}:${fc.chunks.length}`),
  });
  let r = await it.next();
  let last = 0;
  while (!r.done) {
    assert.ok(r.value.done >= last, 'progress only goes up');
    last = r.value.done;
    extra.onProgress?.(r.value.encoded);
    r = await it.next();
  }
  return { res: r.value, logs, seen };
}

test('the worker script is found next to the sources (tsx) as it is next to the bundles', () => {
  assert.ok(chunkWorkerScript()?.endsWith(path.join('src', 'core', 'context', 'chunkWorker.ts')));
});

test('streamed chunks equal chunkFilesIndexed: same chunks, token ids and order, with and without the index', { skip }, async () => {
  const model = await tinyArc();
  const t = tempDir('ovl-stream');
  try {
    const files = await workspace(t.dir);
    const want = await chunkFilesIndexed(files, await otherTokenizer(model), chunkOpts(model), null);
    for (const workers of [1, 2]) {
      for (const withIndex of [false, true]) {
        const index = withIndex ? await openChunkIndex(model, path.join(t.dir, `c${workers}`)) : null;
        // Twice with the index: first tokenized by the worker, then read back from the index by it.
        for (const pass of withIndex ? ['chunked', 'index'] : ['chunked']) {
          const got = [];
          for await (const fc of streamFileChunks(files, model.tokenizer, chunkOpts(model), { index, workers, maxBufferedChars: 3000 })) {
            assert.equal(fc.from, pass);
            got.push(...fc.chunks);
          }
          assert.deepEqual(got, want.chunks, `${workers} worker(s), index ${withIndex}, ${pass}`);
        }
      }
    }
    assert.equal(liveChunkWorkers(), 0);
  } finally {
    t.cleanup();
  }
});

test('overlapped compression fills the cache and the chunk index byte for byte as the sequential path', { skip }, async () => {
  const model = await tinyArc();
  const t = tempDir('ovl-same');
  try {
    const files = await workspace(t.dir);
    const seqDir = path.join(t.dir, 'seq');
    const seq = await sequential(model, files, seqDir);
    const uniq = new Set(seq.chunks.map((c) => c.hash)).size;
    assert.ok(seq.chunks.length > 4 * SLICE, `${seq.chunks.length} chunks`);
    const want = entryHashes(seqDir);
    assert.equal([...want.keys()].filter((k) => k.endsWith('.arcv')).length, uniq);
    assert.equal([...want.keys()].filter((k) => k.endsWith('.arci')).length, files.length);
    // A file's figures from the sequential path.
    const perFile = files.map((f) => {
      const mine = seq.chunks.map((c, i) => ({ c, i })).filter(({ c }) => c.path === f.path);
      return { path: f.path, chunks: mine.length, tokens: mine.reduce((s, { c }) => s + c.tokenIds.length, 0), vectors: mine.reduce((s, { i }) => s + seq.counts[i], 0) };
    });
    const variants: [string, Parameters<typeof overlapped>[3]][] = [
      ['1 worker', { workers: 1 }],
      ['2 workers, tight lead budget', { workers: 2, maxBufferedChars: 2000 }],
      ['no worker', { workers: 0 }],
    ];
    for (const [name, extra] of variants) {
      const dir = path.join(t.dir, name.replace(/\W+/g, '-'));
      const { res, logs, seen } = await overlapped(model, files, dir, extra);
      assert.deepEqual(entryHashes(dir), want, `${name}: same entries, same bytes`);
      assert.deepEqual(seen, perFile.map((f) => `${f.path}:${f.chunks}`), 'onFile sees every file in order');
      assert.deepEqual(res.files, perFile, name);
      assert.equal(res.chunks, seq.chunks.length);
      assert.equal(res.vectors, seq.counts.reduce((s, n) => s + n, 0));
      assert.equal(res.sourceTokens, seq.chunks.reduce((s, c) => s + c.tokenIds.length, 0));
      assert.deepEqual([res.cacheHits, res.encoded], [seq.cacheHits, seq.encoded], name);
      assert.deepEqual([res.fromMemo, res.fromIndex, res.chunked], [0, 0, files.length]);
      if (extra?.workers) assert.ok(logs.some((l) => l.startsWith(`tokenizing in ${extra.workers} worker thread`)), logs.join('\n'));
      assert.ok(!logs.some((l) => /stopped|terminated|main thread/.test(l)), logs.join('\n'));
      // A second run: everything from the chunk index and the cache.
      const again = await overlapped(model, files, dir, extra);
      assert.deepEqual([again.res.fromIndex, again.res.chunked, again.res.encoded, again.res.cacheHits], [files.length, 0, 0, seq.chunks.length]);
    }
    assert.equal(liveChunkWorkers(), 0);
  } finally {
    t.cleanup();
  }
});

test('a worker that cannot load the tokenizer hands its files to this thread: same entries', { skip }, async () => {
  const model = await tinyArc();
  const t = tempDir('ovl-fallback');
  try {
    const files = await workspace(t.dir);
    const seqDir = path.join(t.dir, 'seq');
    await sequential(model, files, seqDir);
    // The same tokenizer object, but pointing the worker at a file that is not there.
    const broken = Object.assign(Object.create(Object.getPrototypeOf(model.tokenizer) as object) as TextTokenizer, model.tokenizer, { path: path.join(t.dir, 'missing', 'tokenizer.json') });
    const dir = path.join(t.dir, 'ovl');
    const { res, logs } = await overlapped(model, files, dir, { workers: 1, tokenizer: broken });
    assert.ok(logs.some((l) => l.includes('tokenizer worker stopped')), logs.join('\n'));
    assert.equal(res.chunked, files.length);
    assert.deepEqual(entryHashes(dir), entryHashes(seqDir));
    // A tokenizer that is not file-backed: no worker at all, and it says why.
    const plain: TextTokenizer = { encode: (s) => model.tokenizer.encode(s), decode: (ids) => model.tokenizer.decode(ids) };
    const plainLogs: string[] = [];
    let n = 0;
    for await (const fc of streamFileChunks(files, plain, chunkOpts(model), { index: null, workers: 1, log: (l) => plainLogs.push(l) })) n += fc.chunks.length;
    assert.equal(n, res.chunks);
    assert.deepEqual(plainLogs, ['tokenizing on the main thread: the tokenizer is not loaded from a file']);
    assert.equal(liveChunkWorkers(), 0);
  } finally {
    t.cleanup();
  }
});

test('cancelling stops the worker, leaves only valid entries, and the rerun redoes no finished work', { skip }, async () => {
  const base = await tinyArc();
  const t = tempDir('ovl-abort');
  try {
    const files = await workspace(t.dir);
    const all = await chunkFilesIndexed(files, await otherTokenizer(base), chunkOpts(base), null);
    const unique = new Set(all.chunks.map((c) => c.hash)).size;
    const dir = path.join(t.dir, 'cache');
    const first = counting(base);
    const abort = new AbortController();
    let abortedAt = 0;
    await assert.rejects(
      overlapped(first.model, files, dir, {
        workers: 1,
        signal: abort.signal,
        maxBufferedChars: 20_000,
        onProgress: (encoded) => {
          if (encoded >= 24 && !abort.signal.aborted) {
            abort.abort();
            abortedAt = performance.now();
          }
        },
      }),
      (e: unknown) => e instanceof ArcError && e.code === 'cancelled',
    );
    const stopMs = performance.now() - abortedAt;
    assert.ok(stopMs < 2000, `stopped ${Math.round(stopMs)} ms after the abort`);
    assert.equal(liveChunkWorkers(), 0, 'the worker has exited');
    const encodedFirst = first.encoded();
    assert.ok(encodedFirst >= 24 && encodedFirst < unique, `${encodedFirst} of ${unique}`);

    // Every vector entry verifies, and there is one per encoded chunk: a finished batch is stored.
    const vectors = await new VectorCache(dir).listEntries();
    assert.equal(vectors.length, encodedFirst);
    for (const e of vectors) assert.equal(typeof decodeEntry(path.basename(e.file, '.arcv'), readFileSync(e.file), base.encoder.dim), 'object', e.file);
    // Every chunk index entry verifies (a bad one would be logged and deleted by get).
    const logs: string[] = [];
    const index = new ChunkIndex(dir, (await openChunkIndex(base, dir))!.identity, { log: (l) => logs.push(l) });
    const stored = (await index.listEntries()).length;
    let hits = 0;
    for (const f of files) if (await index.get(f, chunkOpts(base))) hits++;
    assert.deepEqual(logs, []);
    assert.equal(hits, stored);
    assert.ok(stored > 0 && stored < files.length, `${stored} of ${files.length} files indexed before the cancel`);

    // The rerun: only what was left is encoded, and indexed files are not tokenized again.
    const second = counting(base);
    const { res } = await overlapped(second.model, files, dir, { workers: 1 });
    assert.equal(encodedFirst + second.encoded(), unique, 'no chunk encoded twice');
    assert.equal(res.encoded, second.encoded());
    assert.deepEqual([res.fromIndex, res.chunked], [stored, files.length - stored]);
    const seqDir = path.join(t.dir, 'seq');
    await sequential(base, files, seqDir);
    assert.deepEqual(entryHashes(dir), entryHashes(seqDir), 'the finished cache equals an uninterrupted sequential run');
  } finally {
    t.cleanup();
  }
});
