// The tree snapshot and inverted index (treeIndex.ts): its BM25 equals bm25Scores and MiniSearch
// bit for bit (fresh, stored and reloaded, and rebuilt from an older tree after edits); a warm
// question reads no unchanged file; edits that keep the size and the mtime, deletes, renames and
// racily clean files are noticed (answers equal a clean run's); a damaged entry is rebuilt; several
// processes share one cache folder.
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import type { ArcModel, TextTokenizer } from '../../src/core/api';
import { ask, boostCandidates } from '../../src/core/ask';
import { chunkFile, hashText, type ChunkOptions } from '../../src/core/context/chunker';
import { bm25Scores, clearLexiconMemo, LexicalIndex, lexiconsFor } from '../../src/core/context/lexicalIndex';
import { bm25Normalized, boostScores } from '../../src/core/context/select';
import { collectSources, type SourceFile } from '../../src/core/context/sources';
import { buildTreeIndex, decodeTreeIndex, encodeTreeIndex, RACY_MS, TREE_INDEX_FORMAT_VERSION, treeBm25, unchangedSince, type TreeSource } from '../../src/core/context/treeIndex';
import { TreeWatch } from '../../src/core/context/treeWatch';
import type { AskEvent, AskRequest } from '../../src/core/types';
import { LEXICAL_QUESTION } from './pipeline-lexical-child';
import { fixtureTokenizer, hasTinyArc, runTs, TINY_ARC, tempDir, useTinyArc } from './pipeline-helpers';

const REPO = path.resolve(__dirname, '../..');
const skip = hasTinyArc() ? false : 'test/fixtures/tiny-arc is missing (made by tools/make_fixtures.py)';
const MAX_TOKENS = (JSON.parse(readFileSync(path.join(TINY_ARC, 'arc-model.json'), 'utf8')) as { encoder: { maxChunkTokens: number } }).encoder.maxChunkTokens;
const OPTS: ChunkOptions = { maxTokens: MAX_TOKENS, header: '### {path}\n' };
const QUESTIONS = [LEXICAL_QUESTION, 'Which file defines `chunkFile`?', 'how is the header rendered for a path', 'def main(): return LIMIT', 'zzz_not_in_any_file', 'cache cache key', ''];
const KEY = 'ab'.repeat(32);

function makeWorkspace(dir: string): string {
  const root = path.join(dir, 'ws');
  cpSync(path.join(REPO, 'test/fixtures/workspace-py'), root, { recursive: true });
  mkdirSync(path.join(root, 'ts'));
  cpSync(path.join(REPO, 'src/core/context'), path.join(root, 'ts'), { recursive: true });
  return root;
}

const stampOf = (f: SourceFile) => f.stamp ?? { size: 0, mtimeMs: 0, ctimeMs: 0, ino: 0 };

