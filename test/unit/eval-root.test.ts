// `arc-context eval` on rows that name a folder ("root") and where their answer is: the row is
// asked like `ask --root`, and each row says whether the answer's chunk reached the decoder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { cli } from './cli-helper';
import { answerChunkOf, parseEvalData, summarize, summaryTable, type EvalResult, type SelectionEvent } from '../../src/cli/eval';
import { TINY_ARC, hasTinyArc, tempDir } from './pipeline-helpers';

const WORKSPACE = path.resolve(__dirname, '../fixtures/workspace-py');
const skip = hasTinyArc() ? false : 'test/fixtures/tiny-arc is missing';

/** A copy of workspace-py as data/repo (with a git-ignored dist/hidden.py) and rows about it. */
function dataset(dir: string): { data: string; repo: string; rows: Record<string, unknown>[] } {
  const repo = path.join(dir, 'data', 'repo');
  cpSync(WORKSPACE, repo, { recursive: true });
  mkdirSync(path.join(repo, 'dist'));
  writeFileSync(path.join(repo, 'dist', 'hidden.py'), 'def hidden_helper(a, b):\n    return a\n');
  const rows = [
    { id: 'f1', kind: 'file', question: 'Which file defines `render_report`?', answers: ['pkg/report.py'], root: 'repo', answerPath: 'pkg/report.py', answerLine: 11 },
    { id: 'p1', kind: 'params', question: 'What are the parameters of `format_row`?', answers: ['item, width=20'], root: 'repo', answerPath: 'pkg/report.py', answerLine: 7 },
    { id: 'v1', kind: 'value', question: 'What is the value of `REPORT_TITLE`?', answers: ['"Inventory report"'], root: 'repo', answerPath: 'pkg/report.py', answerLine: 4 },
    // .gitignore leaves dist/ out: the answer can never reach the decoder.
    { id: 'f2', kind: 'file', question: 'Which file defines `hidden_helper`?', answers: ['dist/hidden.py'], root: 'repo', answerPath: 'dist/hidden.py', answerLine: 1 },
    // Rows with files keep working, and one this small always fits the window.
    { id: 'v2', kind: 'value', question: 'What is the value of `LIMIT`?', answers: ['10'], files: [{ path: 'a.py', text: 'LIMIT = 10\n' }], answerPath: 'a.py', answerLine: 1 },
  ];
  const data = path.join(dir, 'data', 'qa.jsonl');
  writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return { data, repo, rows };
}

async function evalJson(...args: string[]): Promise<EvalResult> {
  const r = await cli('eval', '--model', TINY_ARC, '--max-new-tokens', '3', '--json', ...args);
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out) as EvalResult;
}

