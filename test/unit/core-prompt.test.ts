// The decoder prompt of docs/DESIGN.md (arc / full / none), rendering, splitting and fitting
// context into the window, and the tokenizer round trip, on the tiny package.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { ArcModel, CompressedChunk } from '../../src/core/api';
import { ArcError } from '../../src/core/errors';
import { loadModel } from '../../src/core/model';
import { buildPrefix, contextBudget, fitCompressed, questionText, renderChunk, splitDocument, truncateTokens, type DocumentChunk } from '../../src/core/prompt';
import { NO_TINY, REPO, TINY, copyTiny } from './core-fixture';

let model: ArcModel;
before(async () => {
  if (!NO_TINY) model = await loadModel(TINY, { provider: 'cpu', threads: 1 });
});
after(async () => model?.dispose());

test('tokenizer: exact round trip on source files and unicode, no special tokens added', { skip: NO_TINY }, () => {
  const texts = ['src/core/prompt.ts', 'src/core/generate.ts', 'docs/DESIGN.md'].map((f) => readFileSync(join(REPO, f), 'utf8'));
  texts.push('tabs\tand  spaces  \r\nCRLF\n\n\nünïcödé ✓ 😀 中文 \u0000 end', ' leading space', '');
  for (const t of texts) {
    const ids = model.tokenizer.encode(t);
    assert.equal(model.tokenizer.decode(ids), t);
    assert.ok(!ids.includes(model.manifest.decoder!.bosTokenId) && !ids.includes(model.manifest.decoder!.eosTokenId));
  }
  assert.deepEqual(model.tokenizer.encode(''), []);
  assert.equal(model.tokenizer.decode([]), '');
});

test('renderChunk: header with the path, body ending in exactly one newline, $ kept literal', () => {
  const f = { header: '### {path}\n' };
  assert.equal(renderChunk(f, 'a/b.py', 'x = 1'), '### a/b.py\nx = 1\n');
  assert.equal(renderChunk(f, 'a/b.py', 'x = 1\n\n\n'), '### a/b.py\nx = 1\n');
  assert.equal(renderChunk(f, '$&.ts', ''), '### $&.ts\n\n');
});

function fakeChunk(count: number, dim: number, value: number): CompressedChunk {
  return { vectors: new Float32Array(count * dim).fill(value), count, dim, groups: [] };
}

test('arc prefix (synthetic constant vectors as chunks): BOS, then per chunk its vectors and <Cont>, then the question', { skip: NO_TINY }, () => {
  const dim = model.encoder.dim;
  const chunks = [fakeChunk(3, dim, 0.5), fakeChunk(2, dim, -0.5)];
  const p = buildPrefix(model, 'arc', chunks, '  Which file defines `f`? ');
  const q = model.tokenizer.encode('Question: Which file defines `f`?\nAnswer: ');
  assert.equal(questionText(model.manifest, ' Which file defines `f`? '), 'Question: Which file defines `f`?\nAnswer: ');
  assert.deepEqual(p.parts.map((x) => x.kind), ['tokens', 'vectors', 'vectors', 'vectors', 'vectors', 'tokens']);
  assert.deepEqual(p.parts[0], { kind: 'tokens', ids: [model.manifest.decoder!.bosTokenId] });
  assert.equal(p.parts[1]!.kind === 'vectors' && p.parts[1].data, chunks[0]!.vectors);
  assert.equal(p.parts[2]!.kind === 'vectors' && p.parts[2].data, model.encoder.cont);
  assert.equal(p.parts[4]!.kind === 'vectors' && p.parts[4].data, model.encoder.cont);
  assert.deepEqual(p.parts[5], { kind: 'tokens', ids: q });
  assert.equal(p.contextPositions, 3 + 1 + 2 + 1);
  assert.equal(p.positions, 1 + 7 + q.length);
  assert.throws(() => buildPrefix(model, 'arc', [fakeChunk(1, dim + 1, 0)], 'q'), ArcError);
});

