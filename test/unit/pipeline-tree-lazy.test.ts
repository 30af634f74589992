// The tree index's lazy postings (treeIndex.ts, format v4): a stored tree is loaded from its head
// alone and reads the postings blocks of the terms asked for, each verified once; it scores and
// answers term look-ups exactly as the tree built in memory; a damaged postings block throws
// TreeIndexCorrupt when (and only when) it is read, and the entry is deleted; a damaged head, a
// truncated or a lengthened entry is rejected at load; an entry replaced (or removed) by another
// process after the load is never taken for a corrupt one and never deleted.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import type { TextTokenizer } from '../../src/core/api';
import { writeStoreEntry } from '../../src/core/context/cache';
import { chunkFile, hashText, type ChunkOptions } from '../../src/core/context/chunker';
import { buildLexicon } from '../../src/core/context/lexicalIndex';
import { collectSources, type SourceFile } from '../../src/core/context/sources';
import {
  buildTreeIndex,
  chunksWithPrefix,
  chunksWithTerm,
  clearTreeMemo,
  decodeTreeIndex,
  encodeTreeIndex,
  encodeTreeIndexParts,
  type LazyPostings,
  loadTree,
  loadTreeIndex,
  POSTINGS_BLOCK_BYTES,
  treeBm25,
  treeEntryPath,
  TreeIndexCorrupt,
  type TreeIndexData,
  type TreeSource,
} from '../../src/core/context/treeIndex';
import { fixtureTokenizer, hasTinyArc, runTs, TINY_ARC, tempDir } from './pipeline-helpers';

const REPO = path.resolve(__dirname, '../..');
const skip = hasTinyArc() ? false : 'test/fixtures/tiny-arc is missing (made by tools/make_fixtures.py)';
const MAX_TOKENS = skip ? 0 : (JSON.parse(readFileSync(path.join(TINY_ARC, 'arc-model.json'), 'utf8')) as { encoder: { maxChunkTokens: number } }).encoder.maxChunkTokens;
const OPTS: ChunkOptions = { maxTokens: MAX_TOKENS, header: '### {path}\n' };
const QUESTIONS = ['Which function evicts the least recently used cache entries?', 'Which file defines `chunkFile`?', 'how is the header rendered for a path', 'cache cache key', 'zzz_not_in_any_file', ''];
const KEY = 'cd'.repeat(32);
/** Small blocks, so that the fixture's postings span many. */
const BLOCK = 1024;

const stampOf = (f: SourceFile) => f.stamp ?? { size: 0, mtimeMs: 0, ctimeMs: 0, ino: 0 };

let files: SourceFile[];
let sources: TreeSource[];
let tree: TreeIndexData;

before(async () => {
  if (skip) return;
  const tok = fixtureTokenizer() as TextTokenizer;
  files = (await collectSources({ roots: [path.join(REPO, 'src/core/context'), path.join(REPO, 'test/fixtures/workspace-py')] })).files;
  sources = files.map((f) => ({ path: f.path, stamp: stampOf(f), textHash: hashText(f.text), lexicon: buildLexicon(f, chunkFile(f, tok, OPTS)) }));
  tree = buildTreeIndex(sources, 1_700_000_000_000);
});

const termAt = (t: TreeIndexData, j: number) => t.termBlob.toString('latin1', t.termOff[j], t.termOff[j + 1]);
const nTerms = (t: TreeIndexData) => t.termOff.length - 1;
const blockOf = (u32At: number, block = BLOCK) => Math.floor((u32At * 4) / block);

/** Terms whose postings lie in one block, by block. */
function termsInOneBlock(t: TreeIndexData): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (let j = 0; j < nTerms(t); j++) {
    const b = blockOf(t.postOff[j]);
    if (t.postOff[j + 1] > t.postOff[j] && blockOf(t.postOff[j + 1] - 1) === b) out.set(b, [...(out.get(b) ?? []), j]);
  }
  return out;
}

async function store(cache: string, t: TreeIndexData, block = BLOCK): Promise<string> {
  const file = treeEntryPath(cache, KEY);
  await writeStoreEntry(file, encodeTreeIndexParts(KEY, t, block));
  return file;
}

/** Where the body postings start in an entry. */
const bodyAt = (file: string, t: TreeIndexData) => statSync(file).size - t.postOff[nTerms(t)] * 4;

function flip(file: string, at: number): void {
  const b = readFileSync(file);
  b[at] ^= 0x5a;
  writeFileSync(file, b);
}