test('tree BM25 equals bm25Scores and MiniSearch bit for bit: built, stored and reloaded, and rebuilt from an older tree', { skip }, async () => {
  const t = tempDir('tree-score');
  try {
    const root = makeWorkspace(t.dir);
    const tok = fixtureTokenizer() as TextTokenizer;
    const fs1 = (await collectSources({ roots: [root] })).files;
    const r1 = await lexiconsFor(fs1, tok, OPTS, null, new LexicalIndex(t.dir, 'id'));
    const src1: TreeSource[] = fs1.map((f, k) => ({ path: f.path, stamp: stampOf(f), textHash: hashText(f.text), lexicon: r1.files[k].lexicon }));
    const tree1 = buildTreeIndex(src1, Date.now());
    const back = decodeTreeIndex(KEY, encodeTreeIndex(KEY, tree1));
    assert.ok(typeof back !== 'string', String(back));
    const chunks1 = fs1.flatMap((f) => chunkFile(f, tok, OPTS));
    for (const q of QUESTIONS) {
      const want = bm25Normalized(chunks1, q);
      assert.deepEqual(Array.from(treeBm25(tree1, q)), want, q);
      assert.deepEqual(Array.from(treeBm25(back, q)), want, `${q} (reloaded)`);
      assert.deepEqual(Array.from(treeBm25(tree1, q)), Array.from(bm25Scores(r1.files, q)), q);
    }
    // Edit one file, delete one, add one: a tree made of the old tree's unchanged files plus
    // the changed ones scores like a fresh build.
    const edited = fs1.find((f) => f.path.endsWith('cache.ts')) as SourceFile;
    writeFileSync(path.join(root, edited.path), `${edited.text}\nexport const addedForTest = 'cache eviction';\n`);
    rmSync(path.join(root, fs1.find((f) => f.path.endsWith('select.ts'))!.path));
    writeFileSync(path.join(root, 'ts', 'zz_new.ts'), 'export function evictLeastRecentlyUsed() { return cache; }\n');
    const fs2 = (await collectSources({ roots: [root] })).files;
    const oldAt = new Map(fs1.map((f, k) => [f.path, k]));
    const r2 = await lexiconsFor(fs2, tok, OPTS, null, new LexicalIndex(t.dir, 'id'));
    const src2: TreeSource[] = fs2.map((f, k) => {
      const i = oldAt.get(f.path);
      return i !== undefined && fs1[i].text === f.text
        ? { path: f.path, stamp: stampOf(f), textHash: hashText(f.text), from: back, fileIdx: i }
        : { path: f.path, stamp: stampOf(f), textHash: hashText(f.text), lexicon: r2.files[k].lexicon };
    });
    assert.ok(src2.filter((s) => 'from' in s).length === fs2.length - 2);
    const tree2 = buildTreeIndex(src2, Date.now());
    const chunks2 = fs2.flatMap((f) => chunkFile(f, tok, OPTS));
    for (const q of QUESTIONS) assert.deepEqual(Array.from(treeBm25(tree2, q)), bm25Normalized(chunks2, q), `${q} (merged)`);
  } finally {
    t.cleanup();
  }
});

test('a file is unchanged only when size, mtime, ctime and inode agree and its mtime is older than the snapshot by the racy margin', () => {
  const rec = { size: 10, mtimeMs: 1_000_000, ctimeMs: 1_000_000, ino: 7 };
  const at = rec.mtimeMs + RACY_MS + 1;
  assert.equal(unchangedSince(rec, { ...rec }, at), true);
  for (const d of [{ size: 11 }, { mtimeMs: rec.mtimeMs + 1 }, { ctimeMs: rec.ctimeMs + 0.5 }, { ino: 8 }]) assert.equal(unchangedSince(rec, { ...rec, ...d }, at), false, JSON.stringify(d));
  // Read within the timestamp granularity of the scan: could change again without its stamp moving.
  assert.equal(unchangedSince(rec, { ...rec }, rec.mtimeMs + RACY_MS), false);
  assert.equal(unchangedSince(rec, { ...rec }, rec.mtimeMs + 10), false);
});

const { model: tinyArc } = useTinyArc();
let model: ArcModel;
before(async () => {
  if (!skip) model = await tinyArc();
});

interface Outcome {
  answer: string;
  citations: unknown;
  selection: unknown;
  messages: string[];
  error?: string;
}

async function run(req: Partial<AskRequest> & { question: string }, cacheDir?: string, watch?: TreeWatch): Promise<Outcome> {
  const out: Outcome = { answer: '', citations: null, selection: null, messages: [] };
  for await (const e of ask(model, { mode: 'arc', maxNewTokens: 4, temperature: 0, ...req } as AskRequest, cacheDir ? { cacheDir, ...(watch ? { watch } : {}) } : {}) as AsyncIterable<AskEvent>) {
    if (e.type === 'progress') out.messages.push(e.message);
    else if (e.type === 'done') out.answer = e.answer;
    else if (e.type === 'citations') out.citations = e.citations;
    else if (e.type === 'selection') out.selection = { included: e.included, leftOut: e.leftOut, files: e.files };
    else if (e.type === 'error') out.error = `${e.code}: ${e.message}`;
  }
  return out;
}

