// ask() end to end on the real tiny-arc package (random weights: answers are noise, but every
// stage runs the real ONNX encoder and decoder) over real folders.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import type { ArcModel } from '../../src/core/api';
import { ask } from '../../src/core/ask';
import { chunkFile } from '../../src/core/context/chunker';
import { VectorCache } from '../../src/core/context/cache';
import type { AskEvent, AskRequest } from '../../src/core/types';
import { tempDir, useTinyArc } from './pipeline-helpers';

const WORKSPACE = path.resolve(__dirname, '../fixtures/workspace-py');
const { skip, model: tinyArc } = useTinyArc();
let model: ArcModel;
before(async () => {
  if (!skip) model = await tinyArc();
});

type Ev<T extends AskEvent['type']> = Extract<AskEvent, { type: T }>;

async function run(req: Partial<AskRequest> & { question: string }, opts: Parameters<typeof ask>[2] = {}, onEvent?: (e: AskEvent) => void): Promise<AskEvent[]> {
  const events: AskEvent[] = [];
  for await (const e of ask(model, { mode: 'arc', maxNewTokens: 4, ...req }, opts)) {
    events.push(e);
    onEvent?.(e);
  }
  return events;
}
const one = <T extends AskEvent['type']>(events: AskEvent[], type: T): Ev<T> => {
  const found = events.filter((e): e is Ev<T> => e.type === type);
  assert.equal(found.length, 1, `expected one ${type} event, got ${found.length}: ${JSON.stringify(events.filter((e) => e.type === 'error'))}`);
  return found[0];
};
const cacheFiles = (dir: string) => readdirSync(path.join(dir, 'v1'), { recursive: true }).filter((n) => String(n).endsWith('.arcv')).length;

test('empty question, empty folder and binary-only folder end in clear errors', { skip }, async () => {
  const t = tempDir('ask-empty');
  try {
    const q = one(await run({ question: '   ', roots: [t.dir] }), 'error');
    assert.equal(q.code, 'empty-question');
    const empty = await run({ question: 'What is here?', roots: [t.dir] });
    const e1 = one(empty, 'error');
    assert.equal(e1.code, 'no-sources');
    assert.match(e1.message, /No readable text files/);
    assert.ok(!empty.some((e) => e.type === 'done'));
    writeFileSync(path.join(t.dir, 'a.bin'), Buffer.from([1, 2, 0, 3]));
    writeFileSync(path.join(t.dir, 'b.png'), Buffer.from([0x89, 0x50, 0, 0]));
    const bin = await run({ question: 'What is here?', roots: [t.dir] });
    assert.deepEqual(one(bin, 'skipped').counts, { binary: 2 });
    const e2 = one(bin, 'error');
    assert.equal(e2.code, 'no-sources');
    assert.match(e2.message, /2 binary/);
  } finally {
    t.cleanup();
  }
});

test('a folder larger than the window: selection, citations, stats; only chosen chunks are encoded; the same question again is all cache hits', { skip }, async () => {
  const t = tempDir('ask-cache');
  try {
    const first = await run({ question: 'Which file defines `parse_config`?', roots: [WORKSPACE] }, { cacheDir: t.dir });
    const sel = one(first, 'selection');
    const stats = one(first, 'done').stats;
    const total = stats.chunksIncluded + stats.chunksLeftOut;
    assert.ok(stats.chunksLeftOut > 0, 'the fixture folder must not fit the 128-position window');
    assert.ok(stats.contextPositions <= sel.budget, `${stats.contextPositions} > budget ${sel.budget}`);
    assert.equal(stats.contextPositions, stats.compressedVectors + stats.chunksIncluded, 'one <Cont> per chunk');
    assert.ok(sel.included.some((c) => c.path === 'pkg/config.py' && c.startLine <= 10 && c.endLine >= 10), 'the defining chunk is chosen');
    assert.deepEqual(one(first, 'citations').citations, sel.included);
    // Select before compressing: only the chunks the window holds went through the encoder.
    assert.equal(stats.cacheHits, 0);
    assert.equal(stats.cacheMisses, stats.chunksIncluded);
    assert.ok(stats.chunksIncluded < total);
    assert.equal(cacheFiles(t.dir), stats.chunksIncluded);
    assert.ok(stats.ratio > 3 && stats.ratio <= 4, `ratio ${stats.ratio} at pooling factor 4`);
    assert.deepEqual(sel.files.map((f) => f.path), ['.gitignore', 'README.md', 'pkg/config.py', 'pkg/report.py', 'pkg/store.py', 'web/client.ts', 'web/format.ts']);

    const again = await run({ question: 'Which file defines `parse_config`?', roots: [WORKSPACE] }, { cacheDir: t.dir });
    const s2 = one(again, 'done').stats;
    assert.deepEqual(one(again, 'selection'), sel, 'the lexical index ranks as the first run did');
    assert.equal(s2.cacheHits, stats.chunksIncluded);
    assert.equal(s2.cacheMisses, 0);
    assert.equal(s2.encodeMs, 0, 'nothing went through the encoder');
    assert.equal(one(again, 'done').answer, one(first, 'done').answer);

    const other = await run({ question: 'What is the value of `MAX_RETRIES`?', roots: [WORKSPACE] }, { cacheDir: t.dir });
    assert.ok(one(other, 'selection').included.some((c) => c.path === 'pkg/config.py' && c.startLine <= 6 && c.endLine >= 6));
  } finally {
    t.cleanup();
  }
});

