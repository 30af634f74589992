// The arc-context CLI: encode (also on converted encoder-only packages, against the reference
// implementation's outputs), ask in every mode, exit codes, and no telemetry written.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { cli } from './cli-helper';
import { NO_TINY, REPO, TINY, golden, relDiff } from './core-fixture';


test('usage errors exit 2 with one line on stderr; no command lists the commands', async () => {
  const none = await cli();
  assert.equal(none.code, 2);
  assert.match(none.err, /encode[\s\S]*ask/);
  const unknown = await cli('frobnicate');
  assert.equal(unknown.code, 2);
  const bad = await cli('encode', '--model', TINY, '--token-ids', '1,x');
  assert.equal(bad.code, 2);
  assert.equal(bad.err.trim().split('\n').length, 1);
  assert.match(bad.err, /--token-ids/);
  assert.equal((await cli('encode', '--token-ids', '1')).code, 2);
  assert.equal((await cli('ask', '--model', TINY, '--mode', 'fast', 'q')).code, 2);
  assert.equal((await cli('ask', '--model', TINY, '--file', 'x')).code, 2); // no question
  assert.equal((await cli('encode', '--model', TINY, '--token-ids', '1', '--provider', 'tpu')).code, 2);
  const help = await cli('ask', '--help');
  assert.equal(help.code, 0);
  assert.match(help.out, /--mode/);
});

test('runtime errors exit 1 with the ArcError code and the file on one line', async () => {
  const missing = await cli('encode', '--model', join(REPO, 'no-such-model'), '--token-ids', '1');
  assert.equal(missing.code, 1);
  assert.match(missing.err, /^arc-context encode: error \[model-missing\]: .*no-such-model/);
  assert.equal(missing.err.trim().split('\n').length, 1);
});

test('encode --json reproduces the golden encoder output of tiny-arc', { skip: NO_TINY }, async () => {
  const g = golden();
  const c = g.encoder[3]!;
  const r = await cli('encode', '--model', TINY, '--token-ids', c.token_ids.join(','), '--provider', 'cpu', '--threads', '1', '--json');
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out) as { embeddings: number[][]; cont: number[]; groupSizes: number[]; provider: string };
  assert.deepEqual(j.groupSizes, c.group_sizes);
  assert.equal(j.provider, 'cpu');
  assert.ok(relDiff(j.embeddings.flat(), c.embeddings.flat()) <= 1e-5);
  assert.ok(relDiff(j.cont, g.cont) <= 1e-5);
  const wrong = await cli('encode', '--model', TINY, '--token-ids', '1,2', '--decoder-index', '1', '--json');
  assert.equal(wrong.code, 1);
  assert.match(wrong.err, /decoder index 0, not 1.*[Cc]onvert/);
  assert.equal(wrong.out, '');
});

// Packages converted by tools/convert_kyutai.py from ../shared/fixtures/kyutai-tiny, whose
// reference.json was computed by Kyutai's own code.
const REFERENCE = join(REPO, '..', 'shared', 'fixtures', 'kyutai-tiny', 'reference.json');
for (const index of [0, 1]) {
  const pkg = join(REPO, 'test', 'fixtures', `kyutai-tiny-pkg-${index}`);
  const skip = !existsSync(join(pkg, 'arc-model.json')) ? `${pkg} not present` : !existsSync(REFERENCE) ? `${REFERENCE} not present` : false;
  test(`encode on the converted kyutai-tiny package (decoder ${index}) reproduces reference.json`, { skip }, async () => {
    const ref = JSON.parse(readFileSync(REFERENCE, 'utf8')) as {
      cases: { token_ids: number[]; group_sizes: number[]; embeddings: Record<string, number[][]> }[];
      cont: Record<string, number[]>;
    };
    for (const c of ref.cases) {
      const r = await cli('encode', '--model', pkg, '--token-ids', c.token_ids.join(','), '--decoder-index', String(index), '--provider', 'cpu', '--json');
      assert.equal(r.code, 0, r.err);
      const j = JSON.parse(r.out) as { embeddings: number[][]; cont: number[]; groupSizes: number[] };
      assert.deepEqual(j.groupSizes, c.group_sizes);
      const d = relDiff(j.embeddings.flat(), c.embeddings[String(index)]!.flat());
      assert.ok(d <= 1e-5, `L=${c.token_ids.length}: rel diff ${d}`);
      const dc = relDiff(j.cont, ref.cont[String(index)]!);
      assert.ok(dc <= 1e-5, `cont rel diff ${dc}`);
    }
  });
}

