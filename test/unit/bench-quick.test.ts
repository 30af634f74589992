// `arc-context bench --quick` on the random tiny-arc package with tiny sizes: every section runs
// and the result has the documented shape. Timings are not checked (they belong in bench files).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { cli } from './cli-helper';
import { answerFileIndex, definesName, distractorRow, parseQaData } from '../../bench/quality';
import { renderMarkdown, ttftSvg } from '../../bench/report';
import { BENCH_SCHEMA, isSkipped, type BenchResult } from '../../bench/types';
import { TINY_ARC, hasTinyArc, tempDir } from './pipeline-helpers';

const WORKSPACE = path.resolve(__dirname, '../fixtures/workspace-py');
const skip = hasTinyArc() ? false : 'test/fixtures/tiny-arc is missing';

function file(rel: string): { path: string; text: string } {
  return { path: rel, text: readFileSync(path.join(WORKSPACE, rel), 'utf8') };
}

/** Three held-out-style rows (one per kind) over the fixture workspace; p1 gives report.py in two pieces. */
function qaRows(): string {
  const config = file('pkg/config.py');
  const report = file('pkg/report.py');
  const store = file('pkg/store.py');
  const cut = report.text.indexOf('\n', report.text.length >> 1) + 1;
  const pieces = [{ path: report.path, text: report.text.slice(0, cut) }, { path: report.path, text: report.text.slice(cut) }];
  return [
    { id: 'f1', kind: 'file', question: 'Which file defines `parse_config`?', answers: ['pkg/config.py'], files: [report, config] },
    { id: 'p1', kind: 'params', question: 'What are the parameters of `format_row`?', answers: ['item, width=20'], files: pieces },
    { id: 'v1', kind: 'value', question: 'What is the value of `LOW_STOCK_LEVEL`?', answers: ['3'], files: [store, config] },
  ]
    .map((r) => JSON.stringify(r))
    .join('\n');
}


