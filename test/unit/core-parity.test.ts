// Parity with the Python reference through the golden outputs of test/fixtures/tiny-arc:
// encoder vectors and <Cont>, decoder logits with and without the KV cache, greedy decoding.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ArcModel } from '../../src/core/api';
import { OnnxDecoder } from '../../src/core/decoder';
import { argmax } from '../../src/core/generate';
import { loadModel } from '../../src/core/model';
import { NO_TINY, TINY, golden, relDiff, type Golden } from './core-fixture';

const TOL = 1e-5;
let model: ArcModel;
let g: Golden;

before(async () => {
  if (NO_TINY) return;
  g = golden();
  model = await loadModel(TINY, { provider: 'cpu', threads: 1 });
});
after(async () => model?.dispose());

function decoder(): OnnxDecoder {
  assert.ok(model.decoder instanceof OnnxDecoder);
  return model.decoder;
}

test('encoder: each golden case alone matches embeddings and group sizes', { skip: NO_TINY }, async () => {
  for (const c of g.encoder) {
    const [out] = await model.encoder.encode([c.token_ids]);
    assert.deepEqual(out!.groups.map(([a, b]) => b - a), c.group_sizes);
    assert.equal(out!.count, c.embeddings.length);
    const d = relDiff(out!.vectors, c.embeddings.flat());
    assert.ok(d <= TOL, `L=${c.token_ids.length}: rel diff ${d}`);
  }
});

test('encoder: all golden cases in one padded batch match too', { skip: NO_TINY }, async () => {
  const out = await model.encoder.encode(g.encoder.map((c) => c.token_ids));
  out.forEach((o, i) => {
    const d = relDiff(o.vectors, g.encoder[i]!.embeddings.flat());
    assert.ok(d <= TOL, `case ${i}: rel diff ${d}`);
  });
});

test('encoder: <Cont> matches', { skip: NO_TINY }, () => {
  const d = relDiff(model.encoder.cont, g.cont);
  assert.ok(d <= TOL, `rel diff ${d}`);
});

test('decoder: one forward over the prompt matches logits_full at every position', { skip: NO_TINY }, async () => {
  const ids = g.decoder.input_ids;
  const { logits } = await decoder().prefill([{ kind: 'tokens', ids }]);
  const d = relDiff(logits, g.decoder.logits_full.flat());
  assert.ok(d <= TOL, `rel diff ${d}`);
});

test('decoder: prefill of s-1 tokens then one cached step matches logits_last', { skip: NO_TINY }, async () => {
  const ids = g.decoder.input_ids;
  const { state } = await decoder().prefill([{ kind: 'tokens', ids: ids.slice(0, -1) }]);
  const last = await decoder().step(state, ids[ids.length - 1]!);
  const d = relDiff(last, g.decoder.logits_last);
  assert.ok(d <= TOL, `rel diff ${d}`);
});

test('decoder: token-by-token through the KV cache matches every row of logits_full', { skip: NO_TINY }, async () => {
  const ids = g.decoder.input_ids;
  const dec = decoder();
  const { logits, state } = await dec.prefill([{ kind: 'tokens', ids: [ids[0]!] }]);
  const rows: Float32Array[] = [logits];
  for (const id of ids.slice(1)) rows.push(await dec.step(state, id));
  assert.equal(state.length, ids.length);
  rows.forEach((r, i) => {
    const d = relDiff(r, g.decoder.logits_full[i]!);
    assert.ok(d <= TOL, `position ${i}: rel diff ${d}`);
  });
});

test('decoder: a prefix given as embedded vectors equals the same prefix given as tokens', { skip: NO_TINY }, async () => {
  const ids = g.decoder.input_ids;
  const dec = decoder();
  const rows = await dec.embed(ids.slice(1, 9));
  const mixed = await dec.prefill([
    { kind: 'tokens', ids: [ids[0]!] },
    { kind: 'vectors', data: rows, count: 8 },
    { kind: 'tokens', ids: ids.slice(9) },
  ]);
  assert.ok(relDiff(mixed.logits, g.decoder.logits_full.flat()) <= TOL);
});

test('greedy: generated ids and streamed text equal the golden generations', { skip: NO_TINY }, async () => {
  const dec = decoder();
  for (const c of g.greedy) {
    const { logits, state } = await dec.prefill([{ kind: 'tokens', ids: c.prompt_ids }]);
    const vocab = dec.config.vocabSize;
    let next = argmax(logits.subarray(logits.length - vocab));
    const ids: number[] = [];
    while (ids.length < c.max_new_tokens) {
      ids.push(next);
      if (ids.length < c.max_new_tokens) next = argmax(await dec.step(state, next));
    }
    assert.deepEqual(ids, c.output_ids);

    const it = dec.generate([{ kind: 'tokens', ids: c.prompt_ids }], { maxNewTokens: c.max_new_tokens, stop: [] });
    let text = '';
    let r = await it.next();
    while (!r.done) {
      text += r.value;
      r = await it.next();
    }
    assert.equal(text, model.tokenizer.decode(c.output_ids));
    assert.equal(r.value.generatedTokens, c.max_new_tokens);
    assert.equal(r.value.prefixPositions, c.prompt_ids.length);
    assert.ok(r.value.prefillMs > 0 && r.value.ttftMs >= r.value.prefillMs && r.value.totalMs >= r.value.ttftMs);
  }
});
