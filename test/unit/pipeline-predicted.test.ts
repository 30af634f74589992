// Select before compressing plans the window from predicted vector counts: they must equal what
// the real encoder returns, for every chunk length it accepts, with and without encoder.addBos.
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ArcModel } from '../../src/core/api';
import { predictedVectors } from '../../src/core/ask';
import { loadModel } from '../../src/core/model';
import { NO_TINY, TINY, copyTiny } from './core-fixture';

async function check(model: ArcModel): Promise<void> {
  const lengths = Array.from({ length: model.encoder.maxChunkTokens }, (_, i) => i + 1);
  const out = await model.encoder.encode(lengths.map((n) => Array.from({ length: n }, (_, k) => 3 + (k % 50))));
  lengths.forEach((n, i) => assert.equal(predictedVectors(model, n), out[i].count, `${n} tokens`));
}

test('predictedVectors equals the encoder\'s count for every chunk length (tiny-arc, addBos off and on)', { skip: NO_TINY }, async () => {
  const dir = await copyTiny();
  const file = join(dir, 'arc-model.json');
  const m = JSON.parse(await readFile(file, 'utf8')) as { encoder: { addBos: boolean } };
  m.encoder.addBos = true;
  await writeFile(file, JSON.stringify(m));
  const plain = await loadModel(TINY, { provider: 'cpu', threads: 1 });
  const withBos = await loadModel(dir, { provider: 'cpu', threads: 1 });
  try {
    await check(plain);
    await check(withBos);
  } finally {
    await plain.dispose();
    await withBos.dispose();
    await rm(dir, { recursive: true });
  }
});