test('ask --json in mixed, arc, full and none modes reports the figures', { skip: NO_TINY }, async () => {
  const files = ['src/core/errors.ts', 'src/core/index.ts'].map((f) => join(REPO, f));
  const results: Record<string, Record<string, unknown>> = {};
  for (const mode of ['mixed', 'arc', 'full', 'none']) {
    const args = ['ask', '--model', TINY, '--mode', mode, '--json', '--max-new-tokens', '6', '--provider', 'cpu'];
    for (const f of files) args.push('--file', f);
    const r = await cli(...args, 'What is the value of `X`?');
    assert.equal(r.code, 0, r.err);
    // The one ask --json shape (cli-ask-json.test.ts): figures under stats, truncation beside them.
    const parsed = JSON.parse(r.out) as { answer: string; truncation: unknown; stats: Record<string, unknown> };
    const j: Record<string, unknown> = { answer: parsed.answer, truncation: parsed.truncation, ...parsed.stats };
    for (const k of ['answer', 'mode', 'sourceTokens', 'textTokens', 'compressedVectors', 'contextPositions', 'textChunks', 'compressedChunks', 'ratio', 'encodeMs', 'prefillMs', 'ttftMs', 'totalMs', 'provider']) {
      assert.ok(k in j, `missing ${k}`);
    }
    // The ratio is over the whole context: source tokens read per decoder position.
    assert.equal(j.ratio, (j.contextPositions as number) > 0 ? (j.sourceTokens as number) / (j.contextPositions as number) : 0);
    assert.equal(j.mode, mode);
    assert.equal(j.provider, 'cpu');
    assert.equal(typeof j.answer, 'string');
    assert.ok((j.generatedTokens as number) <= 6);
    results[mode] = j;
  }
  const arc = results.arc!;
  assert.ok((arc.sourceTokens as number) > 100);
  assert.ok((arc.compressedVectors as number) > 0 && (arc.encodeMs as number) > 0);
  // The 128-position window cannot hold both files even compressed: chunks were left out.
  assert.ok((arc.truncation as { dropped: number }).dropped > 0);
  // x4 pooling, less one <Cont> position per chunk.
  assert.ok((arc.ratio as number) > 3 && (arc.ratio as number) <= 4, `ratio ${arc.ratio}`);
  assert.equal(arc.contextPositions, (arc.compressedVectors as number) + (arc.compressedChunks as number));
  const mixed = results.mixed!;
  assert.ok((mixed.textChunks as number) + (mixed.compressedChunks as number) >= 1);
  assert.ok((mixed.truncation as { dropped: number }).dropped > 0, 'the window cannot hold both files');
  assert.equal(results.full!.ratio, 1);
  assert.equal(results.full!.compressedVectors, 0);
  assert.ok((results.full!.truncation as { cutPositions: number }).cutPositions > 0);
  assert.equal(results.none!.sourceTokens, 0);
  assert.equal(results.none!.contextPositions, 0);
  assert.equal(results.none!.ratio, 0);
});

test('ask streams the answer to stdout and reports a cut context on stderr', { skip: NO_TINY }, async () => {
  const r = await cli('ask', '--model', TINY, '--file', join(REPO, 'src/core/errors.ts'), '--mode', 'full', '--max-new-tokens', '5', 'What is `X`?');
  assert.equal(r.code, 0, r.err);
  assert.ok(r.out.endsWith('\n'));
  // The stop string "\n" ends the answer, so the only newline is the one the CLI adds.
  assert.equal(r.out.indexOf('\n'), r.out.length - 1);
  assert.match(r.err, /context cut to fit/);
});

test('the real entry point runs as a process and writes no ONNX Runtime telemetry', { skip: NO_TINY }, async () => {
  const home = await mkdtemp(join(tmpdir(), 'arc-home-'));
  try {
    const run = promisify(execFile);
    const { stdout } = await run(process.execPath, ['--import', 'tsx', join(REPO, 'src', 'cli.ts'), 'encode', '--model', TINY, '--token-ids', '5,6,7,8,9', '--json'], {
      cwd: REPO,
      env: { ...process.env, HOME: home, ORT_DISABLE_TELEMETRY: '' },
    });
    const j = JSON.parse(stdout) as { groupSizes: number[] };
    assert.deepEqual(j.groupSizes, [3, 2]);
    // Without the switch ONNX Runtime creates ~/.cache/Microsoft/DeveloperTools/.onnxruntime.
    assert.deepEqual(await readdir(home), []);
    const bad = await run(process.execPath, ['--import', 'tsx', join(REPO, 'src', 'cli.ts'), 'encode'], { cwd: REPO }).catch((e: { code: number; stderr: string }) => e);
    assert.equal((bad as { code: number }).code, 2);
  } finally {
    await rm(home, { recursive: true });
  }
});