function catchCorrupt(f: () => unknown): TreeIndexCorrupt {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof TreeIndexCorrupt, String(e));
    return e;
  }
  assert.fail(`expected TreeIndexCorrupt from ${String(f)}`);
}

test('a stored tree is loaded from its head alone; the postings of the terms asked for are read on demand and score exactly as the tree built in memory', { skip }, async () => {
  const t = tempDir('tree-lazy');
  try {
    const cache = path.join(t.dir, 'cache');
    for (const block of [BLOCK, POSTINGS_BLOCK_BYTES]) {
      await store(cache, tree, block);
      const logs: string[] = [];
      const lazy = (await loadTreeIndex(cache, KEY, (l) => logs.push(l))) as TreeIndexData;
      const lp = lazy.lazy as LazyPostings;
      assert.ok(lp, 'a lazy tree');
      assert.equal(lp.readBytes, 0, 'no postings read at load');
      assert.equal(lazy.postings.length, 0, 'no postings in hand');
      assert.deepEqual([lazy.files, Buffer.from(lazy.chunks.buffer, lazy.chunks.byteOffset, lazy.chunks.byteLength), lazy.hashes], [tree.files, Buffer.from(tree.chunks.buffer, tree.chunks.byteOffset, tree.chunks.byteLength), tree.hashes]);
      const blocks = Math.ceil((tree.postings.length * 4) / block);
      if (block === BLOCK) assert.ok(blocks > 50, `${blocks} blocks`);
      assert.deepEqual(Array.from(treeBm25(lazy, QUESTIONS[0])), Array.from(treeBm25(tree, QUESTIONS[0])));
      if (block === BLOCK) assert.ok(lp.readBlocks > 0 && lp.readBlocks < blocks / 2, `one question read ${lp.readBlocks} of ${blocks} blocks`);
      for (const q of QUESTIONS) assert.deepEqual(Array.from(treeBm25(lazy, q)), Array.from(treeBm25(tree, q)), q);
      for (let j = 0; j < nTerms(tree); j += 3) assert.deepEqual(chunksWithTerm(lazy, termAt(tree, j)), chunksWithTerm(tree, termAt(tree, j)), termAt(tree, j));
      // Prefixes: the chunks of every term that starts with it (the term itself included).
      const all = Array.from({ length: nTerms(tree) }, (_, j) => termAt(tree, j));
      for (const p of ['c', 'ch', 'chunk', 'e', 'zz', 'x', '_', '$', 'ev', termAt(tree, 0), termAt(tree, nTerms(tree) - 1), ...all.filter((_, j) => j % 97 === 5)]) {
        const want = [...new Set(all.filter((w) => w.startsWith(p)).flatMap((w) => chunksWithTerm(tree, w)))].sort((a, b) => a - b);
        assert.deepEqual(chunksWithPrefix(tree, p), want, p);
        assert.deepEqual(chunksWithPrefix(lazy, p), want, p);
      }
      // Stored again (every block read now): the same bytes.
      assert.ok(encodeTreeIndex(KEY, lazy, block).equals(encodeTreeIndex(KEY, tree, block)));
      assert.equal(lp.readBlocks, blocks, 'each block read and verified once');
      assert.equal(lp.readBytes, tree.postings.length * 4);
      assert.equal(lazy.lazy, undefined, 'all read: held as one array, as a built tree');
      assert.deepEqual(lazy.postings, tree.postings);
      // A newer tree merged from a freshly loaded one (its postings read in full) equals one merged from the tree in memory.
      const fresh = (await loadTreeIndex(cache, KEY, (l) => logs.push(l))) as TreeIndexData;
      const merged = (from: TreeIndexData) => buildTreeIndex(sources.map((s, k) => (k % 3 === 0 ? s : { path: s.path, stamp: s.stamp, textHash: s.textHash, from, fileIdx: k })).filter((_, k) => k % 7 !== 1), 1_700_000_000_001);
      assert.ok(encodeTreeIndex(KEY, merged(fresh)).equals(encodeTreeIndex(KEY, merged(tree))));
      assert.deepEqual(logs, []);
    }
    // The whole-entry decoder verifies every block.
    const whole = decodeTreeIndex(KEY, readFileSync(treeEntryPath(cache, KEY)));
    assert.ok(typeof whole !== 'string', String(whole));
    for (const q of QUESTIONS) assert.deepEqual(Array.from(treeBm25(whole, q)), Array.from(treeBm25(tree, q)), q);
  } finally {
    t.cleanup();
  }
});

