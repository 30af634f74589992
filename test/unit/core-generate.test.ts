// Token choice, text streaming (multi-byte characters, stop strings) and the generation loop on
// the tiny random model: EOS, limits, the window, cancellation, seeded sampling.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ArcModel, GenerateOptions, GenerationTimings, PrefixPart } from '../../src/core/api';
import { OnnxDecoder } from '../../src/core/decoder';
import { ArcError } from '../../src/core/errors';
import { EXTRACTIVE_CANDIDATES, TextStream, argmax, decodeLoop, endsComplete, extractivePicker, occursWhole, sampleTopP, seededRandom } from '../../src/core/generate';
import { loadModel } from '../../src/core/model';
import { NO_TINY, TINY, golden } from './core-fixture';

let model: ArcModel;
before(async () => {
  if (!NO_TINY) model = await loadModel(TINY, { provider: 'cpu', threads: 1 });
});
after(async () => model?.dispose());

async function collect(it: AsyncGenerator<string, GenerationTimings>): Promise<{ pieces: string[]; timings: GenerationTimings }> {
  const pieces: string[] = [];
  for (;;) {
    const r = await it.next();
    if (r.done) return { pieces, timings: r.value };
    pieces.push(r.value);
  }
}

test('argmax takes the first of equal maxima', () => {
  assert.equal(argmax(new Float32Array([1, 3, 3, -1])), 1);
  assert.equal(argmax(new Float32Array([-5, -7])), 0);
});

test('seeded sampling is reproducible and follows the softmax', () => {
  const logits = new Float32Array([0, Math.log(2), Math.log(4), -Infinity]);
  const draw = (seed: number, n: number): number[] => {
    const r = seededRandom(seed);
    return Array.from({ length: n }, () => sampleTopP(logits, 1, 1, r));
  };
  assert.deepEqual(draw(7, 50), draw(7, 50));
  assert.notDeepEqual(draw(7, 50), draw(8, 50));
  const counts = [0, 0, 0, 0];
  for (const i of draw(1, 14000)) counts[i]!++;
  // Expected 2000 / 4000 / 8000 / 0; 4 standard deviations is ~180.
  assert.ok(Math.abs(counts[0]! - 2000) < 200 && Math.abs(counts[1]! - 4000) < 240 && Math.abs(counts[2]! - 8000) < 240, `${counts}`);
  assert.equal(counts[3], 0);
  // A small nucleus keeps only the most likely token.
  const r = seededRandom(5);
  for (let i = 0; i < 100; i++) assert.equal(sampleTopP(logits, 1, 0.5, r), 2);
  assert.throws(() => sampleTopP(logits, 0, 1, r), RangeError);
});

test('streaming never splits a multi-byte character', { skip: NO_TINY }, () => {
  const text = 'naïve ✓ 😀 done';
  const ids = model.tokenizer.encode(text);
  const stream = new TextStream(model.tokenizer, []);
  const pieces: string[] = [];
  for (let i = 1; i <= ids.length; i++) pieces.push(stream.push(ids.slice(0, i)));
  pieces.push(stream.flush());
  assert.ok(pieces.every((p) => !p.includes('\uFFFD')), JSON.stringify(pieces));
  assert.equal(pieces.join(''), text);
  // The emoji's 4 byte tokens yield nothing until the last one arrives: 3 empty pieces in a row.
  assert.ok(pieces.join('|').includes('|||😀'), JSON.stringify(pieces));
});