test('eval root rows: asked like ask --root, with figures, answer chunk and per-kind summary', { skip }, async () => {
  const t = tempDir('eval-root');
  try {
    const { data, repo } = dataset(t.dir);
    const cache = path.join(t.dir, 'cache');
    for (const mode of ['mixed', 'arc', 'full', 'none'] as const) {
      const j = await evalJson('--data', data, '--mode', mode, '--cache', cache);
      assert.equal(j.n, 5);
      assert.deepEqual(
        j.rows.map((r) => [r.id, r.kind]),
        [['f1', 'file'], ['p1', 'params'], ['v1', 'value'], ['f2', 'file'], ['v2', 'value']],
      );
      for (const r of j.rows) {
        assert.equal(r.error, undefined, `${mode} ${r.id}: ${r.error}`);
        for (const k of ['sourceTokens', 'textTokens', 'contextPositions', 'textChunks', 'compressedChunks'] as const) assert.equal(typeof r[k], 'number', k);
        if (mode === 'none') {
          assert.deepEqual([r.sourceTokens, r.textTokens, r.contextPositions, r.textChunks, r.compressedChunks, r.answerChunk], [0, 0, 0, 0, 0, 'absent']);
          continue;
        }
        assert.ok(r.sourceTokens > 0 && r.contextPositions > 0);
        if (mode === 'arc') {
          assert.equal(r.textChunks + r.textTokens, 0);
          assert.ok(r.compressedChunks > 0);
          assert.ok(r.contextPositions < r.sourceTokens, 'compressed context is shorter than its text');
          assert.ok(['compressed', 'absent'].includes(r.answerChunk as string));
        } else if (mode === 'full') {
          assert.equal(r.compressedChunks, 0);
          assert.ok(r.textChunks > 0);
          assert.equal(r.textTokens, r.sourceTokens);
          assert.ok(['text', 'absent'].includes(r.answerChunk as string));
        } else {
          assert.ok(r.textChunks > 0, 'mixed: the best chunk is read as text');
          assert.ok(r.textTokens > 0 && r.textTokens <= r.sourceTokens);
        }
      }
      const byId = Object.fromEntries(j.rows.map((r) => [r.id, r]));
      assert.equal(byId.f2.answerChunk, 'absent', 'a git-ignored answer file never reaches the decoder');
      if (mode !== 'none') {
        // The only chunk of a one-line file: best ranked, so text in mixed mode.
        assert.equal(byId.v2.answerChunk, mode === 'arc' ? 'compressed' : 'text');
        // The root row is the same request as `ask --root`: same answer, same figures, and the
        // answer chunk agrees with the citations.
        const a = await cli('ask', '--root', repo, '--model', TINY_ARC, '--mode', mode, '--cache', cache, '--max-new-tokens', '3', '--json', 'Which file defines `render_report`?');
        assert.equal(a.code, 0, a.err);
        const asked = JSON.parse(a.out) as { answer: string; citations: { path: string; startLine: number; endLine: number }[]; stats: Record<string, number> };
        assert.equal(byId.f1.prediction, asked.answer.trim());
        assert.deepEqual(
          [byId.f1.sourceTokens, byId.f1.textTokens, byId.f1.contextPositions, byId.f1.textChunks, byId.f1.compressedChunks],
          [asked.stats.sourceTokens, asked.stats.textTokens, asked.stats.contextPositions, asked.stats.textChunks, asked.stats.compressedChunks],
        );
        assert.equal(byId.f1.textChunks + byId.f1.compressedChunks, asked.stats.chunksIncluded);
        assert.ok(asked.stats.chunksLeftOut > 0, 'the folder is larger than the window');
        const cited = asked.citations.some((c) => c.path === 'pkg/report.py' && c.startLine <= 11 && 11 <= c.endLine);
        assert.equal(byId.f1.answerChunk !== 'absent', cited);
        if (mode !== 'mixed') assert.equal(byId.f1.answerChunk, cited ? (mode === 'arc' ? 'compressed' : 'text') : 'absent');
      }
      // Summary: all rows and per kind.
      assert.equal(j.exactMatch, j.rows.filter((r) => r.correct).length / 5);
      assert.equal(j.meanSourceTokens, j.rows.reduce((s, r) => s + r.sourceTokens, 0) / 5);
      assert.deepEqual(Object.keys(j.byKind), ['file', 'params', 'value']);
      assert.deepEqual(
        Object.values(j.byKind).map((g) => g.n),
        [2, 1, 2],
      );
      for (const [kind, g] of Object.entries(j.byKind)) {
        const rs = j.rows.filter((r) => r.kind === kind);
        assert.equal(g.exactMatch, rs.filter((r) => r.correct).length / rs.length);
        assert.equal(g.answerChunk?.n, rs.length);
        const shares = g.answerChunk as { text: number; compressed: number; absent: number };
        assert.ok(Math.abs(shares.text + shares.compressed + shares.absent - 1) < 1e-9);
        assert.equal(shares.absent, rs.filter((r) => r.answerChunk === 'absent').length / rs.length);
      }
      assert.equal(j.byKind.file.answerChunk?.absent !== undefined && j.byKind.file.answerChunk.absent >= 0.5, true, 'f2 is absent');
      assert.ok(j.wallMs >= 0);
      // --no-cache gives the same answers (greedy decoding, same chunks).
      const fresh = await evalJson('--data', data, '--mode', mode, '--no-cache');
      assert.deepEqual(
        fresh.rows.map((r) => [r.prediction, r.sourceTokens, r.answerChunk]),
        j.rows.map((r) => [r.prediction, r.sourceTokens, r.answerChunk]),
      );
    }
    // --text-budget reaches the pipeline (mixed mode only): with 0 only the best chunk is text.
    const tb = await evalJson('--data', data, '--mode', 'mixed', '--text-budget', '0', '--cache', cache);
    assert.equal(tb.textBudget, 0);
    for (const r of tb.rows) assert.ok(r.textChunks <= 1, `${r.id}: ${r.textChunks} text chunks with --text-budget 0`);
    const wrongMode = await cli('eval', '--model', TINY_ARC, '--data', data, '--mode', 'arc', '--text-budget', '5', '--no-cache');
    assert.equal(wrongMode.code, 2);
    assert.match(wrongMode.err, /--text-budget applies to mixed mode only/);
    // The human output ends with the per-kind table.
    const human = await cli('eval', '--model', TINY_ARC, '--max-new-tokens', '3', '--data', data, '--mode', 'arc', '--cache', cache);
    assert.equal(human.code, 0, human.err);
    assert.match(human.out, /^kind +n +exact +answer as text +compressed +absent +mean source tokens$/m);
    for (const k of ['file', 'params', 'value', 'all']) assert.match(human.out, new RegExp(`^${k} +\\d+ +\\d+\\.\\d% `, 'm'));
  } finally {
    t.cleanup();
  }
});