test('full prefix: token ids of each rendered chunk; text and ids give the same prefix', { skip: NO_TINY }, () => {
  const texts = [renderChunk(model.manifest.documentFormat, 'a.py', 'X = 1'), renderChunk(model.manifest.documentFormat, 'b.py', 'def f(a, b):\n    pass')];
  const fromText = buildPrefix(model, 'full', texts, 'What is X?');
  const fromIds = buildPrefix(model, 'full', texts.map((t) => model.tokenizer.encode(t)), 'What is X?');
  assert.deepEqual(fromText, fromIds);
  assert.deepEqual(fromText.parts[1], { kind: 'tokens', ids: model.tokenizer.encode('### a.py\nX = 1\n') });
  assert.equal(fromText.contextPositions, texts.reduce((n, t) => n + model.tokenizer.encode(t).length, 0));
});

test('none prefix: BOS and the question only', { skip: NO_TINY }, () => {
  const p = buildPrefix(model, 'none', [], 'What is X?');
  assert.equal(p.parts.length, 2);
  assert.equal(p.contextPositions, 0);
  assert.equal(p.positions, 1 + model.tokenizer.encode('Question: What is X?\nAnswer: ').length);
});

test('context budget leaves room for BOS, the question and the answer', { skip: NO_TINY }, () => {
  const q = model.tokenizer.encode(questionText(model.manifest, 'What is X?')).length;
  assert.equal(contextBudget(model, 'What is X?', 10), 128 - 1 - q - 9);
  assert.equal(contextBudget(model, 'What is X?', 1000), 0);
});

test('plain-text truncation keeps a prefix of the context and reports what was cut', () => {
  const r = truncateTokens([[1, 2, 3], [4, 5, 6, 7], [8, 9]], 5);
  assert.deepEqual(r.chunks, [[1, 2, 3], [4, 5]]);
  assert.deepEqual(r.report, { chunks: 3, kept: 1, partial: 1, dropped: 1, keptPositions: 5, cutPositions: 4 });
  assert.deepEqual(truncateTokens([[1], [2]], 10).report, { chunks: 2, kept: 2, partial: 0, dropped: 0, keptPositions: 2, cutPositions: 0 });
});

test('arc fitting (synthetic chunks) drops whole chunks from the first that does not fit', () => {
  const r = fitCompressed([fakeChunk(3, 2, 0), fakeChunk(5, 2, 0), fakeChunk(1, 2, 0)], 8);
  assert.equal(r.chunks.length, 1);
  assert.deepEqual(r.report, { chunks: 3, kept: 1, partial: 0, dropped: 2, keptPositions: 4, cutPositions: 8 });
});

test('splitDocument: chunks fit maxTokens, cover every line in order, and render their lines', { skip: NO_TINY }, () => {
  const text = readFileSync(join(REPO, 'src/core/prompt.ts'), 'utf8');
  const lines = text.replace(/\n+$/, '').split('\n');
  const f = model.manifest.documentFormat;
  const chunks = splitDocument(model.tokenizer, f, 'src/core/prompt.ts', text, 64);
  assert.ok(chunks.length > 10);
  const header = renderChunk(f, 'src/core/prompt.ts', '').slice(0, -1);
  let rebuilt = '';
  let prev: DocumentChunk | null = null;
  for (const c of chunks) {
    assert.ok(c.ids.length <= 64, `${c.ids.length} tokens`);
    assert.deepEqual(c.ids, model.tokenizer.encode(c.text));
    assert.ok(c.text.startsWith(header) && c.text.endsWith('\n'));
    const body = c.text.slice(header.length, -1);
    // Pieces of one long line continue it; otherwise a chunk starts on the next line.
    const samePiece: boolean = prev !== null && prev.startLine === c.startLine && prev.endLine === c.endLine && c.startLine === c.endLine;
    if (prev) assert.equal(c.startLine, samePiece ? prev.startLine : prev.endLine + 1);
    else assert.equal(c.startLine, 1);
    rebuilt += prev === null || samePiece ? body : '\n' + body;
    const whole = renderChunk(f, 'src/core/prompt.ts', lines.slice(c.startLine - 1, c.endLine).join('\n'));
    if (c.startLine !== c.endLine || whole.length <= c.text.length) assert.equal(c.text, whole);
    prev = c;
  }
  assert.equal(prev!.endLine, lines.length);
  // Rendering ends every body with one "\n", so blank lines at a chunk's end are not shown.
  assert.equal(rebuilt.replace(/\n+/g, '\n'), lines.join('\n').replace(/\n+/g, '\n'));
  // Chunks are greedy: a multi-line chunk could not take its next line too.
  for (const c of chunks.filter((x) => x.endLine > x.startLine && x.endLine < lines.length)) {
    assert.ok(model.tokenizer.encode(renderChunk(f, 'src/core/prompt.ts', lines.slice(c.startLine - 1, c.endLine + 1).join('\n'))).length > 64);
  }
  assert.ok(chunks.some((x) => x.endLine > x.startLine));
});