test('stop strings end the answer and are never emitted, even when split across tokens', { skip: NO_TINY }, () => {
  const run = (text: string, stops: string[]): { out: string; stopped: boolean } => {
    const ids = model.tokenizer.encode(text);
    const stream = new TextStream(model.tokenizer, stops);
    let out = '';
    for (let i = 1; i <= ids.length && !stream.stopped; i++) out += stream.push(ids.slice(0, i));
    out += stream.flush();
    return { out, stopped: stream.stopped };
  };
  assert.deepEqual(run('x = 1\nfoo', ['\n']), { out: 'x = 1', stopped: true });
  assert.deepEqual(run('ab\n\ncd', ['\n\n']), { out: 'ab', stopped: true });
  assert.deepEqual(run('a\nb\nc', ['\n\n']), { out: 'a\nb\nc', stopped: false });
  assert.deepEqual(run('xENy', ['END']), { out: 'xENy', stopped: false });
  assert.deepEqual(run('one END two', ['END', 'two']), { out: 'one ', stopped: true });
  // A held-back prefix of a stop string is released by flush when generation ends.
  assert.deepEqual(run('value EN', ['END']), { out: 'value EN', stopped: false });
});

function decoder(): OnnxDecoder {
  assert.ok(model.decoder instanceof OnnxDecoder);
  return model.decoder;
}

test('generation stops at EOS without emitting it (EOS id set to the token the model picks)', { skip: NO_TINY }, async () => {
  const g = golden().greedy[0]!;
  const dec = decoder();
  const prefix: PrefixPart[] = [{ kind: 'tokens', ids: g.prompt_ids }];
  let state: Awaited<ReturnType<OnnxDecoder['prefill']>>['state'] | null = null;
  const source = {
    prefill: async () => {
      const r = await dec.prefill(prefix);
      state = r.state;
      return r.logits.subarray(r.logits.length - dec.config.vocabSize);
    },
    step: (id: number) => dec.step(state!, id),
  };
  const eos = g.output_ids[0]!;
  const { pieces, timings } = await collect(decodeLoop(source, model.tokenizer, { maxNewTokens: 8 }, { prefixPositions: g.prompt_ids.length, contextLength: 128, eosTokenId: eos }));
  assert.deepEqual(pieces, []);
  assert.equal(timings.generatedTokens, 0);
});

test('maxNewTokens and the decoder window bound the answer', { skip: NO_TINY }, async () => {
  const g = golden().greedy[0]!;
  const dec = decoder();
  const few = await collect(dec.generate([{ kind: 'tokens', ids: g.prompt_ids }], { maxNewTokens: 3, stop: [] }));
  assert.equal(few.timings.generatedTokens, 3);
  assert.equal(few.pieces.join(''), model.tokenizer.decode(g.output_ids.slice(0, 3)));

  // 125 positions in a 128 window: tokens can be fed at 125, 126, 127, so 4 are produced.
  const long = Array.from({ length: 125 }, (_, i) => g.prompt_ids[i % g.prompt_ids.length]!);
  const edge = await collect(dec.generate([{ kind: 'tokens', ids: long }], { maxNewTokens: 48, stop: [] }));
  assert.equal(edge.timings.generatedTokens, 4);
  assert.equal(edge.timings.prefixPositions, 125);
});

test('a prefix longer than the window is refused with context-too-large', { skip: NO_TINY }, async () => {
  const it = decoder().generate([{ kind: 'tokens', ids: new Array(129).fill(5) }], { maxNewTokens: 4 });
  await assert.rejects(it.next(), (e: unknown) => e instanceof ArcError && e.code === 'context-too-large' && /129.*128/.test(e.message));
});

test('an aborted signal cancels between steps', { skip: NO_TINY }, async () => {
  const g = golden().greedy[0]!;
  const ac = new AbortController();
  const it = decoder().generate([{ kind: 'tokens', ids: g.prompt_ids }], { maxNewTokens: 8, stop: [], signal: ac.signal });
  const first = await it.next();
  assert.equal(first.done, false);
  ac.abort();
  await assert.rejects(it.next(), (e: unknown) => e instanceof ArcError && e.code === 'cancelled');
  // And before any work.
  const it2 = decoder().generate([{ kind: 'tokens', ids: g.prompt_ids }], { maxNewTokens: 8, signal: ac.signal });
  await assert.rejects(it2.next(), (e: unknown) => e instanceof ArcError && e.code === 'cancelled');
  await assert.rejects(model.encoder.encode([[1, 2, 3]], ac.signal), (e: unknown) => e instanceof ArcError && e.code === 'cancelled');
});

