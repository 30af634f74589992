// documentFormat.compressedHeader (docs/DESIGN.md): each compressed chunk is preceded in the
// prefix by its rendered header as text. Manifest validation, buildPrefix's layout and positions,
// the costs selection uses, and the window invariant in ask() and the CLI's --file path, on a
// copy of the tiny package whose manifest sets the flag.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { ArcModel, CompressedChunk, PrefixPart } from '../../src/core/api';
import { ask } from '../../src/core/ask';
import { askFiles } from '../../src/cli/ask';
import { ArcError } from '../../src/core/errors';
import { validateManifest } from '../../src/core/manifest';
import { loadModel } from '../../src/core/model';
import {
  buildPrefix,
  chunkHeader,
  compressedCoster,
  compressedHeaderIds,
  contextBudget,
  fitCompressed,
  questionText,
  renderChunk,
  type PromptModel,
} from '../../src/core/prompt';
import type { AskEvent, AskRequest, AskStats, SourceInput } from '../../src/core/types';
import { NO_TINY, TINY, copyTiny } from './core-fixture';

const skip = NO_TINY;
/** The tiny package as shipped (flag absent) and a copy whose manifest sets compressedHeader. */
let plain: ArcModel;
let flagged: ArcModel;
let flaggedDir = '';
before(async () => {
  if (skip) return;
  plain = await loadModel(TINY, { provider: 'cpu', threads: 1 });
  flaggedDir = await copyTiny();
  const file = join(flaggedDir, 'arc-model.json');
  const raw = JSON.parse(await readFile(file, 'utf8')) as { documentFormat: Record<string, unknown> };
  raw.documentFormat.compressedHeader = true;
  await writeFile(file, JSON.stringify(raw, null, 2));
  flagged = await loadModel(flaggedDir, { provider: 'cpu', threads: 1 });
});
after(async () => {
  await plain?.dispose();
  await flagged?.dispose();
  if (flaggedDir) await rm(flaggedDir, { recursive: true, force: true });
});

// --- the manifest ------------------------------------------------------------------------------

test('manifest: documentFormat.compressedHeader is true, false or absent; anything else is model-corrupt naming the field', { skip }, async () => {
  const raw = JSON.parse(await readFile(join(TINY, 'arc-model.json'), 'utf8'));
  const withFlag = (v: unknown) => ({ ...raw, documentFormat: { ...raw.documentFormat, compressedHeader: v } });
  assert.equal(validateManifest(raw, 'm.json').documentFormat.compressedHeader, undefined);
  assert.equal(validateManifest(withFlag(true), 'm.json').documentFormat.compressedHeader, true);
  assert.equal(validateManifest(withFlag(false), 'm.json').documentFormat.compressedHeader, false);
  for (const bad of ['true', 1, null, [], {}]) {
    assert.throws(
      () => validateManifest(withFlag(bad), 'm.json'),
      (e: unknown) => e instanceof ArcError && e.code === 'model-corrupt' && e.message.includes('"documentFormat.compressedHeader"') && e.message.includes('true or false'),
      JSON.stringify(bad),
    );
  }
  assert.equal(flagged.manifest.documentFormat.compressedHeader, true);
  assert.equal(plain.manifest.documentFormat.compressedHeader, undefined);
});

// --- the prefix --------------------------------------------------------------------------------

const isCont = (m: ArcModel, p: PrefixPart | undefined) => p?.kind === 'vectors' && p.data === m.encoder.cont;

async function encodeRendered(m: ArcModel, chunks: { path: string; body: string }[]): Promise<CompressedChunk[]> {
  return m.encoder.encode(chunks.map((c) => m.tokenizer.encode(renderChunk(m.manifest.documentFormat, c.path, c.body))));
}