test('splitDocument: a line longer than the limit is split inside the line, losing nothing', { skip: NO_TINY }, () => {
  const long = Array.from({ length: 120 }, (_, i) => `v${i}`).join('+');
  const text = `short\n${long}\ntail\n`;
  const chunks = splitDocument(model.tokenizer, { header: '# {path}\n' }, 'x', text, 32);
  assert.ok(chunks.every((c) => c.ids.length <= 32));
  const pieces = chunks.filter((c) => c.startLine === 2).map((c) => c.text.slice('# x\n'.length, -1));
  assert.ok(pieces.length > 2);
  assert.equal(pieces.join(''), long);
});

test('arc end to end on the random model: encode, build, generate within the window', { skip: NO_TINY }, async () => {
  const text = readFileSync(join(REPO, 'src/core/errors.ts'), 'utf8');
  const chunks = splitDocument(model.tokenizer, model.manifest.documentFormat, 'src/core/errors.ts', text, model.encoder.maxChunkTokens);
  const compressed = await model.encoder.encode(chunks.map((c) => c.ids));
  compressed.forEach((c, i) => {
    // The group rule always gives ceil(L / x) groups.
    assert.equal(c.count, Math.ceil(chunks[i]!.ids.length / model.encoder.poolingFactor));
    assert.deepEqual(c.groups[c.groups.length - 1]![1], chunks[i]!.ids.length);
  });
  const fitted = fitCompressed(compressed, contextBudget(model, 'What is X?', 8));
  const prefix = buildPrefix(model, 'arc', fitted.chunks, 'What is X?');
  assert.ok(prefix.positions <= 128);
  const it = model.decoder!.generate(prefix.parts, { maxNewTokens: 8, stop: model.manifest.prompt.stop });
  let r = await it.next();
  while (!r.done) r = await it.next();
  assert.equal(r.value.prefixPositions, prefix.positions);
});

test('an encoder-only package loads, encodes, and refuses to build a prompt', { skip: NO_TINY }, async () => {
  const dir = await copyTiny();
  try {
    const m = JSON.parse(await readFile(join(dir, 'arc-model.json'), 'utf8')) as Record<string, unknown>;
    m.decoder = null;
    await writeFile(join(dir, 'arc-model.json'), JSON.stringify(m));
    await rm(join(dir, 'decoder.onnx'));
    await rm(join(dir, 'embed.onnx'));
    const enc = await loadModel(dir, { provider: 'cpu' });
    try {
      assert.equal(enc.decoder, null);
      const [c] = await enc.encoder.encode([[1, 2, 3, 4, 5]]);
      assert.equal(c!.count, 2);
      assert.throws(() => buildPrefix(enc, 'none', [], 'q'), (e: unknown) => e instanceof ArcError && e.code === 'model-missing');
    } finally {
      await enc.dispose();
    }
  } finally {
    await rm(dir, { recursive: true });
  }
});
