// `arc-context bench --full-max-tokens N` on the random tiny-arc package: sizes above N source
// tokens measure arc and mixed only, full text is recorded as not measured (a shape of its own,
// apart from "does not fit the window"), and the report says so instead of giving a figure. A
// source tree smaller than a size is measured whole once, and said to be. Timings are not checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { cli } from './cli-helper';
import { renderMarkdown, renderRealistic, ttftSvg } from '../../bench/report';
import { fullMeasured, isSkipped, type BenchResult } from '../../bench/types';
import { TINY_ARC, hasTinyArc, tempDir } from './pipeline-helpers';

const WORKSPACE = path.resolve(__dirname, '../fixtures/workspace-py');
const skip = hasTinyArc() ? false : 'test/fixtures/tiny-arc is missing';

test('--full-max-tokens: full text above N is "not measured", below N measured, beyond the window "does not fit"; a short tree says so', { skip, timeout: 60_000 }, async () => {
  const t = tempDir('bench-full-max');
  try {
    const r = await cli(
      'bench', '--model', TINY_ARC, '--sections', 'latency', '--json', '--no-report', '--out', path.join(t.dir, 'results'),
      '--sizes', '20,60,100000,200000', '--reps', '1', '--max-new-tokens', '3', '--source', WORKSPACE, '--full-max-tokens', '30',
    );
    assert.equal(r.code, 0, r.err);
    const res = JSON.parse(r.out) as BenchResult;
    assert.ok(!isSkipped(res.latency), JSON.stringify(res.latency));
    const lat = res.latency;
    assert.equal(lat.fullMaxTokens, 30);
    assert.deepEqual(lat.sizes.map((s) => s.targetTokens), [20, 60, 100000]);

    const [small, mid, whole] = lat.sizes as [typeof lat.sizes[0], typeof lat.sizes[0], typeof lat.sizes[0]];
    assert.ok(small.sourceTokens <= 30 && fullMeasured(small.full), 'at or below N: full measured');
    assert.ok(small.ratios !== null);

    assert.ok(mid.sourceTokens > 30);
    assert.ok('measured' in mid.full, JSON.stringify(mid.full));
    assert.deepEqual(mid.full, { measured: false, reason: 'above --full-max-tokens', fullMaxTokens: 30, contextTokens: mid.full.contextTokens, budget: lat.budget });
    assert.ok(mid.full.contextTokens <= lat.budget, 'it would fit the window');
    assert.equal(mid.ratios, null);
    assert.ok(mid.arcWarm.ttftMs.samples.length === 1 && mid.arcCold.ttftMs.samples.length === 1 && mid.mixedWarm?.ttftMs.samples.length === 1, 'arc and mixed still measured');

    assert.equal(whole.wholeTree, true, 'the fixture tree is far smaller than 100000 tokens');
    assert.ok(whole.sourceTokens < 100000);
    assert.ok('fits' in whole.full && whole.full.fits === false, 'beyond the window: does not fit, not "not measured"');
    assert.equal(small.wholeTree, undefined);
    assert.equal(lat.notMeasured?.length, 1);
    assert.equal(lat.notMeasured![0]!.targetTokens, 200000);
    assert.match(lat.notMeasured![0]!.reason, /source tree holds only \d+ source tokens, measured whole at size 100000/);
    assert.match(r.err, /holds only \d+ source tokens, fewer than the 100000 asked for/);

    // Sections 1 and 7 and the SVG: the reason in place of a number, never an estimate.
    const md7 = renderRealistic({ file: 'bench/results/x.json', result: res, svg: null });
    const row = md7.split('\n').find((l) => l.startsWith(`| ${mid.sourceTokens} |`))!;
    assert.ok(row.includes('| not measured (above --full-max-tokens 30) |'), row);
    assert.equal(row.split('|')[6]!.trim(), '–', 'no full / arc ratio');
    assert.match(md7, /Full text was not measured at \d+ source tokens: above `--full-max-tokens 30`/);
    assert.match(md7, /Size 200000 was not measured: the source tree holds only/);
    assert.match(md7, /Size 100000: the source tree ran out/);
    const md1 = renderMarkdown(res, 'bench/results/x.json', null);
    assert.ok(md1.includes(`| ${mid.sourceTokens} |`) && md1.includes('not measured (above --full-max-tokens 30)'));
    assert.match(md1, /does not fit \(\d+ > \d+\)/);
    const svg = ttftSvg(lat, res.model.name);
    assert.match(svg, /full text \(up to 30 tokens\)/);
    assert.ok(!svg.includes(`full text (up to 30 tokens): ${mid.sourceTokens} tokens`), 'no full-text point above N');
  } finally {
    t.cleanup();
  }
});

test('--full-max-tokens takes a positive integer', { skip }, async () => {
  for (const bad of ['0', 'x', '-5', '1.5']) {
    const r = await cli('bench', `--full-max-tokens=${bad}`);
    assert.equal(r.code, 2, `${bad}: ${r.err}`);
    assert.match(r.err, /--full-max-tokens must be an integer >= 1/);
  }
});