test('arc prefix with the flag: per chunk the header ids (tokenizer.encode(header), no BOS), then the same vectors and <Cont> as without it', { skip }, async () => {
  const format = flagged.manifest.documentFormat;
  const src = [
    { path: 'src/limits.py', body: 'LIMIT = 10' },
    { path: 'lib/$&money.ts', body: 'export function add(a, b) {\n  return a + b;\n}' },
  ];
  // The encoder reads the whole rendered chunk, header included, with or without the flag.
  const vecs = await encodeRendered(flagged, src);
  const again = await encodeRendered(plain, src);
  assert.deepEqual(vecs.map((c) => Array.from(c.vectors)), again.map((c) => Array.from(c.vectors)));
  const q = 'Which file defines `add`?';
  const placed = vecs.map((c, i) => ({ ...c, path: src[i]!.path }));
  const off = buildPrefix(plain, 'arc', placed, q);
  const on = buildPrefix(flagged, 'arc', placed, q);
  const headers = src.map((s) => flagged.tokenizer.encode(chunkHeader(format, s.path)));
  assert.equal(chunkHeader(format, 'lib/$&money.ts'), '### lib/$&money.ts\n');
  assert.ok(renderChunk(format, src[1]!.path, src[1]!.body).startsWith(chunkHeader(format, src[1]!.path)));
  assert.deepEqual(headers.map((h) => flagged.tokenizer.decode(h)), ['### src/limits.py\n', '### lib/$&money.ts\n']);
  assert.ok(!headers.flat().includes(flagged.manifest.decoder!.bosTokenId));
  assert.deepEqual(compressedHeaderIds(flagged, src[0]!.path), headers[0]);
  assert.deepEqual(compressedHeaderIds(plain, src[0]!.path), []);

  assert.deepEqual(on.parts.map((p) => p.kind), ['tokens', 'tokens', 'vectors', 'vectors', 'tokens', 'vectors', 'vectors', 'tokens']);
  assert.deepEqual(on.parts[0], off.parts[0]);
  assert.deepEqual(on.parts[1], { kind: 'tokens', ids: headers[0] });
  assert.deepEqual(on.parts.slice(2, 4), off.parts.slice(1, 3));
  assert.deepEqual(on.parts[4], { kind: 'tokens', ids: headers[1] });
  assert.deepEqual(on.parts.slice(5, 7), off.parts.slice(3, 5));
  assert.equal(on.parts[2]!.kind === 'vectors' && on.parts[2].data, vecs[0]!.vectors);
  assert.ok(isCont(flagged, on.parts[3]) && isCont(flagged, on.parts[6]));
  assert.deepEqual(on.parts.at(-1), { kind: 'tokens', ids: flagged.tokenizer.encode(questionText(flagged.manifest, q)) });
  // Positions: the header tokens count as context; the vectors and <Cont> as before.
  const h = headers[0]!.length + headers[1]!.length;
  assert.equal(off.contextPositions, vecs[0]!.count + 1 + vecs[1]!.count + 1);
  assert.equal(on.contextPositions, off.contextPositions + h);
  assert.equal(on.positions, off.positions + h);
  // Without the flag the path is not needed (nor read); with it, a chunk without one is refused.
  assert.deepEqual(buildPrefix(plain, 'arc', vecs, q).parts, off.parts);
  assert.throws(() => buildPrefix(flagged, 'arc', vecs, q), (e: unknown) => e instanceof ArcError && e.code === 'internal' && /compressedHeader/.test(e.message));
});

test('mixed prefix with the flag: compressed chunks (header, vectors, <Cont>) first in document order, text chunks unchanged after them', { skip }, async () => {
  const format = flagged.manifest.documentFormat;
  const src = [
    { path: 'a.py', body: 'LIMIT = 10' },
    { path: 'b.py', body: 'def f(a, b):\n    return a + b' },
    { path: 'c.ts', body: 'export const x = 1;' },
  ];
  const [c0, c2] = await encodeRendered(flagged, [src[0]!, src[2]!]);
  const textIds = flagged.tokenizer.encode(renderChunk(format, src[1]!.path, src[1]!.body));
  const q = 'What is the value of `LIMIT`?';
  const compressed = [{ ...c0!, path: 'a.py' }, { ...c2!, path: 'c.ts' }];
  const arc = buildPrefix(flagged, 'arc', compressed, q);
  const full = buildPrefix(flagged, 'full', [textIds], q);
  const mixed = buildPrefix(flagged, 'mixed', { compressed, text: [textIds] }, q);
  assert.deepEqual(mixed.parts, [arc.parts[0], ...arc.parts.slice(1, -1), ...full.parts.slice(1, -1), arc.parts.at(-1)]);
  assert.deepEqual(mixed.parts[1], { kind: 'tokens', ids: flagged.tokenizer.encode('### a.py\n') });
  assert.deepEqual(mixed.parts[4], { kind: 'tokens', ids: flagged.tokenizer.encode('### c.ts\n') });
  const h = flagged.tokenizer.encode('### a.py\n').length + flagged.tokenizer.encode('### c.ts\n').length;
  assert.equal(mixed.contextPositions, h + c0!.count + 1 + c2!.count + 1 + textIds.length);
  // The text chunk is exactly what it was without the flag (it already starts with its header).
  const plainMixed = buildPrefix(plain, 'mixed', { compressed, text: [textIds] }, q);
  assert.deepEqual(mixed.parts.slice(-2), plainMixed.parts.slice(-2));
  assert.equal(mixed.contextPositions - plainMixed.contextPositions, h);
});

