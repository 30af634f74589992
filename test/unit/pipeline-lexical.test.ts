// The persistent lexical index on a real disk with the tiny-arc tokenizer and real files: its
// BM25 equals MiniSearch's over the same chunks, unchanged files are served without tokenizing,
// edits re-index one file, damaged entries are rebuilt, and several processes share one folder.
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import type { TextTokenizer } from '../../src/core/api';
import { chunkFile, hashText, type ChunkOptions } from '../../src/core/context/chunker';
import { ChunkIndex } from '../../src/core/context/chunkIndex';
import { bm25Scores, bodyOf, buildLexicon, clearLexiconMemo, decodeLexiconEntry, encodeLexiconEntry, LexicalIndex, lexiconsFor } from '../../src/core/context/lexicalIndex';
import { bm25Normalized } from '../../src/core/context/select';
import { collectSources, type SourceFile } from '../../src/core/context/sources';
import { loadTokenizer } from '../../src/core/tokenizer';
import { LEXICAL_QUESTION } from './pipeline-lexical-child';
import { TINY_ARC, fixtureTokenizer, hasTinyArc, runTsChild, tempDir } from './pipeline-helpers';

const REPO = path.resolve(__dirname, '../..');
const skip = hasTinyArc() ? false : 'test/fixtures/tiny-arc is missing (made by tools/make_fixtures.py)';
const MAX_TOKENS = (JSON.parse(readFileSync(path.join(TINY_ARC, 'arc-model.json'), 'utf8')) as { encoder: { maxChunkTokens: number } }).encoder.maxChunkTokens;
const OPTS: ChunkOptions = { maxTokens: MAX_TOKENS, header: '### {path}\n' };
const ID = 'tiny-arc-tokenizer';
const QUESTIONS = [
  LEXICAL_QUESTION,
  'Which file defines `chunkFile`?',
  'how is the header rendered for a path',
  'def main(): return LIMIT',
  'zzz_not_in_any_file',
  '',
];

function counting(): TextTokenizer & { calls: number } {
  const base = fixtureTokenizer() as TextTokenizer;
  const tok = { calls: 0, encode: (t: string) => (tok.calls++, base.encode(t)), decode: (ids: number[]) => base.decode(ids) };
  return tok;
}

/** The Python fixture workspace and all of src/core/context. */
function makeWorkspace(dir: string): string {
  const root = path.join(dir, 'ws');
  cpSync(path.join(REPO, 'test/fixtures/workspace-py'), root, { recursive: true });
  mkdirSync(path.join(root, 'ts'));
  cpSync(path.join(REPO, 'src/core/context'), path.join(root, 'ts'), { recursive: true });
  return root;
}

async function files(root: string): Promise<SourceFile[]> {
  return (await collectSources({ roots: [root] })).files;
}

test('BM25 from the index equals MiniSearch over the same chunks, bit for bit', { skip }, async () => {
  const t = tempDir('lex-score');
  try {
    const fs = await files(makeWorkspace(t.dir));
    const tok = fixtureTokenizer() as TextTokenizer;
    const chunks = fs.flatMap((f) => chunkFile(f, tok, OPTS));
    assert.ok(chunks.length > 200, `${chunks.length} chunks`);
    const r = await lexiconsFor(fs, tok, OPTS, null, new LexicalIndex(t.dir, ID));
    // The metadata rebuilds each chunk's range, body, token count and hash.
    const metas = r.files.flatMap((lf, k) => lf.lexicon.chunks.map((m) => ({ m, f: fs[k] })));
    assert.deepEqual(
      metas.map(({ m, f }) => [f.path, m.startLine, m.endLine, bodyOf(f, m), m.tokens, m.hash]),
      chunks.map((c) => [c.path, c.startLine, c.endLine, c.body, c.tokenIds.length, c.hash]),
    );
    for (const q of QUESTIONS) assert.deepEqual(Array.from(bm25Scores(r.files, q)), bm25Normalized(chunks, q), q);
  } finally {
    t.cleanup();
  }
});

