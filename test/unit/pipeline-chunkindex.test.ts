// The persistent chunk index on a real disk with the tiny-arc package's real tokenizer and real
// files (the Python fixture workspace plus some of this repository's TypeScript sources):
// unchanged files skip the tokenizer, edits re-chunk, damaged entries are rebuilt, several
// processes share one folder, and the chunks always equal those of a fresh chunking.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { TextTokenizer } from '../../src/core/api';
import { chunkFile, chunkFiles, type Chunk, type ChunkOptions } from '../../src/core/context/chunker';
import { ChunkIndex, chunkFilesIndexed, chunkIndexIdentity, decodeChunkEntry, encodeChunkEntry } from '../../src/core/context/chunkIndex';
import { collectSources, type SourceFile } from '../../src/core/context/sources';
import { loadTokenizer } from '../../src/core/tokenizer';
import { CHILD_IDENTITY } from './pipeline-chunkindex-child';
import { TINY_ARC, fixtureTokenizer, hasTinyArc, runTs, runTsChild, tempDir } from './pipeline-helpers';

const REPO = path.resolve(__dirname, '../..');
const skip = hasTinyArc() ? false : 'test/fixtures/tiny-arc is missing (made by tools/make_fixtures.py)';
const MAX_TOKENS = (JSON.parse(readFileSync(path.join(TINY_ARC, 'arc-model.json'), 'utf8')) as { encoder: { maxChunkTokens: number } }).encoder.maxChunkTokens;
const OPTS: ChunkOptions = { maxTokens: MAX_TOKENS, header: '### {path}\n' };
const ID = 'tiny-arc-tokenizer';

/** The real tiny-arc tokenizer behind a wrapper that counts calls (a new wrapper has no memo). */
function counting(): TextTokenizer & { calls: number } {
  const base = fixtureTokenizer() as TextTokenizer;
  const tok = {
    calls: 0,
    encode: (text: string) => {
      tok.calls++;
      return base.encode(text);
    },
    decode: (ids: number[]) => base.decode(ids),
  };
  return tok;
}

/** A folder of real files: the Python fixture workspace and four of our own sources. */
function makeWorkspace(dir: string): string {
  const root = path.join(dir, 'ws');
  cpSync(path.join(REPO, 'test/fixtures/workspace-py'), root, { recursive: true });
  mkdirSync(path.join(root, 'ts'));
  for (const f of ['cache.ts', 'chunker.ts', 'select.ts', 'locations.ts']) cpSync(path.join(REPO, 'src/core/context', f), path.join(root, 'ts', f));
  return root;
}

async function files(root: string): Promise<SourceFile[]> {
  return (await collectSources({ roots: [root] })).files;
}

const fresh = (fs: SourceFile[]): Chunk[] => fs.flatMap((f) => chunkFile(f, fixtureTokenizer() as TextTokenizer, OPTS));

test('unchanged files come from the index without one tokenizer call, equal to a fresh chunking', { skip }, async () => {
  const t = tempDir('chunkidx');
  try {
    const fs = await files(makeWorkspace(t.dir));
    assert.ok(fs.length >= 10);
    const tok1 = counting();
    const first = await chunkFilesIndexed(fs, tok1, OPTS, new ChunkIndex(t.dir, ID));
    assert.deepEqual([first.fromIndex, first.fromMemo, first.chunked], [0, 0, fs.length]);
    assert.ok(tok1.calls > 0);
    assert.equal((await new ChunkIndex(t.dir, ID).listEntries()).length, fs.length, 'one entry per file');

    // A later process: a new tokenizer object (nothing in the memo) and a new index instance.
    const tok2 = counting();
    const logs: string[] = [];
    const again = await chunkFilesIndexed(fs, tok2, OPTS, new ChunkIndex(t.dir, ID, { log: (l) => logs.push(l) }));
    assert.equal(tok2.calls, 0, 'the tokenizer is not called for unchanged files');
    assert.deepEqual([again.fromIndex, again.chunked], [fs.length, 0]);
    assert.deepEqual(logs, []);
    const want = fresh(fs);
    assert.ok(want.length > 100, `${want.length} chunks`);
    assert.deepEqual(again.chunks, want, 'identical to chunkFile (ranges, bodies, texts, token ids, hashes)');
    assert.deepEqual(again.chunks, chunkFiles(fs, counting(), OPTS), 'identical to the no-index path');

    // The request's origin and absPath win over what was stored; a different identity, header or
    // budget is a different key.
    const open = fs.map((f) => ({ ...f, origin: 'open' as const, absPath: `/elsewhere/${f.path}` }));
    const reopened = await chunkFilesIndexed(open, counting(), OPTS, new ChunkIndex(t.dir, ID));
    assert.equal(reopened.fromIndex, fs.length);
    assert.ok(reopened.chunks.every((c) => c.origin === 'open' && c.absPath === `/elsewhere/${c.path}`));
    for (const [id, opts] of [['other-tokenizer', OPTS], [ID, { ...OPTS, maxTokens: MAX_TOKENS - 8 }], [ID, { ...OPTS, header: '// {path}\n' }]] as const) {
      const r = await chunkFilesIndexed(fs.slice(0, 2), counting(), opts, new ChunkIndex(t.dir, id));
      assert.deepEqual([r.fromIndex, r.chunked], [0, 2], `${id} ${JSON.stringify(opts)} must miss`);
    }
  } finally {
    t.cleanup();
  }
});