test('costs: a compressed chunk costs header tokens + vectors + 1 with the flag, vectors + 1 without; fitCompressed counts the extra', { skip }, () => {
  const on = compressedCoster(flagged);
  const off = compressedCoster(plain);
  const header = flagged.tokenizer.encode('### pkg/mod.py\n').length;
  assert.ok(header > 1);
  assert.equal(off('pkg/mod.py', 5), 6);
  assert.equal(on('pkg/mod.py', 5), header + 6);
  assert.equal(on('pkg/mod.py', 1), header + 2, 'memoized per path, same answer');
  // A PromptModel whose decoder reads with another tokenizer: headers are counted with the decoder's.
  const other: PromptModel = { ...flagged, manifest: flagged.manifest, decoder: { ...flagged.decoder!, tokenizer: { encode: (t: string) => Array.from(t, () => 7), decode: () => '' } } };
  assert.equal(compressedCoster(other)('pkg/mod.py', 5), '### pkg/mod.py\n'.length + 6);
  assert.deepEqual(compressedHeaderIds(other, 'x'), Array.from('### x\n', () => 7));

  const fake = (count: number): CompressedChunk => ({ vectors: new Float32Array(count * 2), count, dim: 2, groups: [] });
  const r = fitCompressed([fake(3), fake(2), fake(1)], 12, [4, 3, 0]);
  assert.equal(r.chunks.length, 1, '3+1+4 = 8 fits, 2+1+3 = 6 does not fit the 4 left, later chunks are left out too');
  assert.deepEqual(r.report, { chunks: 3, kept: 1, partial: 0, dropped: 2, keptPositions: 8, cutPositions: 6 + 2 });
  assert.equal(fitCompressed([fake(3), fake(2), fake(1)], 12).report.kept, 3, 'without extra: 4 + 3 + 2 = 9');
});

// --- ask() and the CLI: the window is never exceeded --------------------------------------------

const SOURCES: SourceInput[] = [
  { path: 'pkg/limits.py', text: 'LIMIT = 10\nOTHER = 2\n', origin: 'workspace' },
  ...Array.from({ length: 14 }, (_, i) => ({ path: `pkg/sub/module_${i}.py`, text: `def f${i}(a):\n    return a\n`, origin: 'workspace' as const })),
];
const QUESTION = 'Which file defines `f3`?';

interface Run {
  events: AskEvent[];
  prefix: PrefixPart[];
}

/** The model with its real decoder, recording the prefix it receives. */
function recorder(m: ArcModel): { model: ArcModel; prefix: () => PrefixPart[] } {
  const dec = m.decoder!;
  let prefix: PrefixPart[] = [];
  const model: ArcModel = {
    dir: m.dir,
    manifest: m.manifest,
    provider: m.provider,
    identity: m.identity,
    tokenizer: m.tokenizer,
    encoder: m.encoder,
    decoder: {
      contextLength: dec.contextLength,
      ...(dec.tokenizer ? { tokenizer: dec.tokenizer } : {}),
      generate: (parts, opts) => {
        prefix = parts;
        return dec.generate(parts, opts);
      },
    },
    dispose: async () => {},
  };
  return { model, prefix: () => prefix };
}

/** ask() on the real model; the prefix the real decoder receives is recorded. */
async function run(m: ArcModel, req: Partial<AskRequest>): Promise<Run> {
  const rec = recorder(m);
  const events: AskEvent[] = [];
  for await (const e of ask(rec.model, { question: QUESTION, mode: 'arc', sources: SOURCES, maxNewTokens: 4, ...req })) events.push(e);
  return { events, prefix: rec.prefix() };
}

function one<T extends AskEvent['type']>(events: AskEvent[], type: T): Extract<AskEvent, { type: T }> {
  const found = events.filter((e) => e.type === type);
  assert.equal(found.length, 1, `${type}: ${JSON.stringify(events.filter((e) => e.type === 'error'))}`);
  return found[0] as Extract<AskEvent, { type: T }>;
}