test('a flipped byte in a postings block: other blocks read fine; reading a term of that block throws TreeIndexCorrupt, the entry is deleted and the tree leaves the memo', { skip }, async () => {
  const t = tempDir('tree-lazy-bad');
  try {
    const cache = path.join(t.dir, 'cache');
    const file = await store(cache, tree);
    const byBlock = termsInOneBlock(tree);
    const blocks = [...byBlock.keys()].sort((a, b) => a - b);
    const bad = blocks[Math.floor(blocks.length / 2)];
    const good = blocks.filter((b) => Math.abs(b - bad) >= 2);
    const badTerm = (byBlock.get(bad) as number[])[0];
    flip(file, bodyAt(file, tree) + tree.postOff[badTerm] * 4 + 1);
    const logs: string[] = [];
    clearTreeMemo();
    const lazy = (await loadTree(cache, KEY, (l) => logs.push(l))) as TreeIndexData;
    assert.ok(lazy, 'the head verifies: loaded');
    for (const b of [good[0], good[good.length - 1]]) {
      const j = (byBlock.get(b) as number[])[0];
      assert.deepEqual(chunksWithTerm(lazy, termAt(tree, j)), chunksWithTerm(tree, termAt(tree, j)), `block ${b}`);
      assert.deepEqual(Array.from(treeBm25(lazy, termAt(tree, j))), Array.from(treeBm25(tree, termAt(tree, j))));
    }
    assert.equal(logs.length, 0);
    assert.equal(await loadTree(cache, KEY, () => {}), lazy, 'remembered');
    const e = catchCorrupt(() => treeBm25(lazy, `where is ${termAt(tree, badTerm)} used`));
    assert.equal(e.deleted, true);
    assert.equal(e.file, file);
    assert.match(e.reason, new RegExp(`postings block ${bad} checksum mismatch`));
    assert.ok(!existsSync(file), 'entry deleted');
    assert.ok(logs.some((l) => /tree index: corrupt entry .*deleted, will rebuild/.test(l)), logs.join('\n'));
    // Again: the same error, without reading; blocks read before still serve.
    assert.equal(catchCorrupt(() => chunksWithTerm(lazy, termAt(tree, badTerm))), e);
    const j = (byBlock.get(good[0]) as number[])[0];
    assert.deepEqual(chunksWithTerm(lazy, termAt(tree, j)), chunksWithTerm(tree, termAt(tree, j)));
    // Dropped from the memo: the next question finds no tree (and rebuilds it).
    assert.equal(await loadTree(cache, KEY, () => {}), null);
    // The same through a prefix look-up, and through a merge into a newer tree.
    for (const read of [(x: TreeIndexData) => chunksWithPrefix(x, termAt(tree, badTerm)), (x: TreeIndexData) => buildTreeIndex([{ path: 'a', stamp: sources[0].stamp, textHash: sources[0].textHash, from: x, fileIdx: 0 }], 1)]) {
      const again = await store(cache, tree);
      flip(again, bodyAt(again, tree) + tree.postOff[badTerm] * 4 + 1);
      const l2 = (await loadTreeIndex(cache, KEY, () => {})) as TreeIndexData;
      assert.equal(catchCorrupt(() => read(l2)).deleted, true);
      assert.ok(!existsSync(again));
    }
  } finally {
    t.cleanup();
  }
});

test('a damaged head, a truncated or a lengthened entry is rejected at load, logged and deleted', { skip }, async () => {
  const t = tempDir('tree-lazy-head');
  try {
    const cache = path.join(t.dir, 'cache');
    const headEnd = (f: string) => 80 + readFileSync(f).readUInt32LE(8);
    const damage: [string, (f: string) => void][] = [
      ['files JSON', (f) => flip(f, 90)],
      ['block hashes', (f) => flip(f, headEnd(f) - tree.termBlob.length - tree.pathTermBlob.length - 40)],
      ['last head byte', (f) => flip(f, headEnd(f) - 1)],
      ['header', (f) => flip(f, 20)],
      ['truncated in the body', (f) => truncateSync(f, statSync(f).size - 4)],
      ['truncated to the head', (f) => truncateSync(f, headEnd(f))],
      ['truncated in the head', (f) => truncateSync(f, headEnd(f) - 100)],
      ['truncated in the header', (f) => truncateSync(f, 50)],
      ['lengthened', (f) => writeFileSync(f, Buffer.concat([readFileSync(f), Buffer.alloc(4)]))],
      ['not an index', (f) => writeFileSync(f, 'not an index')],
    ];
    for (const [what, hurt] of damage) {
      const file = await store(cache, tree);
      hurt(file);
      const logs: string[] = [];
      clearTreeMemo();
      assert.equal(await loadTree(cache, KEY, (l) => logs.push(l)), null, what);
      assert.ok(logs.some((l) => /tree index: corrupt entry .*deleted, will rebuild/.test(l)), `${what}: ${logs.join('\n')}`);
      assert.ok(!existsSync(file), `${what}: deleted`);
    }
  } finally {
    t.cleanup();
  }
});

