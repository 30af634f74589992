// The pipeline's CLI commands: compress (cache fill + figures), ask --root, eval over JSONL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { cli } from './cli-helper';
import { isExactMatch, parseEvalData } from '../../src/cli/eval';
import { TINY_ARC, hasTinyArc, tempDir } from './pipeline-helpers';

const WORKSPACE = path.resolve(__dirname, '../fixtures/workspace-py');
const skip = hasTinyArc() ? false : 'test/fixtures/tiny-arc is missing';


test('compress fills the cache once; a second run encodes nothing', { skip }, async () => {
  const t = tempDir('cli-compress');
  try {
    const args = ['compress', '--root', WORKSPACE, '--model', TINY_ARC, '--provider', 'cpu', '--cache', t.dir, '--json'];
    const a = await cli(...args);
    assert.equal(a.code, 0, a.err);
    const j1 = JSON.parse(a.out) as Record<string, number>;
    assert.equal(j1.files, 7);
    assert.ok(j1.chunks > 10);
    assert.equal(j1.encoded, j1.chunks);
    assert.ok(j1.ratio > 3 && j1.ratio <= 4);
    const b = await cli(...args);
    const j2 = JSON.parse(b.out) as Record<string, number>;
    assert.deepEqual([j2.cacheHits, j2.encoded], [j1.chunks, 0]);
    const text = await cli('compress', '--root', WORKSPACE, '--model', TINY_ARC, '--provider', 'cpu', '--no-cache');
    assert.equal(text.code, 0);
    assert.match(text.out, /chunks +\d+: 0 from cache, \d+ encoded/);
    assert.match(text.out, /cache +off/);
    assert.equal(text.err, '', 'no progress bar when stderr is not a terminal');
  } finally {
    t.cleanup();
  }
});

test('compress and ask --root report an empty folder clearly (exit 1, one line)', { skip }, async () => {
  const t = tempDir('cli-empty');
  try {
    const c = await cli('compress', '--root', t.dir, '--model', TINY_ARC, '--no-cache');
    assert.equal(c.code, 1);
    assert.match(c.err, /\[no-sources\]/);
    const a = await cli('ask', '--root', t.dir, '--model', TINY_ARC, '--no-cache', 'What is here?');
    assert.equal(a.code, 1);
    assert.match(a.err, /\[no-sources\].*No readable text files/);
    assert.equal(a.err.trim().split('\n').length, 1);
    assert.equal((await cli('compress', '--model', TINY_ARC)).code, 2, '--root is required');
    assert.equal((await cli('compress', '--root', t.dir, '--cache', t.dir, '--no-cache')).code, 2);
  } finally {
    t.cleanup();
  }
});

test('ask --root --json: answer, citations and stats from the pipeline', { skip }, async () => {
  const t = tempDir('cli-ask');
  try {
    const args = ['ask', '--root', WORKSPACE, '--model', TINY_ARC, '--cache', t.dir, '--max-new-tokens', '3', '--json', 'Which file defines `render_report`?'];
    const r = await cli(...args);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out) as { answer: string; citations: { path: string; startLine: number; endLine: number }[]; stats: Record<string, number> };
    assert.equal(typeof j.answer, 'string');
    assert.ok(j.citations.some((c) => c.path === 'pkg/report.py'));
    assert.ok(j.stats.chunksLeftOut > 0);
    const again = JSON.parse((await cli(...args)).out) as { stats: Record<string, number> };
    assert.equal(again.stats.cacheMisses, 0);
  } finally {
    t.cleanup();
  }
});

test('eval --json scores every row by exact match', { skip }, async () => {
  const t = tempDir('cli-eval');
  try {
    const data = path.join(t.dir, 'qa.jsonl');
    const rows = [
      { id: 'a', question: 'What is the value of `LIMIT`?', answers: ['10'], files: [{ path: 'a.py', text: 'LIMIT = 10\n' }] },
      { id: 2, question: 'Which file defines `f`?', answers: ['b.py'], files: [{ path: 'b.py', text: 'def f(x):\n    return x\n' }] },
      { id: 'c', question: 'What is the value of `N`?', answers: ['3'], files: [] },
    ];
    writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    for (const mode of ['arc', 'full', 'none']) {
      const r = await cli('eval', '--data', data, '--mode', mode, '--model', TINY_ARC, '--no-cache', '--max-new-tokens', '3', '--json');
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out.trim().split('\n').length, 1, 'one JSON line');
      const j = JSON.parse(r.out) as { n: number; exactMatch: number; rows: { id: string; prediction: string; correct: boolean; ttftMs: number; error?: string }[] };
      assert.equal(j.n, 3);
      assert.deepEqual(j.rows.map((x) => x.id), ['a', '2', 'c']);
      for (const [i, row] of j.rows.entries()) {
        assert.equal(typeof row.prediction, 'string');
        assert.equal(row.correct, row.error === undefined && rows[i].answers.includes(row.prediction.trim()));
        assert.ok(row.ttftMs >= 0);
      }
      assert.equal(j.exactMatch, j.rows.filter((x) => x.correct).length / 3);
      // A row without files has nothing to read in arc/full mode; closed book still answers.
      assert.equal(j.rows[2].error === undefined, mode === 'none');
    }
    const limited = JSON.parse((await cli('eval', '--data', data, '--mode', 'none', '--limit', '1', '--model', TINY_ARC, '--json')).out) as { n: number };
    assert.equal(limited.n, 1);
  } finally {
    t.cleanup();
  }
});

test('eval input checks and exact-match rule', () => {
  assert.throws(() => parseEvalData('{"id":1,"question":"q","answers":"x","files":[]}\n', 'd.jsonl'), /d\.jsonl:1: "answers"/);
  assert.throws(() => parseEvalData('\n{"id":1,"question":"q","answers":[],"files":[{"path":1}]}', 'd.jsonl'), /d\.jsonl:2: "files"/);
  assert.throws(() => parseEvalData('nope', 'd.jsonl'), /not JSON/);
  assert.deepEqual(parseEvalData('{"id":7,"question":"q","answers":["a"],"files":[]}', 'd'), [{ id: '7', question: 'q', answers: ['a'], files: [] }]);
  assert.equal(isExactMatch('  pkg/a.py\n', ['pkg/a.py']), true);
  assert.equal(isExactMatch('pkg/a.py extra', ['pkg/a.py']), false);
  assert.equal(isExactMatch('', ['x', ' ']), true, 'a blank answer matches a blank reference only');
  assert.equal(isExactMatch('', ['x']), false);
});
