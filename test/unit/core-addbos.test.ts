// encoder.addBos: a copy of the tiny package with addBos true must encode every chunk with the
// decoder's BOS id in front (so the pooling groups count the extra token), take one token less
// per chunk, and refuse to load without a decoder to take the BOS id from.
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { ArcModel } from '../../src/core/api';
import { groupRanges, groupSizes } from '../../src/core/encoder';
import { ArcError } from '../../src/core/errors';
import { validateManifest } from '../../src/core/manifest';
import { loadModel } from '../../src/core/model';
import { NO_TINY, TINY, copyTiny, golden, relDiff } from './core-fixture';

const TOL = 1e-5;
let plain: ArcModel;
let withBos: ArcModel;
let bosDir: string;

async function editManifest(dir: string, edit: (m: Record<string, any>) => void): Promise<void> {
  const file = join(dir, 'arc-model.json');
  const m = JSON.parse(await readFile(file, 'utf8')) as Record<string, any>;
  edit(m);
  await writeFile(file, JSON.stringify(m));
}

before(async () => {
  if (NO_TINY) return;
  bosDir = await copyTiny();
  await editManifest(bosDir, (m) => (m.encoder.addBos = true));
  plain = await loadModel(TINY, { provider: 'cpu', threads: 1 });
  withBos = await loadModel(bosDir, { provider: 'cpu', threads: 1 });
});
after(async () => {
  await plain?.dispose();
  await withBos?.dispose();
  if (bosDir) await rm(bosDir, { recursive: true });
});

test('addBos: vectors are those of [BOS, ...ids], with groups over ids.length + 1 tokens', { skip: NO_TINY }, async () => {
  const bos = withBos.manifest.decoder!.bosTokenId;
  const x = withBos.encoder.poolingFactor;
  // 8 tokens pool to 2 vectors without BOS and to 3 with it; the golden cases add odd lengths.
  const cases = [[5, 6, 7, 8, 9, 10, 11, 12], ...golden().encoder.map((c) => c.token_ids)];
  for (const ids of cases) {
    const [got] = await withBos.encoder.encode([ids]);
    const [ref] = await plain.encoder.encode([[bos, ...ids]]);
    const sizes = groupSizes(ids.length + 1, x);
    assert.equal(got!.count, sizes.length, `L=${ids.length}`);
    assert.deepEqual(got!.groups, groupRanges(sizes));
    assert.equal(got!.count, ref!.count);
    const d = relDiff(got!.vectors, ref!.vectors);
    assert.ok(d <= TOL, `L=${ids.length}: rel diff ${d} against encoding [BOS, ...ids]`);
  }
  const [eight] = await plain.encoder.encode([cases[0]!]);
  assert.equal(eight!.count, 2, 'without BOS 8 tokens are 2 vectors');
});

test('addBos: a padded batch gives the same vectors as one chunk at a time', { skip: NO_TINY }, async () => {
  const cases = golden().encoder.map((c) => c.token_ids);
  const batched = await withBos.encoder.encode(cases);
  for (const [i, ids] of cases.entries()) {
    const [alone] = await withBos.encoder.encode([ids]);
    assert.deepEqual(batched[i]!.groups, alone!.groups);
    assert.ok(relDiff(batched[i]!.vectors, alone!.vectors) <= TOL, `case ${i}`);
  }
});

test('addBos: the BOS slot counts toward maxChunkTokens', { skip: NO_TINY }, async () => {
  const limit = withBos.manifest.encoder.maxChunkTokens;
  assert.equal(plain.encoder.maxChunkTokens, limit);
  assert.equal(withBos.encoder.maxChunkTokens, limit - 1);
  const longest = Array.from({ length: limit - 1 }, (_, i) => 3 + (i % 50));
  const [c] = await withBos.encoder.encode([longest]);
  assert.equal(c!.groups.at(-1)![1], limit);
  await assert.rejects(withBos.encoder.encode([[...longest, 7]]), (e: unknown) => e instanceof ArcError && e.code === 'context-too-large' && e.message.includes('BOS'));
});

test('addBos: the model identity (cache key) differs from the same package without it', { skip: NO_TINY }, () => {
  assert.notEqual(withBos.identity, plain.identity);
});

test('addBos without a decoder (no BOS id) is a load-time model-corrupt error', { skip: NO_TINY }, async () => {
  const dir = await copyTiny();
  try {
    await editManifest(dir, (m) => {
      m.encoder.addBos = true;
      m.decoder = null;
    });
    await assert.rejects(loadModel(dir, { provider: 'cpu' }), (e: unknown) => {
      assert.ok(e instanceof ArcError, String(e));
      assert.equal(e.code, 'model-corrupt');
      assert.ok(e.message.includes('encoder.addBos') && e.message.includes('bosTokenId'), e.message);
      return true;
    });
  } finally {
    await rm(dir, { recursive: true });
  }
  const m = JSON.parse(await readFile(join(TINY, 'arc-model.json'), 'utf8')) as Record<string, any>;
  m.encoder.addBos = true;
  m.encoder.maxChunkTokens = 1;
  assert.throws(() => validateManifest(m, '/pkg/arc-model.json'), (e: unknown) => e instanceof ArcError && e.message.includes('"encoder.maxChunkTokens"'));
});