const unread = (o: Outcome): number => {
  const m = o.messages.map((s) => /\((\d+) unchanged, not read\)/.exec(s)).find((x) => x);
  return m ? Number(m[1]) : 0;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Files written now are racily clean for RACY_MS; questions after that trust their stat. */
const settle = () => sleep(RACY_MS + 100);

/** The one tree entry stored in `cache`. */
function treeEntry(cache: string): string {
  const dir = path.join(cache, 'trees', `v${TREE_INDEX_FORMAT_VERSION}`);
  return path.join(dir, readdirSync(dir).find((f) => f.endsWith('.arct')) as string);
}

async function agreesWithClean(root: string, cache: string, question: string, mode: AskRequest['mode'] = 'arc'): Promise<Outcome> {
  clearLexiconMemo(); // a new process
  const warm = await run({ question, roots: [root], mode }, cache);
  const clean = await run({ question, roots: [root], mode });
  assert.equal(warm.error, undefined, warm.error);
  assert.deepEqual([warm.selection, warm.citations, warm.answer], [clean.selection, clean.citations, clean.answer], question);
  return warm;
}

test('ask(): a warm question reads no unchanged file; same-size edits with the old mtime, deletes, renames and new files are noticed', { skip, timeout: 240_000 }, async () => {
  const t = tempDir('tree-ask');
  try {
    const root = makeWorkspace(t.dir);
    const cache = path.join(t.dir, 'cache');
    const target = path.join(root, 'ts', 'cache.ts');
    // Whole seconds: utimes can set them back exactly (sub-millisecond times do not round-trip).
    const oldTime = Math.floor(Date.now() / 1000) - 3600;
    utimesSync(target, oldTime, oldTime);
    const n = (await collectSources({ roots: [root] })).files.length;
    const q = 'Which function evicts the least recently used cache entries?';
    const cold = await agreesWithClean(root, cache, q);
    assert.equal(unread(cold), 0);
    // Just written: racily clean, so read and hashed again.
    const racy = await agreesWithClean(root, cache, q);
    assert.equal(unread(racy), 0, 'files written within the racy margin are read again');
    await settle();
    await agreesWithClean(root, cache, q); // stores stamps older than the margin
    const warm = await agreesWithClean(root, cache, q);
    assert.equal(unread(warm), n, 'every file vouched for by its stat');
    assert.ok(readdirSync(path.join(cache, 'trees', `v${TREE_INDEX_FORMAT_VERSION}`)).some((f) => f.endsWith('.arct')));
    // The same size and the same mtime (restored): the ctime still moves.
    const before = statSync(target);
    const text = readFileSync(target, 'utf8');
    const swapped = text.replace('evictStore', 'evictXtore');
    assert.notEqual(swapped, text);
    writeFileSync(target, swapped);
    utimesSync(target, oldTime, oldTime);
    assert.equal(statSync(target).size, before.size);
    assert.equal(statSync(target).mtimeMs, before.mtimeMs);
    const afterEdit = await agreesWithClean(root, cache, 'Which function evicts the store, `evictXtore`?');
    assert.equal(unread(afterEdit), n - 1);
    // Delete, rename, add.
    rmSync(path.join(root, 'ts', 'plan.ts'));
    renameSync(path.join(root, 'ts', 'select.ts'), path.join(root, 'ts', 'selection_renamed.ts'));
    writeFileSync(path.join(root, 'ts', 'added.ts'), 'export function evictEverything() { return "least recently used"; }\n');
    const moved = await agreesWithClean(root, cache, q);
    // Read: the renamed and the added file, and cache.ts (edited moments ago: racily clean).
    assert.equal(unread(moved), n - 3);
    for (const mode of ['mixed', 'full'] as const) await agreesWithClean(root, cache, 'Which file defines `codeTerms`?', mode);
    await settle();
    await agreesWithClean(root, cache, 'Which file defines `codeTerms`?'); // re-reads the racy ones, stores them settled
    const again = await agreesWithClean(root, cache, 'Which file defines `codeTerms`?');
    assert.equal(unread(again), n);
  } finally {
    t.cleanup();
  }
});

test('ask(): a damaged tree entry is logged, deleted and rebuilt; answers stay those of a clean run', { skip, timeout: 240_000 }, async () => {
  const t = tempDir('tree-corrupt');
  try {
    const root = makeWorkspace(t.dir);
    const cache = path.join(t.dir, 'cache');
    const q = 'Which file defines `renderHeader`?';
    await agreesWithClean(root, cache, q);
    await settle();
    await agreesWithClean(root, cache, q);
    const entry = treeEntry(cache);
    const damage: ((f: string) => void)[] = [
      (f) => truncateSync(f, 100),
      (f) => {
        // A byte of the head (checked at load; a damaged postings block is found when read:
        // pipeline-tree-lazy.test.ts).
        const b = readFileSync(f);
        b[80 + Math.floor(b.readUInt32LE(8) / 2)] ^= 0xff;
        writeFileSync(f, b);
      },
      (f) => writeFileSync(f, 'not an index'),
      (f) => {
        // The last byte: inside the postings body, found only when a question reads that block
        // (the question starts over and the entry is rebuilt).
        const b = readFileSync(f);
        b[b.length - 1] ^= 0xff;
        writeFileSync(f, b);
      },
    ];
    for (const hurt of damage) {
      hurt(entry);
      const logs: string[] = [];
      clearLexiconMemo();
      let failed: string | undefined;
      for await (const e of ask(model, { mode: 'arc', maxNewTokens: 4, question: q, roots: [root] }, { cacheDir: cache, log: (l) => logs.push(l) })) if (e.type === 'error') failed = e.message;
      assert.equal(failed, undefined);
      assert.ok(logs.some((l) => /tree index: corrupt entry/.test(l)), logs.join('\n'));
      const after = await agreesWithClean(root, cache, q);
      assert.equal(after.error, undefined);
    }
  } finally {
    t.cleanup();
  }
});

test('ask(): files left out for their content are recorded in the tree and skipped unread while unchanged; changed, they are read again', { skip, timeout: 240_000 }, async () => {
  const t = tempDir('tree-skips');
  try {
    const root = makeWorkspace(t.dir);
    const cache = path.join(t.dir, 'cache');
    const logo = path.join(root, 'logo.png');
    writeFileSync(logo, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 1]));
    const q = 'Which file defines `renderHeader`?';
    await agreesWithClean(root, cache, q);
    await settle();
    await agreesWithClean(root, cache, q);
    const entryOf = () => treeEntry(cache);
    const stored = () => {
      const t = decodeTreeIndex(path.basename(entryOf(), '.arct'), readFileSync(entryOf()));
      assert.ok(typeof t !== 'string', String(t));
      return t;
    };
    const rec = (stored().skipped ?? []).find((f) => f.path === 'logo.png');
    assert.equal(rec?.reason, 'binary');
    assert.equal(rec?.size, statSync(logo).size);
    // Unchanged: the next question does not rebuild the tree (a read skip would count as a change).
    const before = statSync(entryOf()).mtimeMs;
    await agreesWithClean(root, cache, q);
    assert.equal(statSync(entryOf()).mtimeMs, before);
    // Changed into text: read again, indexed, and found.
    writeFileSync(logo, 'export function logoTextHelper() {\n  return 42;\n}\n');
    await settle();
    const found = await agreesWithClean(root, cache, 'Which file defines `logoTextHelper`?');
    assert.ok((found.citations as { path: string }[]).some((c) => c.path === 'logo.png'), JSON.stringify(found.citations));
    assert.equal((stored().skipped ?? []).some((f) => f.path === 'logo.png'), false);
  } finally {
    t.cleanup();
  }
});