test('an edited file is re-chunked like a fresh chunking; the others still come from the index', { skip }, async () => {
  const t = tempDir('chunkidx-edit');
  try {
    const root = makeWorkspace(t.dir);
    const before = await files(root);
    await chunkFilesIndexed(before, counting(), OPTS, new ChunkIndex(t.dir, ID));
    // Insert a function in the middle of a real file.
    const target = path.join(root, 'ts/chunker.ts');
    const lines = readFileSync(target, 'utf8').split('\n');
    const at = lines.findIndex((l) => l.startsWith('export function hashText'));
    lines.splice(at, 0, 'export function addedByTheTest(alpha: number, beta: string): string {', '  return `${alpha}:${beta}`;', '}', '');
    writeFileSync(target, lines.join('\n'));
    const after = await files(root);
    const edited = after.find((f) => f.path === 'ts/chunker.ts') as SourceFile;

    const tok = counting();
    const r = await chunkFilesIndexed(after, tok, OPTS, new ChunkIndex(t.dir, ID));
    assert.deepEqual([r.fromIndex, r.chunked], [after.length - 1, 1]);
    const alone = counting();
    const want = chunkFile(edited, alone, OPTS);
    assert.equal(tok.calls, alone.calls, 'only the edited file went through the tokenizer');
    assert.deepEqual(r.chunks, fresh(after));
    assert.deepEqual(r.chunks.filter((c) => c.path === 'ts/chunker.ts'), want);
    // Chunks before the edit are unchanged, so only the changed ones miss the vector cache.
    const old = new Set(fresh(before).filter((c) => c.path === 'ts/chunker.ts').map((c) => c.hash));
    const kept = want.filter((c) => old.has(c.hash)).length;
    assert.ok(kept > 0 && kept < want.length, `${kept} of ${want.length} chunks unchanged`);

    const tok3 = counting();
    const third = await chunkFilesIndexed(after, tok3, OPTS, new ChunkIndex(t.dir, ID));
    assert.deepEqual([third.fromIndex, tok3.calls], [after.length, 0], 'the edited version is indexed too');
  } finally {
    t.cleanup();
  }
});

function flip(file: string, offset: number): void {
  const buf = readFileSync(file);
  buf[offset] ^= 0x5a;
  writeFileSync(file, buf);
}

const corruptions: [string, (file: string) => void, RegExp][] = [
  ['truncated token ids', (f) => truncateSync(f, statSync(f).size - 6), /size/],
  ['truncated header', (f) => truncateSync(f, 30), /truncated/],
  ['empty file', (f) => writeFileSync(f, ''), /truncated/],
  ['flipped token id byte', (f) => flip(f, statSync(f).size - 2), /checksum/],
  ['flipped line number', (f) => flip(f, 80), /checksum/],
  ['flipped chunk count', (f) => flip(f, 8), /size|checksum/],
  ['wrong version', (f) => flip(f, 4), /version/],
  ['not an entry at all', (f) => writeFileSync(f, Buffer.alloc(200, 7)), /bad magic/],
];