test('a later process reads unchanged files from the index without tokenizing; an edit re-indexes one file', { skip }, async () => {
  const t = tempDir('lex-incr');
  try {
    const root = makeWorkspace(t.dir);
    const fs = await files(root);
    clearLexiconMemo();
    const first = await lexiconsFor(fs, counting(), OPTS, new ChunkIndex(t.dir, ID), new LexicalIndex(t.dir, ID));
    assert.deepEqual([first.fromIndex, first.indexed], [0, fs.length]);
    assert.equal((await new LexicalIndex(t.dir, ID).listEntries()).length, fs.length);

    clearLexiconMemo(); // as a new process
    const tok = counting();
    const logs: string[] = [];
    const again = await lexiconsFor(fs, tok, OPTS, new ChunkIndex(t.dir, ID), new LexicalIndex(t.dir, ID, { log: (l) => logs.push(l) }));
    assert.deepEqual([again.fromIndex, again.indexed, tok.calls, logs.length], [fs.length, 0, 0, 0]);
    assert.deepEqual(again.files, first.files);

    const target = path.join(root, 'ts/chunker.ts');
    writeFileSync(target, readFileSync(target, 'utf8').replace('export function hashText', 'export function evictAllTheThings(): void {}\n\nexport function hashText'));
    const after = await files(root);
    clearLexiconMemo();
    const edited = await lexiconsFor(after, counting(), OPTS, new ChunkIndex(t.dir, ID), new LexicalIndex(t.dir, ID));
    assert.deepEqual([edited.fromIndex, edited.indexed], [after.length - 1, 1]);
    const chunks = after.flatMap((f) => chunkFile(f, fixtureTokenizer() as TextTokenizer, OPTS));
    for (const q of QUESTIONS) assert.deepEqual(Array.from(bm25Scores(edited.files, q)), bm25Normalized(chunks, q), q);
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
  ['truncated payload', (f) => truncateSync(f, statSync(f).size - 6), /size/],
  ['truncated header', (f) => truncateSync(f, 30), /truncated/],
  ['flipped payload byte', (f) => flip(f, statSync(f).size - 3), /checksum/],
  ['wrong version', (f) => flip(f, 4), /version/],
  ['not an entry at all', (f) => writeFileSync(f, Buffer.alloc(200, 7)), /bad magic/],
];

for (const [name, damage, why] of corruptions) {
  test(`a corrupt lexical entry (${name}) is logged, never served, and rebuilt`, { skip }, async () => {
    const t = tempDir('lex-corrupt');
    try {
      const fs = await files(makeWorkspace(t.dir));
      const victim = fs.find((f) => f.path === 'ts/select.ts') as SourceFile;
      clearLexiconMemo();
      const clean = await lexiconsFor(fs, counting(), OPTS, null, new LexicalIndex(t.dir, ID));
      const index = new LexicalIndex(t.dir, ID);
      damage(index.entryPath(index.key(victim, OPTS, hashText(victim.text))));
      clearLexiconMemo();
      const logs: string[] = [];
      const r = await lexiconsFor(fs, counting(), OPTS, null, new LexicalIndex(t.dir, ID, { log: (l) => logs.push(l) }));
      assert.equal(logs.length, 1, logs.join('\n'));
      assert.match(logs[0], /corrupt entry .* for ts\/select\.ts/);
      assert.match(logs[0], why);
      assert.deepEqual([r.fromIndex, r.indexed], [fs.length - 1, 1]);
      assert.deepEqual(r.files, clean.files);
      clearLexiconMemo();
      const next = await lexiconsFor(fs, counting(), OPTS, null, new LexicalIndex(t.dir, ID, { log: (l) => logs.push(l) }));
      assert.deepEqual([next.fromIndex, logs.length], [fs.length, 1]);
    } finally {
      t.cleanup();
    }
  });
}

test('three processes share one index folder (with eviction) and always score like MiniSearch', { skip }, async () => {
  const t = tempDir('lex-conc');
  try {
    const root = makeWorkspace(t.dir);
    // A small cap so that the processes evict each other's entries while they read them.
    const runs = await Promise.all(
      [0, 1, 2].map(() => runTsChild<{ wrong: number; fromIndex: number; indexed: number; logs: string[] }>('pipeline-lexical-child.ts', [t.dir, root, 4, 60_000, MAX_TOKENS])),
    );
    for (const r of runs) {
      assert.equal(r.wrong, 0, 'every round scored like a fresh MiniSearch index');
      assert.ok(!r.logs.some((l) => /corrupt/.test(l)), r.logs.join('\n'));
    }
    assert.ok(runs.reduce((n, r) => n + r.fromIndex, 0) > 0, 'entries were shared');
  } finally {
    t.cleanup();
  }
});

test('an entry with a valid checksum whose postings point past its chunks (a writer bug, not bit rot) is refused, and a good one round-trips', { skip }, async () => {
  const [f] = await files(path.join(REPO, 'test/fixtures/workspace-py'));
  const lex = buildLexicon(f, chunkFile(f, fixtureTokenizer() as TextTokenizer, OPTS));
  const key = 'ab'.repeat(32);
  const back = decodeLexiconEntry(key, encodeLexiconEntry(key, lex), f);
  assert.deepEqual(back, lex);
  const bad = { ...lex, postings: lex.postings.slice() };
  bad.postings[0] = lex.chunks.length; // chunk index one past the last
  assert.equal(decodeLexiconEntry(key, encodeLexiconEntry(key, bad), f), 'malformed postings');
  const odd = { ...lex, postOff: lex.postOff.slice(), postings: lex.postings.slice(1) };
  odd.postOff[1] = lex.postOff[1] - 1; // first term's list loses its first number: (count, chunk) pairs out of step
  for (let i = 2; i < odd.postOff.length; i++) odd.postOff[i] = lex.postOff[i] - 1;
  assert.equal(decodeLexiconEntry(key, encodeLexiconEntry(key, odd), f), 'malformed postings');
});

test('a large text to index is tokenized by a worker thread: the same lexicons and entries as on this thread; the chunk index is left to compression', { skip }, async () => {
  const t = tempDir('lex-worker');
  try {
    const fs = await files(makeWorkspace(t.dir));
    // Loaded from its file, as a model's: a worker can load it too.
    const tok = await loadTokenizer(path.join(TINY_ARC, 'tokenizer.json'));
    let calls = 0;
    const encode = tok.encode.bind(tok);
    tok.encode = (text: string) => (calls++, encode(text));
    clearLexiconMemo(); // as a new process: earlier tests indexed the same files
    const here = await lexiconsFor(fs, tok, OPTS, new ChunkIndex(path.join(t.dir, 'a'), ID), new LexicalIndex(path.join(t.dir, 'a'), ID), undefined, Infinity);
    assert.ok(calls >= fs.length, 'tokenized on this thread');
    calls = 0;
    clearLexiconMemo();
    const chunkIndex = new ChunkIndex(path.join(t.dir, 'b'), ID);
    const lexical = new LexicalIndex(path.join(t.dir, 'b'), ID);
    const worker = await lexiconsFor(fs, tok, OPTS, chunkIndex, lexical, undefined, 0);
    assert.equal(worker.indexed, fs.length);
    assert.equal(calls, 0, 'no file tokenized on this thread');
    assert.deepEqual(worker.files, here.files);
    for (const f of fs) assert.equal(await chunkIndex.get(f, OPTS), null, `no chunk index entry for ${f.path}`);
    clearLexiconMemo(); // as a new process: every file from the entries just written
    const again = await lexiconsFor(fs, tok, OPTS, chunkIndex, lexical, undefined, 0);
    assert.equal(again.fromIndex, fs.length);
    assert.deepEqual(again.files, here.files);
  } finally {
    t.cleanup();
  }
});
