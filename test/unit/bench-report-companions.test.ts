// BENCHMARKS.md's sections 6 and 7 from companion runs (bench/report-companions.json): generated
// from the result JSONs, nothing typed by hand.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { loadCompanions, renderMarkdown, renderRealistic, renderScalingRuns } from '../../bench/report';
import { medianRun } from '../../bench/scaling';
import type { BenchResult } from '../../bench/types';
import { tempDir } from './pipeline-helpers';

const REPO = path.resolve(__dirname, '../..');
const REALISTIC = 'bench/results/2026-12-02T02-51-26Z-realistic-103m-32k.json';
const SCALING = 'bench/results/2026-12-02T00-00-51Z-scaling-50mb.json';
// A full run with its own scaling trees (1, 10, 50 MB): fixed, not latest.json, which a later run may write without them.
const FULL_WITH_SCALING = 'bench/results/2026-12-02T03-27-09Z.json';
const read = (rel: string) => JSON.parse(readFileSync(path.join(REPO, rel), 'utf8')) as BenchResult;

test('section 7 is rendered from the realistic run: one row per size, ratios and positions from its JSON', () => {
  const r = read(REALISTIC);
  const md = renderRealistic({ file: REALISTIC, result: r, svg: 'bench/x.svg' });
  assert.match(md, /^## 7\./);
  assert.match(md, /Random weights/);
  assert.ok(!('skipped' in r.latency));
  if ('skipped' in r.latency) return;
  for (const s of r.latency.sizes) {
    const row = md.split('\n').find((l) => l.startsWith(`| ${s.sourceTokens} |`));
    assert.ok(row, `row for ${s.sourceTokens}`);
    assert.ok(row.includes(`${s.arcWarm.ttftMs.median.toFixed(0)} ms`));
    if (s.ratios) assert.ok(row.includes(s.ratios.ttftFullOverArcWarm.toFixed(2)));
  }
  assert.match(md, /!\[.*\]\(bench\/x\.svg\)/);
});

test('section 6 joins the trees of several runs, each row naming its run', () => {
  const main = read(FULL_WITH_SCALING);
  const extra = read(SCALING);
  const runs = [main, extra].flatMap((result, k) => (result.scaling && !('skipped' in result.scaling) ? [{ file: k === 0 ? 'main.json' : SCALING, result, section: result.scaling }] : []));
  const md = renderScalingRuns(runs);
  assert.match(md, /\| 50\.00 MB \|.*\| \[2\] \|/);
  assert.match(md, /\[2\] `bench\/results\/2026-12-02T00-00-51Z-scaling-50mb\.json`/);
});

test('companions are read from bench/report-companions.json; the header names every run', () => {
  const t = tempDir('report-companions');
  try {
    mkdirSync(path.join(t.dir, 'bench', 'results'), { recursive: true });
    for (const rel of [REALISTIC, SCALING]) writeFileSync(path.join(t.dir, rel), readFileSync(path.join(REPO, rel)));
    writeFileSync(path.join(t.dir, 'bench', 'report-companions.json'), JSON.stringify({ realistic: REALISTIC, scaling: [SCALING] }));
    const c = loadCompanions(t.dir);
    assert.equal(c.realistic?.file, REALISTIC);
    assert.deepEqual(c.scaling?.map((s) => s.file), [SCALING]);
    const md = renderMarkdown(read('bench/results/latest.json'), 'bench/results/latest.json', null, { realistic: { ...c.realistic!, svg: null }, scaling: c.scaling });
    assert.match(md, /and the runs named in `bench\/report-companions\.json`/);
    assert.match(md, /## 7\./);
    assert.deepEqual(loadCompanions(path.join(t.dir, 'nothing-here')), {});
  } finally {
    t.cleanup();
  }
});

test('section 6 shows the long-lived process column and its ratio when a run measured it, a dash for runs before it', () => {
  const extra = read(FULL_WITH_SCALING);
  assert.ok(extra.scaling && !('skipped' in extra.scaling));
  if (!extra.scaling || 'skipped' in extra.scaling) return;
  const before = renderScalingRuns([{ file: FULL_WITH_SCALING, result: extra, section: extra.scaling }]);
  assert.match(before, /warm TTFT mixed, long-lived process/);
  assert.doesNotMatch(before, /long-lived process \(as the extension asks\)/);
  // The same run as if it had measured the long-lived asks: the first ask of each tree is left out of the figure.
  const asks: Record<number, number[]> = { 1: [90, 40, 44, 42], 10: [120, 60, 70, 65], 50: [300, 100, 90, 95] };
  const trees = extra.scaling.trees.map((t) => ('skipped' in t ? t : { ...t, longLived: { ttftMs: asks[t.targetMB] ?? [1, 2] } }));
  const md = renderScalingRuns([{ file: FULL_WITH_SCALING, result: extra, section: { ...extra.scaling, trees } }]);
  const row50 = md.split('\n').find((l) => l.startsWith('| 50.'));
  assert.ok(row50?.includes('| 95 ms |'), row50);
  assert.match(md, /long-lived process \(as the extension asks\): 42 ms at 1 MB, 65 ms at 10 MB, 95 ms at 50 MB; 1\.55x the 1 MB tree's at 10 MB, 2\.26x the 1 MB tree's at 50 MB\./);
});

test('scaling warm figure: the process with the median time to first token is kept, whole (a burst in one process does not become the figure)', () => {
  const run = (ttftMs: number, wallMs: number) => ({ ttftMs, wallMs, maxRssMiB: 100, encodeMs: 0, prefillMs: 50, encoded: 0, cacheHits: 4, chunksIncluded: 5 });
  assert.deepEqual(medianRun([run(3311, 3700), run(271, 600), run(300, 650)]), run(300, 650));
  assert.deepEqual(medianRun([run(90, 1), run(80, 2)]), run(80, 2));
  assert.throws(() => medianRun([]), /no runs/);
});