test('temperature sampling with a seed is reproducible on the model', { skip: NO_TINY }, async () => {
  const g = golden().greedy[1]!;
  const opts: GenerateOptions = { maxNewTokens: 12, stop: [], temperature: 1.5, topP: 0.95, seed: 11 };
  const a = await collect(decoder().generate([{ kind: 'tokens', ids: g.prompt_ids }], opts));
  const b = await collect(decoder().generate([{ kind: 'tokens', ids: g.prompt_ids }], opts));
  assert.equal(a.pieces.join(''), b.pieces.join(''));
  assert.equal(a.timings.generatedTokens, 12);
  assert.ok(a.timings.tokensPerSecond > 0);
});

test('extractive picking passes over tokens that leave the span, most likely first, and ends when none keeps it', { skip: NO_TINY }, () => {
  const tok = model.tokenizer;
  const span = 'export const TAX_RATE = 0.21;';
  const ids = tok.encode('0.');
  const pickFor = (order: number[]) => {
    const logits = new Float32Array(model.manifest.decoder!.vocabSize).fill(-10);
    order.forEach((t, k) => (logits[t] = 10 - k));
    return extractivePicker(tok, span, ['\n'], 2, argmax)(logits, ids);
  };
  // The token after "0." on the way to "0.21" (in the span) and to "0.99" (not in it).
  assert.deepEqual(tok.encode('0.21').slice(0, ids.length), ids);
  const good = tok.encode('0.21')[ids.length]!;
  const bad = tok.encode('0.99')[ids.length]!;
  assert.ok(span.includes(tok.decode([...ids, good])) && !span.includes(tok.decode([...ids, bad])));
  assert.equal(pickFor([good, bad]), good, 'the likeliest token keeps the span');
  assert.equal(pickFor([bad, good]), good, 'a token that leaves the span is passed over');
  const nl = tok.encode('\n')[0]!;
  assert.equal(pickFor([nl, good]), good, 'a stop string does not end "0." (inside a number)');
  const whole = new Float32Array(model.manifest.decoder!.vocabSize).fill(-10);
  whole[nl] = 10;
  assert.equal(extractivePicker(tok, span, ['\n'], 2, argmax)(whole, tok.encode('0.21')), nl, 'a stop string ends a whole answer');
  // No candidate keeps the answer a substring: EOS.
  const none = extractivePicker(tok, 'zzz', ['\n'], 2, argmax);
  assert.equal(none(new Float32Array(model.manifest.decoder!.vocabSize).fill(0), tok.encode('abc')), 2);
  assert.ok(EXTRACTIVE_CANDIDATES >= 64);
});