test('several processes ask on one cache while files change, this one with change notifications: every answer equals a clean run at the end, the tree entry verifies', { skip, timeout: 300_000 }, async () => {
  const t = tempDir('tree-procs');
  // This process asks as the extension does: a long-lived host with a TreeWatch.
  const watch = new TreeWatch();
  try {
    const root = makeWorkspace(t.dir);
    const cache = path.join(t.dir, 'cache');
    const child = path.join(__dirname, 'pipeline-tree-child.ts');
    const kids = [0, 1, 2].map(() => runTs(child, [cache, root, 3]));
    const watchedErrors: string[] = [];
    const watched = (async () => {
      for (let k = 0; k < 6; k++) {
        const o = await run({ question: 'Which file defines `chunkFile`?', roots: [root] }, cache, watch);
        if (o.error) watchedErrors.push(o.error);
      }
    })();
    // Meanwhile: edits, a delete and a rename.
    await sleep(300);
    const f = path.join(root, 'ts', 'chunker.ts');
    writeFileSync(f, readFileSync(f, 'utf8') + '\n// edited while others ask\n');
    rmSync(path.join(root, 'ts', 'locations.ts'));
    renameSync(path.join(root, 'ts', 'compress.ts'), path.join(root, 'ts', 'compress_moved.ts'));
    await watched;
    for (const e of watchedErrors) assert.match(e, /changed while the question was being answered/);
    const outs = await Promise.all(kids);
    for (const o of outs) assert.equal(o.code, 0, o.err.slice(-2000));
    for (const o of outs) {
      const r = JSON.parse(o.out.trim().split('\n').pop() as string) as { errors: string[] };
      // A file may change under a running question: it says so (ask again), nothing worse.
      for (const e of r.errors) assert.match(e, /changed while the question was being answered/);
    }
    const dir = path.join(cache, 'trees', `v${TREE_INDEX_FORMAT_VERSION}`);
    for (const name of readdirSync(dir).filter((n) => n.endsWith('.arct'))) {
      const key = name.slice(0, 64);
      assert.ok(typeof decodeTreeIndex(key, readFileSync(path.join(dir, name))) !== 'string', name);
    }
    await agreesWithClean(root, cache, 'Which function evicts the least recently used cache entries?');
    await settle();
    await agreesWithClean(root, cache, 'Which file defines `chunkFile`?');
    // The watched host, once the changes are old enough to be trusted, answers as a clean run does,
    // whether it scans or reuses a scan (the third question reuses the second's).
    const clean = await run({ question: 'Which file defines `chunkFile`?', roots: [root] });
    const asked: Outcome[] = [];
    for (let k = 0; k < 3; k++) asked.push(await run({ question: 'Which file defines `chunkFile`?', roots: [root] }, cache, watch));
    for (const o of asked) {
      assert.equal(o.error, undefined, o.error);
      assert.deepEqual([o.selection, o.citations, o.answer], [clean.selection, clean.citations, clean.answer]);
    }
    assert.ok(asked[2].messages.some((m) => /the last scan is reused/.test(m)), asked[2].messages.join('\n'));
  } finally {
    await watch.dispose();
    t.cleanup();
  }
});