for (const [name, damage, why] of corruptions) {
  test(`a corrupt index entry (${name}) is logged, never served, and rebuilt`, { skip }, async () => {
    const t = tempDir('chunkidx-corrupt');
    try {
      const fs = await files(makeWorkspace(t.dir));
      const victim = fs.find((f) => f.path === 'ts/select.ts') as SourceFile;
      await chunkFilesIndexed(fs, counting(), OPTS, new ChunkIndex(t.dir, ID));
      const index = new ChunkIndex(t.dir, ID);
      const entry = index.entryPath(index.key(victim, OPTS));
      damage(entry);

      const logs: string[] = [];
      const tok = counting();
      const r = await chunkFilesIndexed(fs, tok, OPTS, new ChunkIndex(t.dir, ID, { log: (l) => logs.push(l) }));
      assert.equal(logs.length, 1, logs.join('\n'));
      assert.match(logs[0], /corrupt entry .* for ts\/select\.ts/);
      assert.match(logs[0], why);
      assert.deepEqual([r.fromIndex, r.chunked], [fs.length - 1, 1], 'only the damaged file is chunked again');
      const alone = counting();
      chunkFile(victim, alone, OPTS);
      assert.equal(tok.calls, alone.calls);
      assert.deepEqual(r.chunks, fresh(fs));
      // Rebuilt on disk: the next run serves it again.
      const tok2 = counting();
      const next = await chunkFilesIndexed(fs, tok2, OPTS, new ChunkIndex(t.dir, ID, { log: (l) => logs.push(l) }));
      assert.deepEqual([next.fromIndex, tok2.calls, logs.length], [fs.length, 0, 1]);
    } finally {
      t.cleanup();
    }
  });
}

test('an entry is only served for the text it was made from', { skip }, () => {
  const tok = fixtureTokenizer() as TextTokenizer;
  const f: SourceFile = { path: 'a.py', text: 'def f(x):\n    return x\n\n\nLIMIT = 10\n', startLine: 1, origin: 'workspace' };
  const index = new ChunkIndex('/unused', ID);
  const key = index.key(f, OPTS);
  const buf = encodeChunkEntry(key, f, chunkFile(f, tok, OPTS));
  assert.deepEqual(decodeChunkEntry(key, buf, f, OPTS), chunkFile(f, tok, OPTS));
  // Same length, other text: checksum and key are fine, the chunk hashes are not.
  assert.match(String(decodeChunkEntry(key, buf, { ...f, text: f.text.replace('LIMIT', 'LIMES') }, OPTS)), /hash mismatch/);
  assert.match(String(decodeChunkEntry(index.key({ ...f, path: 'b.py' }, OPTS), buf, f, OPTS)), /key mismatch/);
  assert.notEqual(index.key(f, OPTS), index.key({ ...f, startLine: 3 }, OPTS), 'a selection elsewhere in the file is another key');
  assert.notEqual(index.key(f, OPTS), index.key({ ...f, text: f.text + '\n' }, OPTS));
});

test('least recently used entries are evicted beyond the cap; reads count as use', { skip }, async () => {
  const t = tempDir('chunkidx-lru');
  try {
    const fs = (await files(makeWorkspace(t.dir))).filter((f) => f.path.startsWith('pkg/'));
    assert.equal(fs.length, 3);
    const index = new ChunkIndex(t.dir, ID);
    await chunkFilesIndexed(fs, counting(), OPTS, index);
    const sizes = fs.map((f) => statSync(index.entryPath(index.key(f, OPTS))).size);
    const base = Date.now() / 1000 - 1000;
    fs.forEach((f, i) => utimesSync(index.entryPath(index.key(f, OPTS)), base + i, base + i)); // oldest first
    const small = new ChunkIndex(t.dir, ID, { maxBytes: Math.ceil((sizes[0] + sizes[2]) / 0.9) });
    assert.ok(await small.get(fs[0], OPTS)); // the oldest becomes the newest
    const r = await small.evict();
    assert.equal(r.ran, true);
    assert.equal(r.removed, 1);
    assert.deepEqual(fs.map((f) => existsSync(index.entryPath(index.key(f, OPTS)))), [true, false, true]);
  } finally {
    t.cleanup();
  }
});

test('the identity is that of the tokenizer files; a tokenizer without a file gets no index', { skip }, async () => {
  const t = tempDir('chunkidx-id');
  try {
    const same = path.join(t.dir, 'same');
    const other = path.join(t.dir, 'other');
    mkdirSync(same);
    mkdirSync(other);
    const json = readFileSync(path.join(TINY_ARC, 'tokenizer.json'), 'utf8');
    writeFileSync(path.join(same, 'tokenizer.json'), json);
    writeFileSync(path.join(other, 'tokenizer.json'), JSON.stringify(JSON.parse(json))); // same vocabulary, other bytes
    const id = async (dir: string) => chunkIndexIdentity({ tokenizer: await loadTokenizer(path.join(dir, 'tokenizer.json')) });
    const a = await id(TINY_ARC);
    assert.match(String(a), /^[0-9a-f]{64}$/);
    assert.equal(await id(same), a);
    assert.notEqual(await id(other), a);
    writeFileSync(path.join(same, 'tokenizer_config.json'), '{"model_max_length": 64}');
    assert.notEqual(await id(same), a, 'tokenizer_config.json is part of it');
    assert.equal(await chunkIndexIdentity({ tokenizer: counting() }), null);
  } finally {
    t.cleanup();
  }
});