test('eval JSONL checks name the line: no context, a missing root, half an answer place', async () => {
  const t = tempDir('eval-checks');
  try {
    const bad = async (line: string, message: RegExp): Promise<void> => {
      const data = path.join(t.dir, 'bad.jsonl');
      writeFileSync(data, '{"id":1,"question":"q","answers":["a"],"files":[]}\n' + line + '\n');
      const r = await cli('eval', '--data', data, '--mode', 'none', '--model', TINY_ARC, '--no-cache');
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, /bad\.jsonl:2: /);
      assert.match(r.err, message);
    };
    await bad('{"id":2,"question":"q","answers":["a"]}', /neither "files" .* nor "root"/);
    await bad('{"id":2,"question":"q","answers":["a"],"root":"no-such-folder"}', /"root" "no-such-folder" is not a folder \(looked for .*no-such-folder; roots are relative to the JSONL file's folder\)/);
    await bad('{"id":2,"question":"q","answers":["a"],"root":7}', /"root" must be a folder path/);
    await bad('{"id":2,"question":"q","answers":["a"],"files":[],"answerPath":"a.py"}', /"answerPath" \(a string\) and "answerLine" \(an integer >= 1\) go together/);
    await bad('{"id":2,"question":"q","answers":["a"],"files":[],"kind":3}', /"kind" must be a string/);
  } finally {
    t.cleanup();
  }
  // Roots resolve against the JSONL file's folder, not the working folder.
  const rows = parseEvalData('{"id":"r","question":"q","answers":["a"],"root":"workspace-py","kind":"file","answerPath":"pkg/a.py","answerLine":3}', 'x.jsonl', path.resolve(__dirname, '../fixtures'));
  assert.deepEqual(rows, [{ id: 'r', question: 'q', answers: ['a'], files: [], root: WORKSPACE, kind: 'file', answerPath: 'pkg/a.py', answerLine: 3 }]);
  assert.equal(parseEvalData('{"id":"r","question":"q","answers":["a"],"root":"anything"}', 'x.jsonl')[0].root, 'anything', 'no base folder: kept as given');
});

test('answer chunk: per-form citations when the pipeline reports them, else the mode decides', () => {
  const cite = (p: string, s: number, e: number) => ({ path: p, startLine: s, endLine: e });
  const base = { type: 'selection' as const, included: [cite('a.py', 1, 20), cite('b.py', 5, 9)], leftOut: [cite('c.py', 1, 3)], files: [], budget: 100 };
  assert.equal(answerChunkOf(base, 'arc', 'a.py', 20), 'compressed');
  assert.equal(answerChunkOf(base, 'full', 'b.py', 5), 'text');
  assert.equal(answerChunkOf(base, 'full', 'b.py', 10), 'absent');
  assert.equal(answerChunkOf(base, 'arc', 'c.py', 2), 'absent');
  assert.equal(answerChunkOf(null, 'arc', 'a.py', 1), 'absent');
  const split: SelectionEvent = { ...base, text: [cite('a.py', 1, 12)], compressed: [cite('a.py', 13, 20), cite('b.py', 5, 9)] };
  assert.equal(answerChunkOf(split, 'arc', 'a.py', 12), 'text', 'the per-form lists win over the mode');
  assert.equal(answerChunkOf(split, 'full', 'a.py', 13), 'compressed');
  assert.equal(answerChunkOf(split, 'full', 'c.py', 1), 'absent');

  const row = (kind: string, correct: boolean, sourceTokens: number, answerChunk?: 'text' | 'compressed' | 'absent') =>
    ({ id: kind, kind, prediction: '', correct, ttftMs: 0, sourceTokens, textTokens: 0, contextPositions: 0, textChunks: 0, compressedChunks: 0, ...(answerChunk ? { answerChunk } : {}) });
  const rows = [row('file', true, 100, 'text'), row('file', false, 300, 'absent'), row('value', false, 200)];
  assert.deepEqual(summarize(rows), { n: 3, exactMatch: 1 / 3, meanSourceTokens: 200, answerChunk: { n: 2, text: 0.5, compressed: 0, absent: 0.5 } });
  assert.deepEqual(summarize([]), { n: 0, exactMatch: 0, meanSourceTokens: 0 });
  const table = summaryTable({ ...summarize(rows), mode: 'full', wallMs: 1, rows, byKind: { file: summarize(rows.slice(0, 2)), value: summarize(rows.slice(2)) } });
  assert.deepEqual(table.trimEnd().split('\n').map((l) => l.split(/ {2,}/)), [
    ['kind', 'n', 'exact', 'answer as text', 'compressed', 'absent', 'mean source tokens'],
    ['file', '2', '50.0%', '50.0%', '0.0%', '50.0%', '200'],
    ['value', '1', '0.0%', '-', '-', '-', '200'],
    ['all', '3', '33.3%', '50.0%', '0.0%', '50.0%', '200'],
  ]);
});
