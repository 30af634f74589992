// Chunking invariants with real Hugging Face tokenizers: a byte-level BPE built here, and the
// tiny-arc fixture's trained tokenizer when that fixture is present.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { TextTokenizer } from '../../src/core/api';
import { chunkFile, chunkFiles, type Chunk } from '../../src/core/context/chunker';
import type { SourceFile } from '../../src/core/context/sources';
import { byteLevelTokenizer, fixtureTokenizer } from './pipeline-helpers';

const HEADER = '### {path}\n';

function file(p: string, text: string, startLine = 1): SourceFile {
  return { path: p, text, startLine, origin: 'workspace' };
}

/** A Python-ish file with functions of varying length separated by blank lines. */
function pythonFile(functions: number, seed: number): string {
  let s = '"""Module docstring."""\nimport os\n\nLIMIT = 10\n\n';
  let x = seed;
  for (let f = 0; f < functions; f++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const body = 1 + (x % 12);
    s += `def func_${f}(alpha, beta=${f}):\n`;
    for (let l = 0; l < body; l++) s += `    value_${l} = alpha * ${l} + beta  # step ${l}\n`;
    if (x % 3 === 0) s += '\n    # spaced\n    pass\n';
    s += '    return alpha\n\n';
  }
  return s;
}

function checkInvariants(chunks: Chunk[], f: SourceFile, tok: TextTokenizer, max: number): void {
  const lineCount = f.text.split('\n').length - (f.text.endsWith('\n') ? 1 : 0);
  assert.ok(chunks.length > 0);
  assert.equal(chunks[0].startLine, f.startLine, 'first chunk starts at the first line');
  assert.equal(chunks[chunks.length - 1].endLine, f.startLine + lineCount - 1, 'last chunk ends at the last line');
  for (let i = 0; i < chunks.length; i++) {
    const c = chunks[i];
    assert.ok(c.tokenIds.length <= max, `chunk ${i} has ${c.tokenIds.length} > ${max} tokens`);
    assert.deepEqual(c.tokenIds, tok.encode(c.text), 'token ids are those of the rendered text');
    assert.equal(c.text, `### ${f.path}\n${c.body}`);
    assert.ok(c.body.endsWith('\n') && !c.body.endsWith('\n\n'), `chunk ${i} body must end with exactly one newline`);
    assert.equal(c.hash, createHash('sha256').update(c.text).digest('hex'));
    assert.ok(c.startLine <= c.endLine);
    if (i > 0) {
      const prev = chunks[i - 1];
      // Contiguous; a long line cut into pieces repeats its line number.
      assert.ok(c.startLine === prev.endLine + 1 || (c.startLine === prev.endLine && c.endLine === c.startLine), `gap/overlap between chunk ${i - 1} and ${i}`);
    }
  }
  // Every non-blank line of the file appears, in order, in the chunk bodies.
  const original = f.text.split('\n').filter((l) => l.trim() !== '').join('\n');
  const rebuilt = chunks
    .map((c) => c.body)
    .join('')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .join('\n');
  if (!chunks.some((c, i) => i > 0 && c.startLine === chunks[i - 1].endLine)) assert.equal(rebuilt, original);
}

const tokenizers: [string, TextTokenizer][] = [['byte-level BPE', byteLevelTokenizer()]];
const fixtureTok = fixtureTokenizer();
if (fixtureTok) tokenizers.push(['tiny-arc tokenizer', fixtureTok]);

