// Broken model folders give an ArcError that names the broken file (and field), and the
// provider ladder skips what this machine lacks (no GPU, no CUDA libraries) and reports cpu.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ArcError } from '../../src/core/errors';
import { validateManifest } from '../../src/core/manifest';
import { loadModel } from '../../src/core/model';
import { providerLadder, providerPrecheck } from '../../src/core/providers';
import { NO_TINY, TINY, copyTiny } from './core-fixture';

async function rejectsWith(p: Promise<unknown>, code: string, ...mentions: string[]): Promise<ArcError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ArcError, `expected ArcError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const m of mentions) assert.ok(e.message.includes(m), `"${e.message}" should mention ${m}`);
    assert.ok(!e.message.includes('\n'), 'one line');
    return e;
  }
  assert.fail('expected a rejection');
}

async function manifestOf(dir: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(join(dir, 'arc-model.json'), 'utf8')) as Record<string, unknown>;
}

test('missing folder and missing manifest are model-missing errors naming the path', async () => {
  const empty = await mkdtemp(join(tmpdir(), 'arc-empty-'));
  await rejectsWith(loadModel(join(empty, 'nope')), 'model-missing', join(empty, 'nope'));
  await rejectsWith(loadModel(empty), 'model-missing', join(empty, 'arc-model.json'));
  await rm(empty, { recursive: true });
});

test('corrupt manifest JSON is model-corrupt naming the file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'arc-bad-'));
  await writeFile(join(dir, 'arc-model.json'), '{"format": "arc-model/1", ');
  await rejectsWith(loadModel(dir), 'model-corrupt', join(dir, 'arc-model.json'), 'not valid JSON');
  await rm(dir, { recursive: true });
});

test('manifest validation names the broken field', { skip: NO_TINY }, async () => {
  const good = await manifestOf(TINY);
  const bad = (edit: (m: Record<string, any>) => void): unknown => {
    const m = structuredClone(good) as Record<string, any>;
    edit(m);
    return m;
  };
  const cases: [unknown, string][] = [
    [bad((m) => (m.format = 'arc-model/2')), '"format"'],
    [bad((m) => delete m.encoder.poolingFactor), '"encoder.poolingFactor" is missing'],
    [bad((m) => (m.encoder.maxChunkTokens = 1.5)), '"encoder.maxChunkTokens" must be an integer'],
    [bad((m) => (m.encoder.file = '../elsewhere.onnx')), '"encoder.file"'],
    [bad((m) => delete m.decoder), '"decoder" is missing'],
    [bad((m) => (m.decoder.hiddenSize = 7)), '"decoder.hiddenSize"'],
    [bad((m) => (m.prompt.questionTemplate = 'Q:')), '"prompt.questionTemplate"'],
    [bad((m) => (m.prompt.stop = ['', 'x'])), '"prompt.stop"'],
    [bad((m) => (m.encoder.addBos = 'no')), '"encoder.addBos"'],
  ];
  for (const [raw, mention] of cases) {
    assert.throws(() => validateManifest(raw, '/pkg/arc-model.json'), (e: unknown) => {
      assert.ok(e instanceof ArcError && e.code === 'model-corrupt');
      assert.ok(e.message.includes('/pkg/arc-model.json') && e.message.includes(mention), e.message);
      return true;
    });
  }
  const ok = validateManifest(good, 'x');
  assert.equal(ok.encoder.poolingFactor, (good.encoder as { poolingFactor: number }).poolingFactor);
});

test('missing, empty and garbage ONNX files are errors naming the file', { skip: NO_TINY }, async () => {
  const dir = await copyTiny();
  try {
    await rm(join(dir, 'encoder.onnx'));
    await rejectsWith(loadModel(dir), 'model-missing', join(dir, 'encoder.onnx'), 'encoder.file');

    await writeFile(join(dir, 'encoder.onnx'), await readFile(join(TINY, 'encoder.onnx')));
    await truncate(join(dir, 'decoder.onnx'), 0);
    await rejectsWith(loadModel(dir, { provider: 'cpu' }), 'model-corrupt', join(dir, 'decoder.onnx'), 'empty');

    await writeFile(join(dir, 'decoder.onnx'), 'this is not an onnx model\n'.repeat(50));
    await rejectsWith(loadModel(dir, { provider: 'cpu' }), 'model-corrupt', join(dir, 'decoder.onnx'));

    // A truncated copy: a real start, cut off mid-way.
    const bytes = await readFile(join(TINY, 'embed.onnx'));
    await writeFile(join(dir, 'decoder.onnx'), await readFile(join(TINY, 'decoder.onnx')));
    await writeFile(join(dir, 'embed.onnx'), bytes.subarray(0, bytes.length >> 1));
    await rejectsWith(loadModel(dir, { provider: 'cpu' }), 'model-corrupt', join(dir, 'embed.onnx'));
  } finally {
    await rm(dir, { recursive: true });
  }
});

test('an ONNX file with the wrong inputs fails the contract check naming file and inputs', { skip: NO_TINY }, async () => {
  const dir = await copyTiny();
  try {
    // embed.onnx in the encoder's place: a valid model that breaks the I/O contract.
    await writeFile(join(dir, 'encoder.onnx'), await readFile(join(TINY, 'embed.onnx')));
    await rejectsWith(loadModel(dir, { provider: 'cpu' }), 'model-corrupt', join(dir, 'encoder.onnx'), 'attention_mask', 'pool_matrix');
  } finally {
    await rm(dir, { recursive: true });
  }
});

test('missing or corrupt tokenizer is named', { skip: NO_TINY }, async () => {
  const dir = await copyTiny();
  try {
    await writeFile(join(dir, 'tokenizer.json'), '{"model": ');
    await rejectsWith(loadModel(dir), 'model-corrupt', join(dir, 'tokenizer.json'));
    await rm(join(dir, 'tokenizer.json'));
    await rejectsWith(loadModel(dir), 'model-missing', join(dir, 'tokenizer.json'));
  } finally {
    await rm(dir, { recursive: true });
  }
});

test('provider ladder order per platform, preference first', () => {
  assert.deepEqual(providerLadder('auto', 'linux'), ['cuda', 'webgpu', 'cpu']);
  assert.deepEqual(providerLadder('auto', 'win32'), ['cuda', 'webgpu', 'dml', 'cpu']);
  assert.deepEqual(providerLadder('auto', 'darwin'), ['cuda', 'webgpu', 'coreml', 'cpu']);
  assert.deepEqual(providerLadder('webgpu', 'linux'), ['webgpu', 'cuda', 'cpu']);
  assert.deepEqual(providerLadder('cpu', 'linux'), ['cpu', 'cuda', 'webgpu']);
  assert.match(providerPrecheck('dml', 'linux') ?? '', /Windows/);
  assert.match(providerPrecheck('coreml', 'linux') ?? '', /macOS/);
  assert.equal(providerPrecheck('cpu'), null);
});

// This machine has no GPU and no CUDA provider libraries: real skips, nothing faked.
for (const provider of ['cuda', 'webgpu'] as const) {
  test(`requesting ${provider} on this GPU-less machine is skipped with a reason and the model runs on cpu`, { skip: NO_TINY }, async (t) => {
    if (provider === 'cuda' && providerPrecheck('cuda') === null) t.skip('CUDA libraries are installed here');
    const lines: string[] = [];
    const model = await loadModel(TINY, { provider, threads: 1, log: (l) => lines.push(l) });
    try {
      if (model.provider !== 'cpu') t.skip(`${provider} initialised here (${model.provider})`);
      assert.equal(model.provider, 'cpu');
      assert.match(lines[0]!, new RegExp(`^provider ${provider}: skipped: .+`));
      assert.equal(lines[lines.length - 1], 'provider cpu: using it');
      const [c] = await model.encoder.encode([[5, 6, 7]]);
      assert.equal(c!.count, 1);
    } finally {
      await model.dispose();
    }
  });
}

test('threads must be a positive integer', { skip: NO_TINY }, async () => {
  await rejectsWith(loadModel(TINY, { provider: 'cpu', threads: 0 }), 'internal', 'threads');
});