function runChild(dir: string, root: string, rounds: number, maxBytes: number): Promise<{ wrong: number; fromIndex: number; chunked: number; logs: string[] }> {
  return runTsChild('pipeline-chunkindex-child.ts', [dir, root, rounds, maxBytes, MAX_TOKENS]);
}

test('three processes chunking, reading and evicting one index never see a bad entry', { skip, timeout: 180_000 }, async () => {
  const t = tempDir('chunkidx-concurrent');
  try {
    const root = makeWorkspace(t.dir);
    const fs = await files(root);
    // Cap at about half of the full index so that eviction keeps running while others read and write.
    const probe = new ChunkIndex(path.join(t.dir, 'probe'), CHILD_IDENTITY);
    await chunkFilesIndexed(fs, counting(), OPTS, probe);
    const full = (await probe.listEntries()).reduce((s, e) => s + e.size, 0);
    const results = await Promise.all([0, 1, 2].map(() => runChild(t.dir, root, 6, Math.floor(full / 2))));
    for (const r of results) {
      assert.equal(r.wrong, 0, 'a round gave chunks that differ from a fresh chunking');
      assert.deepEqual(r.logs.filter((l) => /corrupt|could not store|cannot read/.test(l)), [], 'no corrupt entries or failed writes');
    }
    assert.ok(results.reduce((s, r) => s + r.fromIndex, 0) > 0, 'processes served files from the shared index');
    assert.ok(results.reduce((s, r) => s + r.chunked, 0) > fs.length, 'eviction made them chunk again');
    // Everything left on disk verifies and equals a fresh chunking.
    const logs: string[] = [];
    const index = new ChunkIndex(t.dir, CHILD_IDENTITY, { log: (l) => logs.push(l) });
    for (const f of fs) {
      const got = await index.get(f, OPTS);
      if (got) assert.deepEqual(got, chunkFile(f, fixtureTokenizer() as TextTokenizer, OPTS));
    }
    assert.deepEqual(logs, []);
  } finally {
    t.cleanup();
  }
});

/** The CLI in a new process: nothing of this process's chunk memo is shared. */
function cliProcess(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return runTs(path.join(REPO, 'src/cli.ts'), args);
}

test('CLI: a second compress process takes every file from the index; --no-cache bypasses it', { skip, timeout: 180_000 }, async () => {
  const t = tempDir('chunkidx-cli');
  try {
    const root = makeWorkspace(t.dir);
    // A first run finds nothing in the cache only while the tree is one compress slice (1024
    // chunks): a chunk that repeats one of an earlier slice is a cache hit. The copied sources
    // grow with the project, so one of them stays out (the check below says when that is not enough).
    rmSync(path.join(root, 'ts', 'cache.ts'));
    const cache = path.join(t.dir, 'cache');
    const args = ['compress', '--root', root, '--model', TINY_ARC, '--provider', 'cpu', '--json'];
    const runs = [];
    for (let i = 0; i < 2; i++) {
      const r = await cliProcess([...args, '--cache', cache]);
      assert.equal(r.code, 0, r.err);
      runs.push(JSON.parse(r.out) as Record<string, number>);
    }
    const [a, b] = runs;
    assert.ok(a.chunks <= 1024, `${a.chunks} chunks: more than one compress slice; copy fewer sources into this workspace`);
    assert.deepEqual([a.filesFromIndex, a.cacheHits], [0, 0]);
    assert.deepEqual([b.filesFromIndex, b.cacheHits, b.encoded], [b.files, b.chunks, 0]);
    assert.deepEqual([b.chunks, b.sourceTokens, b.vectors], [a.chunks, a.sourceTokens, a.vectors], 'same chunks with and without the index');
    const off = await cliProcess([...args, '--no-cache']);
    const c = JSON.parse(off.out) as Record<string, number>;
    assert.deepEqual([c.filesFromIndex, c.cacheHits, c.chunks, c.sourceTokens], [0, 0, a.chunks, a.sourceTokens]);
  } finally {
    t.cleanup();
  }
});