test('editing one file re-encodes only its changed chunks that the answer reads', { skip }, async () => {
  const ws = tempDir('ask-edit');
  const cache = tempDir('ask-edit-cache');
  try {
    cpSync(WORKSPACE, ws.dir, { recursive: true });
    const q = { question: 'Which items does `low_stock` return, sorted?', roots: [ws.dir] };
    const s1 = one(await run(q, { cacheDir: cache.dir }), 'done').stats;
    assert.equal(s1.cacheMisses, s1.chunksIncluded);
    const file = path.join(ws.dir, 'pkg/store.py');
    const before = readFileSync(file, 'utf8');
    const after = before.replace('return sorted(i.sku for i in store.values() if i.is_low())', 'return [i.sku for i in store.values() if i.is_low()]');
    assert.notEqual(after, before);
    writeFileSync(file, after);
    // What should change, counted independently of the cache.
    const opts = { maxTokens: model.encoder.maxChunkTokens, header: model.manifest.documentFormat.header };
    const oldHashes = new Set(chunkFile({ path: 'pkg/store.py', text: before, startLine: 1, origin: 'workspace' }, model.tokenizer, opts).map((c) => c.hash));
    const newChunks = chunkFile({ path: 'pkg/store.py', text: after, startLine: 1, origin: 'workspace' }, model.tokenizer, opts);
    const changed = newChunks.filter((c) => !oldHashes.has(c.hash)).length;
    assert.ok(changed >= 1 && changed < newChunks.length, `${changed} of ${newChunks.length} chunks changed`);
    const events = await run(q, { cacheDir: cache.dir });
    const s2 = one(events, 'done').stats;
    assert.ok(one(events, 'selection').included.some((c) => c.path === 'pkg/store.py'), 'the edited function is read');
    assert.ok(s2.cacheMisses >= 1 && s2.cacheMisses <= changed, `${s2.cacheMisses} misses, ${changed} changed chunks`);
    assert.equal(s2.cacheHits + s2.cacheMisses, s2.chunksIncluded);
  } finally {
    ws.cleanup();
    cache.cleanup();
  }
});

test('a corrupt cache entry is reported, recomputed and replaced', { skip }, async () => {
  const t = tempDir('ask-corrupt');
  try {
    const req = { question: 'Where is `format_row`?', roots: [WORKSPACE] };
    const s1 = one(await run(req, { cacheDir: t.dir }), 'done').stats;
    const entries = await new VectorCache(t.dir).listEntries();
    const victim = entries[3].file;
    const buf = readFileSync(victim);
    buf[buf.length - 1] ^= 0xff;
    writeFileSync(victim, buf);
    const logs: string[] = [];
    const events = await run(req, { cacheDir: t.dir, log: (l) => logs.push(l) });
    const s2 = one(events, 'done').stats;
    assert.equal(s2.cacheMisses, 1);
    assert.equal(s2.cacheHits, s1.cacheMisses - 1);
    assert.equal(logs.length, 1);
    assert.match(logs[0], /corrupt entry .*checksum/);
    assert.ok(events.some((e) => e.type === 'progress' && /corrupt entry/.test(e.message)), 'the repair is visible in the event stream');
    const s3 = one(await run(req, { cacheDir: t.dir }), 'done').stats;
    assert.equal(s3.cacheMisses, 0, 'the entry was stored again');
    assert.ok(statSync(victim).size > 0);
  } finally {
    t.cleanup();
  }
});

test('cancelling after the selection stops with a cancelled error before anything is encoded', { skip }, async () => {
  const cache = tempDir('ask-cancel-cache');
  try {
    const ac = new AbortController();
    const events = await run({ question: 'Which file defines `parse_config`?', roots: [WORKSPACE] }, { cacheDir: cache.dir, signal: ac.signal }, (e) => {
      if (e.type === 'selection') ac.abort();
    });
    const err = one(events, 'error');
    assert.equal(err.code, 'cancelled');
    assert.ok(!events.some((e) => e.type === 'done' || e.type === 'token'));
    assert.ok(!existsSync(path.join(cache.dir, 'v1')), 'no encoder work after the abort');
  } finally {
    cache.cleanup();
  }
});

test('full and none modes answer too; a consumer that stops early ends the run', { skip }, async () => {
  const full = await run({ question: 'Which file defines `fetchItems`?', roots: [WORKSPACE], mode: 'full' });
  const fs = one(full, 'done').stats;
  const sel = one(full, 'selection');
  assert.equal(fs.ratio, 1);
  assert.equal(fs.compressedVectors, 0);
  assert.ok(fs.contextPositions <= sel.budget && fs.contextPositions > sel.budget - 16);
  assert.ok(fs.truncatedTokens > 0);
  assert.ok(sel.included.some((c) => c.path === 'web/client.ts'));
  const none = await run({ question: 'Which file defines `fetchItems`?', roots: [WORKSPACE], mode: 'none' });
  const ns = one(none, 'done').stats;
  assert.equal(ns.contextPositions, 0);
  assert.deepEqual(one(none, 'citations').citations, []);
  assert.ok(!none.some((e) => e.type === 'selection'));
  // Breaking out of the loop must not leave anything running or throw.
  for await (const e of ask(model, { question: 'q?', mode: 'arc', roots: [WORKSPACE], maxNewTokens: 4 })) {
    if (e.type === 'selection') break;
  }
});

test('explicit, open and selection sources without a folder', { skip }, async () => {
  const events = await run({
    question: 'What is the value of `LIMIT`?',
    sources: [
      { path: 'a.py', text: 'LIMIT = 10\n', origin: 'selection', startLine: 5 },
      { path: 'b.ts', text: 'export const other = 1;\n', origin: 'open' },
    ],
  });
  assert.deepEqual(one(events, 'citations').citations, [
    { path: 'a.py', startLine: 5, endLine: 5 },
    { path: 'b.ts', startLine: 1, endLine: 1 },
  ]);
});