/** Reads a recorded prefix back: the compressed chunks (header text, vector count) and the text tokens. */
function readPrefix(m: ArcModel, prefix: PrefixPart[]): { compressed: { header: string; count: number }[]; textTokens: number; question: number } {
  const compressed: { header: string; count: number }[] = [];
  let i = 1;
  while (prefix[i]?.kind === 'tokens' && prefix[i + 1]?.kind === 'vectors') {
    const h = prefix[i] as Extract<PrefixPart, { kind: 'tokens' }>;
    const v = prefix[i + 1] as Extract<PrefixPart, { kind: 'vectors' }>;
    assert.ok(!isCont(m, v) && isCont(m, prefix[i + 2]), 'header, vectors, <Cont>');
    compressed.push({ header: m.tokenizer.decode(h.ids), count: v.count });
    i += 3;
  }
  let textTokens = 0;
  for (; i < prefix.length - 1; i++) {
    const p = prefix[i]!;
    assert.equal(p.kind, 'tokens', 'only text chunks after the compressed ones');
    if (p.kind === 'tokens') textTokens += p.ids.length;
  }
  const last = prefix.at(-1)!;
  return { compressed, textTokens, question: last.kind === 'tokens' ? last.ids.length : -1 };
}

function checkStats(stats: AskStats, read: ReturnType<typeof readPrefix>, budget: number, label: string): void {
  const headers = read.compressed.reduce((n, c) => n + flagged.tokenizer.encode(c.header).length, 0);
  const vectors = read.compressed.reduce((n, c) => n + c.count, 0);
  assert.equal(stats.compressedChunks, read.compressed.length, label);
  assert.equal(stats.compressedVectors, vectors, `${label}: compressedVectors does not count the headers`);
  assert.equal(stats.contextPositions, headers + vectors + read.compressed.length + read.textTokens, `${label}: contextPositions counts the headers`);
  assert.ok(stats.contextPositions <= budget, `${label}: ${stats.contextPositions} positions for a budget of ${budget}`);
  assert.equal(stats.ratio, stats.contextPositions > 0 ? stats.sourceTokens / stats.contextPositions : 0, label);
}

test('ask(), arc and mixed with the flag: each compressed chunk read after its header; the window is never exceeded; headers are paid for', { skip, timeout: 300_000 }, async () => {
  const ctx = flagged.manifest.decoder!.contextLength;
  let fewer = false;
  let answered = 0;
  for (const mode of ['arc', 'mixed'] as const) {
    for (const maxNewTokens of [1, 8, 20, 40, 60]) {
      const label = `${mode}, maxNewTokens ${maxNewTokens}`;
      const budget = contextBudget(flagged, QUESTION, maxNewTokens);
      const r = await run(flagged, { mode, maxNewTokens, textBudget: 20 });
      const errors = r.events.filter((e) => e.type === 'error');
      if (errors.length > 0) {
        // Only a window too small for any chunk may refuse.
        assert.deepEqual(errors.map((e) => e.type === 'error' && e.code), ['context-too-large'], label);
        continue;
      }
      const sel = one(r.events, 'selection');
      const stats = one(r.events, 'done').stats;
      if (stats.compressedChunks > 0) answered++;
      assert.equal(sel.budget, budget, label);
      const read = readPrefix(flagged, r.prefix);
      checkStats(stats, read, budget, label);
      assert.ok(1 + stats.contextPositions + read.question + maxNewTokens - 1 <= ctx, `${label}: the whole request fits the ${ctx}-position window`);
      // The headers name the compressed chunks, in document order.
      assert.deepEqual(read.compressed.map((c) => c.header), sel.compressed.map((c) => `### ${c.path}\n`), label);
      if (mode === 'arc') {
        const base = one((await run(plain, { mode, maxNewTokens })).events, 'done').stats;
        assert.ok(stats.compressedChunks <= base.compressedChunks, label);
        if (stats.compressedChunks < base.compressedChunks) fewer = true;
      }
    }
  }
  assert.ok(answered >= 6, `compressed chunks in ${answered} of 10 runs`);
  assert.ok(fewer, 'with the flag, some budget holds fewer compressed chunks (their headers cost positions)');
});

