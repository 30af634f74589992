// The bench's whole-package quality figures: every mode through eval's row runner on root rows,
// rendered into BENCHMARKS.md's quality section (real tiny-arc model, a real folder).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { runRepoQuality } from '../../bench/quality';
import { evalRows, parseEvalData } from '../../src/cli/eval';
import { loadModel } from '../../src/core/model';
import { TINY_ARC, hasTinyArc, tempDir } from './pipeline-helpers';

const WORKSPACE = path.resolve(__dirname, '../fixtures/workspace-py');
const skip = hasTinyArc() ? false : 'test/fixtures/tiny-arc is missing';

test('bench whole-package quality: four modes, shares and figures agree with eval rows', { skip }, async () => {
  const t = tempDir('bench-repos');
  const model = await loadModel(TINY_ARC, { threads: 1 });
  try {
    cpSync(WORKSPACE, path.join(t.dir, 'repo'), { recursive: true });
    const rows = [
      { id: 'f1', kind: 'file', question: 'Which file defines `render_report`?', answers: ['pkg/report.py'], root: 'repo', answerPath: 'pkg/report.py', answerLine: 11 },
      { id: 'v1', kind: 'value', question: 'What is the value of `REPORT_TITLE`?', answers: ['"Inventory report"'], root: 'repo', answerPath: 'pkg/report.py', answerLine: 4 },
    ];
    const data = path.join(t.dir, 'repos.jsonl');
    writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const cache = path.join(t.dir, 'cache');
    const q = await runRepoQuality(model, data, cache, { rows: 0, curveRows: 0, distractors: [], maxNewTokens: 3, log: () => {} });
    assert.deepEqual(Object.keys(q.modes), ['mixed', 'arc', 'full', 'none']);
    assert.equal(q.rows, 2);
    for (const [mode, m] of Object.entries(q.modes)) {
      assert.equal(m!.n, 2, mode);
      assert.equal(m!.errors, 0, mode);
      const s = m!.answerChunk;
      assert.ok(Math.abs(s.text + s.compressed + s.absent - 1) < 1e-9, `${mode} shares sum to 1`);
      assert.deepEqual(Object.keys(m!.perKind).sort(), ['file', 'value']);
    }
    assert.equal(q.modes.none!.meanSourceTokens, 0);
    assert.equal(q.modes.none!.answerChunk.absent, 1);
    assert.equal(q.modes.full!.answerChunk.compressed, 0);
    assert.equal(q.modes.arc!.answerChunk.text, 0);
    // The same figures as eval's own run of the rows.
    const parsed = parseEvalData(rows.map((r) => JSON.stringify(r)).join('\n'), data, t.dir);
    const e = await evalRows(model, parsed, { mode: 'mixed', cacheDir: cache, maxNewTokens: 3 });
    assert.equal(q.modes.mixed!.exactMatch, Math.round(e.exactMatch * 1e4) / 1e4);
    assert.equal(q.modes.mixed!.meanSourceTokens, Math.round(e.rows.reduce((s, r) => s + r.sourceTokens, 0) / e.rows.length));
  } finally {
    await model.dispose();
    t.cleanup();
  }
});