for (const [name, tok] of tokenizers) {
  test(`${name}: chunks never exceed maxChunkTokens and cover the file`, () => {
    for (const max of [64, 128, 256]) {
      for (const seed of [1, 2, 3]) {
        const f = file('pkg/mod.py', pythonFile(25, seed));
        checkInvariants(chunkFile(f, tok, { maxTokens: max, header: HEADER }), f, tok, max);
      }
    }
  });

  test(`${name}: cuts fall at blank lines or top-level definitions`, () => {
    // Every function fits well within a quarter of the budget, so a clean cut always exists.
    const f = file('pkg/mod.py', pythonFile(30, 7));
    const lines = f.text.split('\n');
    const chunks = chunkFile(f, tok, { maxTokens: 2048, header: HEADER });
    assert.ok(chunks.length >= 3);
    for (const c of chunks.slice(1)) {
      const first = lines[c.startLine - 1];
      const before = lines[c.startLine - 2];
      assert.ok(before.trim() === '' || /^def /.test(first), `chunk starting at line ${c.startLine} cuts mid-block: ${JSON.stringify(before)} | ${JSON.stringify(first)}`);
    }
  });

  test(`${name}: a line longer than the budget is hard-cut into pieces that fit`, () => {
    const long = 'x = [' + Array.from({ length: 400 }, (_, i) => `"item${i}"`).join(', ') + ']';
    const f = file('data.py', `a = 1\n${long}\nb = 2\n`);
    const chunks = chunkFile(f, tok, { maxTokens: 64, header: HEADER });
    checkInvariants(chunks, f, tok, 64);
    const pieces = chunks.filter((c) => c.startLine === 2 && c.endLine === 2);
    assert.ok(pieces.length > 2);
    assert.equal(pieces.map((c) => c.body.slice(0, -1)).join(''), long, 'pieces rebuild the line');
  });
}

test('selections keep file line numbers; whitespace-only files give no chunks', () => {
  const tok = byteLevelTokenizer();
  const f = file('a.py', 'def f():\n    return 1\n\n\n', 41);
  const chunks = chunkFile(f, tok, { maxTokens: 64, header: HEADER });
  assert.deepEqual(chunks.map((c) => [c.startLine, c.endLine, c.body]), [[41, 44, 'def f():\n    return 1\n']]);
  assert.deepEqual(chunkFile(file('e.py', '\n  \n\t\n'), tok, { maxTokens: 64, header: HEADER }), []);
  assert.deepEqual(chunkFile(file('e.py', ''), tok, { maxTokens: 64, header: HEADER }), []);
});

test('a text without a final newline still gets one; CRLF lines are kept as written', () => {
  const tok = byteLevelTokenizer();
  const [c] = chunkFile(file('a.py', 'x = 1\r\ny = 2'), tok, { maxTokens: 64, header: HEADER });
  assert.equal(c.body, 'x = 1\r\ny = 2\n');
  assert.deepEqual([c.startLine, c.endLine], [1, 2]);
});

test('a header that does not fit is an error, not an endless loop', () => {
  const tok = byteLevelTokenizer();
  assert.throws(() => chunkFile(file('a'.repeat(100), 'x\n'), tok, { maxTokens: 16, header: HEADER }), /header/);
});

test('chunkFiles reuses the chunks of an unchanged file without tokenizing again', () => {
  const base = byteLevelTokenizer();
  let calls = 0;
  const tok: TextTokenizer = { encode: (t) => (calls++, base.encode(t)), decode: (ids) => base.decode(ids) };
  const files = [file('a.py', pythonFile(5, 1)), file('b.py', pythonFile(5, 2))];
  const opts = { maxTokens: 128, header: HEADER };
  const first = chunkFiles(files, tok, opts);
  const afterFirst = calls;
  assert.ok(afterFirst > 0);
  const again = chunkFiles([{ ...files[0], origin: 'open', absPath: '/x/a.py' }, files[1]], tok, opts);
  assert.equal(calls, afterFirst, 'no tokenizer calls for unchanged files');
  assert.deepEqual(again.map((c) => c.hash), first.map((c) => c.hash));
  assert.equal(again[0].origin, 'open', 'origin comes from the current request');
  assert.equal(again[0].absPath, '/x/a.py');
  chunkFiles([file('a.py', pythonFile(5, 1) + 'x = 1\n'), files[1]], tok, opts);
  assert.ok(calls > afterFirst, 'a changed file is chunked again');
});
