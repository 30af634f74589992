// `arc-context ask --json` prints one documented shape (README "CLI") for --root and for --file:
// { answer, citations, skipped, stats: AskStats, truncation }. Real CLI, real tiny-arc package.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import type { AskStats } from '../../src/core/types';
import { cli } from './cli-helper';
import { hasTinyArc, tempDir, TINY_ARC } from './pipeline-helpers';

const skip = hasTinyArc() ? false : 'test/fixtures/tiny-arc is missing';
const WORKSPACE = path.resolve(__dirname, '../fixtures/workspace-py');
const QUESTION = 'Which file defines `render_report`?';

/** Every AskStats field the in-process pipeline reports (optional engine fields aside). */
const STATS_KEYS: (keyof AskStats)[] = [
  'mode', 'provider', 'sourceTokens', 'textTokens', 'compressedVectors', 'contextPositions', 'ratio', 'encodeMs', 'prefillMs',
  'ttftMs', 'totalMs', 'tokensPerSecond', 'generatedTokens', 'cacheHits', 'cacheMisses', 'chunksIncluded', 'textChunks',
  'compressedChunks', 'chunksLeftOut', 'truncatedTokens',
];

interface AskJson {
  answer: string;
  citations: { path: string; startLine: number; endLine: number }[];
  skipped: string;
  stats: AskStats;
  truncation: null | { chunks: number; kept: number; partial: number; dropped: number };
}

function checkShape(j: AskJson, label: string): void {
  assert.deepEqual(Object.keys(j).sort(), ['answer', 'citations', 'skipped', 'stats', 'truncation'], `${label}: top-level keys`);
  assert.equal(typeof j.answer, 'string');
  assert.equal(typeof j.skipped, 'string');
  assert.deepEqual(Object.keys(j.stats).sort(), [...STATS_KEYS].sort(), `${label}: stats keys`);
  for (const c of j.citations) {
    assert.deepEqual(Object.keys(c).sort(), ['endLine', 'path', 'startLine'], `${label}: citation keys`);
    assert.ok(c.startLine >= 1 && c.endLine >= c.startLine);
  }
  const s = j.stats;
  assert.equal(s.chunksIncluded, s.textChunks + s.compressedChunks, `${label}: chunks by form`);
  assert.equal(s.ratio, s.contextPositions > 0 ? s.sourceTokens / s.contextPositions : 0);
  assert.ok(s.textTokens <= s.sourceTokens);
}

test('ask --json: one shape for --root and --file, in every mode', { skip }, async () => {
  const t = tempDir('ask-json');
  try {
    const files = ['pkg/config.py', 'pkg/report.py'].map((f) => path.join(WORKSPACE, f));
    for (const mode of ['mixed', 'arc', 'full', 'none']) {
      const common = ['--model', TINY_ARC, '--provider', 'cpu', '--threads', '1', '--max-new-tokens', '3', '--mode', mode, '--json'];
      const root = await cli('ask', '--root', WORKSPACE, '--cache', t.dir, ...common, QUESTION);
      assert.equal(root.code, 0, root.err);
      const r = JSON.parse(root.out) as AskJson;
      checkShape(r, `--root ${mode}`);
      assert.equal(r.truncation, null);
      assert.equal(r.stats.mode, mode);

      const file = await cli('ask', ...files.flatMap((f) => ['--file', f]), ...common, QUESTION);
      assert.equal(file.code, 0, file.err);
      const f = JSON.parse(file.out) as AskJson;
      checkShape(f, `--file ${mode}`);
      assert.equal(f.stats.mode, mode);
      assert.equal(f.skipped, '');
      assert.equal(f.stats.cacheHits, 0, '--file uses no cache');
      if (mode === 'none') {
        assert.deepEqual(f.citations, []);
        assert.equal(f.truncation, null);
      } else {
        assert.ok(f.truncation, `--file ${mode}: truncation report`);
        assert.equal(f.stats.chunksIncluded + f.stats.chunksLeftOut, f.truncation.chunks);
        assert.ok(f.citations.length > 0, `--file ${mode}: no citations`);
        for (const c of f.citations) assert.ok(c.path.endsWith('pkg/config.py') || c.path.endsWith('pkg/report.py'), c.path);
      }
    }
  } finally {
    t.cleanup();
  }
});