test('an extractive answer is made of whole words of the span: it starts at a word boundary, and ends at one', () => {
  const span = '### src/http/cookiejar.py\ndef load(fp, *, fmt=None, dict_type=dict):\n    TAX_RATE = 0.21\n';
  assert.ok(occursWhole(span, 'cookiejar.py', true), 'after "/" and before a newline');
  assert.ok(occursWhole(span, 'fp, *, fmt=None, dict_type=dict', true));
  assert.ok(occursWhole(span, '0.21', true));
  assert.ok(!occursWhole(span, '0', true), 'a number does not end at its decimal point');
  assert.ok(!occursWhole(span, '21', false), 'nor start after it');
  assert.ok(occursWhole('x = 0. + y', '0', true), 'a point not followed by a digit ends it');
  assert.ok(occursWhole(span, 'dict_', false), 'may still grow into dict_type');
  assert.ok(!occursWhole(span, 'dict_', true), 'but may not end inside it');
  assert.ok(endsComplete('"HTTPOnly"') && endsComplete('fp, _class=HTTPMessage') && endsComplete('f(a, [1, 2])') && endsComplete("'don\\'t'"));
  assert.ok(endsComplete('a: Map<string, number>') && endsComplete('this.value!'), 'a generic type and a non-null assertion end complete');
  assert.ok(!endsComplete('"HTTP') && !endsComplete('dict_type=') && !endsComplete('fp,') && !endsComplete('f(a') && !endsComplete('x)'), 'open quotes, brackets and trailing operators are not whole answers');
  assert.ok(!occursWhole(span, 'fp, *, fmt=None, dict_type=d', true));
  assert.ok(!occursWhole(span, 'ookiejar.py', false), 'never starts inside a word');
  assert.ok(!occursWhole(span, 'AX_RATE', false));
  assert.ok(occursWhole(span, ' TAX_RATE', true), 'a leading space is a boundary of its own');
  assert.ok(occursWhole(span, '(fp', true), 'punctuation needs no boundary');
  assert.ok(occursWhole(span, '', true));
  // A later occurrence may be the whole one.
  assert.ok(occursWhole('xload load', 'load', true));
  assert.ok(!occursWhole('xload loads', 'load', true));
});

test('extractive picking does not end an answer inside a word of the span (EOS or a stop string), nor start one there', { skip: NO_TINY }, () => {
  const tok = model.tokenizer;
  const span = 'export const TAX_RATE = 0.21;';
  const vocab = model.manifest.decoder!.vocabSize;
  const pickAfter = (answer: string, order: number[]) => {
    const logits = new Float32Array(vocab).fill(-10);
    order.forEach((t, k) => (logits[t] = 10 - k));
    return extractivePicker(tok, span, ['\n'], 2, argmax)(logits, answer === '' ? [] : tok.encode(answer));
  };
  const nl = tok.encode('\n')[0]!;
  const whole = tok.encode('TAX_RATE');
  // Cut the name one token short: ending there would end inside TAX_RATE.
  const part = tok.decode(whole.slice(0, -1));
  const rest = whole[whole.length - 1]!;
  assert.ok(span.includes(part) && part !== 'TAX_RATE');
  assert.equal(pickAfter(part, [2, rest]), rest, 'EOS inside a word is passed over');
  assert.equal(pickAfter(part, [nl, rest]), rest, 'so is a stop string');
  assert.equal(pickAfter('TAX_RATE', [2, nl]), 2, 'EOS after the whole word is taken');
  assert.equal(pickAfter('TAX_RATE', [nl, 2]), nl);
  // A first token that starts inside a word ("AX" of "TAX") is passed over for one that starts a word.
  const inside = tok.encode('AX')[0]!;
  const start = tok.encode('0.21')[0]!;
  assert.ok(span.includes(tok.decode([inside])) && !occursWhole(span, tok.decode([inside]), false), tok.decode([inside]));
  assert.equal(pickAfter('', [inside, start]), start);
});

test('extractive decoding on the model: every answer is a span of answerFrom, and a free answer that already was one is unchanged', { skip: NO_TINY }, async () => {
  const dec = decoder();
  let changed = 0;
  for (const g of golden().greedy) {
    const prefix: PrefixPart[] = [{ kind: 'tokens', ids: g.prompt_ids }];
    const free = (await collect(dec.generate(prefix, { maxNewTokens: 6, stop: [] }))).pieces.join('');
    for (const span of [`xx ${free} yy`, tokSpan(g.prompt_ids)]) {
      const got = (await collect(dec.generate(prefix, { maxNewTokens: 6, stop: [], answerFrom: span }))).pieces.join('');
      assert.ok(span.includes(got), `"${got}" is not a span of "${span}"`);
      if (span.includes(free)) assert.equal(got, free);
      else changed++;
    }
  }
  assert.ok(changed > 0, 'some free answers left the prompt text, so the constraint was exercised');
});

function tokSpan(ids: number[]): string {
  return model.tokenizer.decode(ids);
}