test('identifier boosts: every chunk the boost patterns match is among the candidates read from the postings', { skip }, async () => {
  const t = tempDir('tree-boost');
  try {
    const root = makeWorkspace(t.dir);
    writeFileSync(path.join(root, 'ts', 'dollar.js'), 'function fooBar$() { return 1; }\nconst a = { b: fooBar };\nexport function zed$$(x) { return x->y; }\nLIMIT = 3\n');
    const tok = fixtureTokenizer() as TextTokenizer;
    const fs = (await collectSources({ roots: [root] })).files;
    const r = await lexiconsFor(fs, tok, OPTS, null, new LexicalIndex(t.dir, 'id'));
    const tree = buildTreeIndex(fs.map((f, k) => ({ path: f.path, stamp: stampOf(f), textHash: hashText(f.text), lexicon: r.files[k].lexicon })), Date.now());
    const chunks = fs.flatMap((f) => chunkFile(f, tok, OPTS));
    for (const q of ['Which file defines `fooBar`?', 'Where is `zed` defined?', 'What is `a.b`?', 'What does `->` do?', 'Which file defines `chunkFile` and `LIMIT`?', 'Where is `renderHeader` used?']) {
      const zero = new Array<number>(chunks.length).fill(0);
      const boosted = boostScores(chunks, zero, q);
      const cand = boostCandidates(tree, q);
      if (cand === null) continue; // every chunk is read
      boosted.forEach((b, i) => {
        const pathOnly = boostScores([{ path: chunks[i].path, origin: chunks[i].origin, body: '' }], [0], q)[0];
        if (b !== pathOnly) assert.ok(cand.has(i), `${q}: chunk ${i} (${chunks[i].path}:${chunks[i].startLine}) is boosted by its body but not a candidate`);
      });
    }
    assert.equal(boostCandidates(tree, 'What does `->` do?'), null);
  } finally {
    t.cleanup();
  }
});