test('bench --quick runs every section on tiny-arc and writes the result JSON', { skip, timeout: 60_000 }, async () => {
  const t = tempDir('bench');
  try {
    const qa = path.join(t.dir, 'qa.jsonl');
    writeFileSync(qa, qaRows());
    const out = path.join(t.dir, 'results');
    const r = await cli(
      'bench', '--model', TINY_ARC, '--quick', '--json', '--out', out,
      '--sizes', '40,90', '--reps', '1', '--max-new-tokens', '3',
      '--source', WORKSPACE, '--tree', WORKSPACE, '--encoder-chunks', '6',
      '--qa', qa, '--qa-rows', '3', '--curve-rows', '2',
    );
    assert.equal(r.code, 0, r.err);
    const res = JSON.parse(r.out) as BenchResult;
    assert.equal(res.schema, BENCH_SCHEMA);
    assert.equal(res.quick, true);
    assert.equal(res.model.name, 'tiny-arc');
    assert.equal(res.machine.threads, 1);
    assert.ok(res.machine.cores >= 1 && res.machine.cpu.length > 0);
    assert.ok(existsSync(path.join(out, 'latest-quick.json')));

    assert.ok(!isSkipped(res.latency), JSON.stringify(res.latency));
    assert.equal(res.latency.sizes.length, 2);
    for (const s of res.latency.sizes) {
      assert.ok(s.sourceTokens > 0 && s.chunks > 0);
      for (const m of [s.arcWarm, s.arcCold]) {
        assert.equal(m.ttftMs.samples.length, 1);
        assert.ok(m.contextPositions > 0 && m.chunksIncluded > 0);
      }
      assert.equal(s.arcWarm.cacheHits, s.arcWarm.chunksIncluded, 'warm: every chosen chunk from the cache (select before compressing)');
      assert.equal(s.arcCold.cacheHits, 0, 'cold: nothing from the cache');
      if ('fits' in s.full) {
        assert.ok(s.full.contextTokens > s.full.budget);
        assert.equal(s.ratios, null);
      } else assert.ok(s.ratios !== null && s.ratios.ttftFullOverArcWarm > 0);
    }

    assert.ok(!isSkipped(res.encoder), JSON.stringify(res.encoder));
    assert.equal(res.encoder.chunks, 6);
    assert.ok(res.encoder.onnx.batched.tokensPerSecond > 0 && res.encoder.onnx.single.calls === 6);
    if (!isSkipped(res.encoder.torch)) {
      assert.ok(res.encoder.torch.batched.tokensPerSecond > 0 && res.encoder.torch.sgemm.gflops_best > 0);
      assert.ok(res.encoder.flopsPerToken !== null && res.encoder.flopsPerToken > 0);
      assert.equal(res.encoder.torch.parity, null, 'random torch weights: no parity claim');
    } else assert.match(res.encoder.torch.skipped, /\S/);

    assert.ok(!isSkipped(res.tokenizers));
    const inUse = res.tokenizers.libraries.find((l) => l.inUse);
    assert.equal(inUse?.name, 'piece cache over @huggingface/tokenizers');
    assert.ok((inUse?.mbPerSec ?? 0) > 0);
    const library = res.tokenizers.libraries.find((l) => l.name === '@huggingface/tokenizers');
    assert.ok(library?.status === 'measured' && (library.mbPerSec ?? 0) > 0, 'the library\'s own encode is the reference');
    for (const l of res.tokenizers.libraries.filter((x) => x.status === 'measured')) assert.equal(l.agreeingFiles, res.tokenizers.corpus.files, `${l.name} gives the same ids`);

    assert.ok(!isSkipped(res.workspace));
    const w = res.workspace;
    assert.equal(w.cold.encoded, w.chunks);
    assert.deepEqual([w.warm.encoded, w.warm.cacheHits], [0, w.chunks]);
    assert.deepEqual([w.cold.filesFromIndex, w.warm.filesFromIndex], [0, w.files], 'a new process reads unchanged files from the chunk index');
    assert.equal(w.afterEdit.filesFromIndex, w.files - 1, 'only the edited file is chunked again');
    assert.equal(w.warmSameProcess.encoded, 0);
    assert.ok(w.afterEdit.encoded >= 1 && w.afterEdit.encoded < w.chunks, 'the edit re-encodes only the changed chunks');
    assert.ok(w.cold.peakRssMiB > 0);

    assert.ok(!isSkipped(res.quality), JSON.stringify(res.quality));
    assert.equal(res.quality.rows, 3);
    assert.deepEqual(Object.keys(res.quality.modes.arc.perKind).sort(), ['file', 'params', 'value']);
    assert.deepEqual(res.quality.curve.map((p) => p.distractors), [0, 4, 16, 64]);
    assert.deepEqual(res.quality.modes.full.examples.map((e) => e.id), ['f1', 'p1', 'v1']);
    assert.equal(res.quality.modes.none.errors, 0);
    // The per-mode figures are `arc-context eval`'s on the same rows: ids, order, predictions and
    // scores agree. (It checks agreement, not the merge of p1's two pieces itself: on this random
    // model the earlier one-source-per-piece runner happened to predict the same.)
    for (const mode of ['mixed', 'full'] as const) {
      const ev = await cli('eval', '--model', TINY_ARC, '--data', qa, '--mode', mode, '--json', '--max-new-tokens', '3', '--no-cache');
      assert.equal(ev.code, 0, ev.err);
      const rows = (JSON.parse(ev.out) as { rows: { id: string; prediction: string; correct: boolean }[] }).rows;
      assert.deepEqual((res.quality.modes[mode]?.examples ?? []).map((e) => [e.id, e.prediction, e.correct]), rows.map((x) => [x.id, x.prediction, x.correct]), mode);
    }

    const md = renderMarkdown(res, 'results/x.json', 'ttft.svg');
    assert.match(md, /## 1\. Time to first token/);
    assert.match(md, /\| source tokens \| tokenize/);
    assert.match(ttftSvg(res.latency, res.model.name), /^<svg[\s\S]*<polyline[\s\S]*<\/svg>\n$/);
  } finally {
    t.cleanup();
  }
});

test('bench rejects bad options with a usage error', { skip }, async () => {
  assert.equal((await cli('bench', '--sizes', '10,x')).code, 2);
  assert.equal((await cli('bench', '--sections', 'latency,nope')).code, 2);
});

test('distractor rows: answer file kept, growing lists nested, no other file defines the name', () => {
  const rows = parseQaData(qaRows(), 'qa.jsonl');
  assert.deepEqual(rows.map((r) => r.kind), ['file', 'params', 'value']);
  assert.equal(answerFileIndex(rows[0]!), 1);
  assert.ok(definesName(rows[2]!.files[0]!.text, 'LOW_STOCK_LEVEL'));
  const pool = [file('pkg/config.py'), file('pkg/report.py'), file('pkg/store.py'), file('web/client.ts'), file('web/format.ts')];
  const small = distractorRow(rows[0]!, pool, 1, 7);
  const large = distractorRow(rows[0]!, pool, 3, 7);
  assert.equal(small.files.length, 2);
  assert.equal(large.files.length, 4);
  assert.equal(large.files[large.answer]!.path, 'pkg/config.py');
  for (const f of small.files) assert.ok(large.files.includes(f), 'the smaller list is part of the larger');
  assert.equal(large.files.filter((f) => definesName(f.text, 'parse_config')).length, 1);
});