test('another process replaces or removes the entry after the load: TreeIndexCorrupt (not deleted) on a later read, and the new entry is left alone', { skip, timeout: 120_000 }, async () => {
  const t = tempDir('tree-lazy-race');
  try {
    const cache = path.join(t.dir, 'cache');
    const child = path.join(__dirname, 'pipeline-tree-child.ts');
    const byBlock = termsInOneBlock(tree);
    const blocks = [...byBlock.keys()].sort((a, b) => a - b);
    const [first, second] = [(byBlock.get(blocks[0]) as number[])[0], (byBlock.get(blocks[blocks.length - 1]) as number[])[0]];
    // Another tree (fewer files, another time), written by another process over the entry.
    const other = buildTreeIndex(sources.slice(0, Math.ceil(sources.length / 2)), 1_700_000_000_002);
    const otherBytes = encodeTreeIndex(KEY, other, BLOCK);
    const otherFile = path.join(t.dir, 'other.arct');
    writeFileSync(otherFile, otherBytes);
    // A corrupt one, too: reading a tree must not delete a newer entry even when that one is bad
    // (its own load will tell).
    const otherBad = Buffer.from(otherBytes);
    otherBad[otherBad.length - 2] ^= 0xff;
    const otherBadFile = path.join(t.dir, 'other-bad.arct');
    writeFileSync(otherBadFile, otherBad);
    for (const [what, bytes, from] of [['good', otherBytes, otherFile], ['bad', otherBad, otherBadFile]] as const) {
      const file = await store(cache, tree);
      const logs: string[] = [];
      clearTreeMemo();
      const lazy = (await loadTree(cache, KEY, (l) => logs.push(l))) as TreeIndexData;
      assert.deepEqual(chunksWithTerm(lazy, termAt(tree, first)), chunksWithTerm(tree, termAt(tree, first)));
      const r = await runTs(child, ['replace-entry', from, file]);
      assert.equal(r.code, 0, r.err);
      // Blocks already read still serve; the others are gone with the old entry.
      assert.deepEqual(chunksWithTerm(lazy, termAt(tree, first)), chunksWithTerm(tree, termAt(tree, first)));
      const e = catchCorrupt(() => treeBm25(lazy, termAt(tree, second)));
      assert.equal(e.deleted, false, what);
      assert.match(e.reason, /replaced/);
      assert.ok(readFileSync(file).equals(bytes), `${what}: the new entry is left as written`);
      assert.ok(!logs.some((l) => /corrupt entry/.test(l)), logs.join('\n'));
      // Dropped from the memo: the next question loads the new entry.
      const next = await loadTree(cache, KEY, () => {});
      assert.notEqual(next, lazy);
      if (what === 'good') {
        assert.ok(next);
        assert.deepEqual(Array.from(treeBm25(next, QUESTIONS[0])), Array.from(treeBm25(other, QUESTIONS[0])));
      }
    }
    // The same tree written again (a new file with the same bytes): reads go on.
    {
      const file = await store(cache, tree);
      clearTreeMemo();
      const lazy = (await loadTree(cache, KEY, () => {})) as TreeIndexData;
      const sameFile = path.join(t.dir, 'same.arct');
      writeFileSync(sameFile, readFileSync(file));
      const ino = statSync(file).ino;
      assert.equal((await runTs(child, ['replace-entry', sameFile, file])).code, 0);
      assert.notEqual(statSync(file).ino, ino, 'a new file');
      for (const q of QUESTIONS) assert.deepEqual(Array.from(treeBm25(lazy, q)), Array.from(treeBm25(tree, q)), q);
    }
    // Removed: not found is not corruption either.
    {
      const file = await store(cache, tree);
      clearTreeMemo();
      const lazy = (await loadTree(cache, KEY, () => {})) as TreeIndexData;
      rmSync(file);
      const e = catchCorrupt(() => chunksWithTerm(lazy, termAt(tree, second)));
      assert.equal(e.deleted, false);
      assert.match(e.reason, /removed/);
    }
  } finally {
    t.cleanup();
  }
});