test('CLI --file, arc and mixed with the flag: headers counted in selection, stats and truncation; the window is never exceeded', { skip, timeout: 300_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'arc-hdr-'));
  const cwd = process.cwd();
  try {
    // The headers show paths relative to the working folder: short ones, as in a real project.
    process.chdir(dir);
    const files: string[] = [];
    for (const s of SOURCES) {
      const f = s.path.split('/').join('_');
      await writeFile(f, s.text!);
      files.push(f);
    }
    let withCompressed = 0;
    for (const mode of ['arc', 'mixed'] as const) {
      for (const maxNewTokens of [1, 20, 50]) {
        const label = `--file ${mode}, maxNewTokens ${maxNewTokens}`;
        const budget = contextBudget(flagged, QUESTION, maxNewTokens);
        const rec = recorder(flagged);
        const result = await askFiles(rec.model, mode, files, QUESTION, { maxNewTokens, stop: flagged.manifest.prompt.stop }, () => {}, 20);
        const read = readPrefix(flagged, rec.prefix());
        checkStats(result.stats, read, budget, label);
        if (result.stats.compressedChunks > 0) withCompressed++;
        assert.equal(result.truncation!.keptPositions, result.stats.contextPositions, `${label}: truncation counts the headers`);
        for (const c of read.compressed) assert.match(c.header, /^### pkg_[a-z_0-9]+\.py\n$/, label);
      }
    }
    assert.ok(withCompressed >= 4, `compressed chunks in ${withCompressed} of 6 runs`);
  } finally {
    process.chdir(cwd);
    await rm(dir, { recursive: true, force: true });
  }
});

test('ask() on a folder with the flag: the tree snapshot stores each file header\'s token count, and a warm question (headers priced from it, none tokenized) plans and reads exactly what a cold one does', { skip, timeout: 300_000 }, async () => {
  const { mkdir } = await import('node:fs/promises');
  const { loadTree, treeKey, clearTreeMemo } = await import('../../src/core/context/treeIndex');
  const { chunkIndexIdentity } = await import('../../src/core/context/chunkIndex');
  const dir = await mkdtemp(join(tmpdir(), 'arc-hdr-tree-'));
  try {
    const root = join(dir, 'tree');
    for (const s of SOURCES) {
      await mkdir(join(root, s.path, '..'), { recursive: true });
      await writeFile(join(root, s.path), s.text as string);
    }
    // Older than the racily-clean margin, so the warm question reads no file.
    const { utimes } = await import('node:fs/promises');
    const old = new Date(Date.now() - 60_000);
    for (const s of SOURCES) await utimes(join(root, s.path), old, old);
    const cacheDir = join(dir, 'cache');
    for (const mode of ['arc', 'mixed'] as const) {
      const runs = [];
      for (const pass of ['cold', 'warm']) {
        clearTreeMemo(); // a new process each time
        const rec = recorder(flagged);
        const events: AskEvent[] = [];
        for await (const e of ask(rec.model, { question: QUESTION, mode, roots: [root], maxNewTokens: 8, textBudget: 20 }, { cacheDir })) events.push(e);
        const budget = contextBudget(flagged, QUESTION, 8);
        checkStats(one(events, 'done').stats, readPrefix(flagged, rec.prefix()), budget, `${mode}, ${pass}`);
        runs.push({ sel: one(events, 'selection'), prefix: rec.prefix(), stats: one(events, 'done').stats });
      }
      assert.deepEqual(runs[1]!.sel, runs[0]!.sel, `${mode}: same selection warm and cold`);
      assert.deepEqual(readPrefix(flagged, runs[1]!.prefix), readPrefix(flagged, runs[0]!.prefix), `${mode}: same prefix`);
      assert.ok(runs[0]!.stats.compressedChunks > 0, `${mode}: some chunks compressed`);
    }
    const identity = await chunkIndexIdentity(flagged);
    const key = treeKey(identity as string, { header: flagged.manifest.documentFormat.header, maxTokens: flagged.encoder.maxChunkTokens }, { roots: [root], maxFileBytes: 1024 * 1024 });
    clearTreeMemo();
    const tree = await loadTree(cacheDir, key, () => {});
    assert.ok(tree, 'the snapshot is stored under the key ask() uses');
    for (const f of tree!.files) assert.equal(f.headerTokens, flagged.tokenizer.encode(`### ${f.path}\n`).length, f.path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
