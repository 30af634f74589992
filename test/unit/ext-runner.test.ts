// AskRunner (src/extension/runner.ts) with a scripted ask(): the pipeline and model are tested on
// their own; what is checked here is forwarding, serialisation, Stop and error mapping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ArcModel } from '../../src/core/api';
import type { AskEvent, AskRequest, AskStats } from '../../src/core/types';
import type { HostMessage } from '../../src/protocol';
import { AskRunner, errorCodeOf, type RunnerAskFn } from '../../src/extension/runner';

const stats = { mode: 'arc', provider: 'cpu' } as AskStats;
const model = { provider: 'cpu' } as ArcModel;
const quiet = { info() {}, warn() {}, error() {} };
const info = (runId: string) => ({ runId, question: 'q', mode: 'arc' as const, sourceLabel: 'x' });
const req: AskRequest = { question: 'q', mode: 'arc' };

/** ask() stand-in: yields tokens, one per tick, honouring the signal like the real one. */
function scripted(tokens: string[], order: string[]): RunnerAskFn {
  return async function* (_m, r, o): AsyncGenerator<AskEvent, void> {
    order.push(`start ${r.question}`);
    for (const t of tokens) {
      await new Promise((res) => setTimeout(res, 5));
      if (o.signal?.aborted) {
        yield { type: 'error', code: 'cancelled', message: 'The request was cancelled.' };
        return;
      }
      yield { type: 'token', text: t };
    }
    yield { type: 'selection', files: [{ path: 'a', tokens: 8, vectors: 2, chunks: 1, included: 1, textChunks: 1 }], included: [{ path: 'a', startLine: 1, endLine: 2 }], text: [{ path: 'a', startLine: 1, endLine: 2 }], compressed: [], leftOut: [], budget: 9 };
    yield { type: 'done', answer: tokens.join(''), stats };
    order.push(`end ${r.question}`);
  };
}

test('forwards events in order and resolves with the answer; keeps the compression snapshot', async () => {
  const order: string[] = [];
  const runner = new AskRunner({ ask: scripted(['a', 'b'], order), getModel: async () => model, cacheDir: () => null, log: quiet });
  const got: HostMessage[] = [];
  const r = await runner.start(info('r1'), req, (m) => got.push(m));
  assert.deepEqual(r, { outcome: 'done', answer: 'ab', stats });
  assert.deepEqual(got.map((m) => (m.type === 'runEvent' ? m.event.type : m.type)), ['runStarted', 'token', 'token', 'selection', 'done', 'runEnded']);
  assert.equal(runner.lastCompression?.files[0]?.path, 'a');
  assert.deepEqual([runner.lastCompression?.text, runner.lastCompression?.compressed], [[{ path: 'a', startLine: 1, endLine: 2 }], []], 'the snapshot keeps the chunks by form');
  assert.equal(runner.lastCompression?.stats, stats);
  assert.deepEqual(runner.activeRunIds, []);
});

test('runs one at a time, and Stop cancels the running one and a queued one', async () => {
  const order: string[] = [];
  const runner = new AskRunner({ ask: scripted(['a', 'b', 'c', 'd'], order), getModel: async () => model, cacheDir: () => null, log: quiet });
  const first = runner.start(info('r1'), { ...req, question: 'one' }, () => {});
  const second = runner.start(info('r2'), { ...req, question: 'two' }, () => {});
  const third = runner.start(info('r3'), { ...req, question: 'three' }, () => {});
  assert.equal(runner.stop('r3'), true);
  assert.deepEqual(await first, { outcome: 'done', answer: 'abcd', stats });
  assert.deepEqual(await second, { outcome: 'done', answer: 'abcd', stats });
  assert.deepEqual(await third, { outcome: 'cancelled' });
  assert.deepEqual(order, ['start one', 'end one', 'start two', 'end two']);

  const events: HostMessage[] = [];
  const running = runner.start(info('r4'), req, (m) => events.push(m));
  setTimeout(() => runner.stop(), 12);
  assert.deepEqual(await running, { outcome: 'cancelled' });
  const errors = events.filter((m) => m.type === 'runEvent' && m.event.type === 'error');
  assert.equal(errors.length, 1, 'exactly one cancelled event reaches the view');
  assert.deepEqual(events.at(-1), { type: 'runEnded', runId: 'r4', outcome: 'cancelled' });
});

test('an external AbortSignal (progress Cancel) stops the run', async () => {
  const runner = new AskRunner({ ask: scripted(['a', 'b', 'c'], []), getModel: async () => model, cacheDir: () => null, log: quiet });
  const ac = new AbortController();
  const p = runner.start(info('r1'), req, () => {}, ac.signal);
  setTimeout(() => ac.abort(), 7);
  assert.deepEqual(await p, { outcome: 'cancelled' });
});

test('a model that fails to load becomes an error event with its code', async () => {
  const missing = Object.assign(new Error('Model folder /x does not exist.'), { code: 'model-missing' });
  const runner = new AskRunner({ ask: scripted([], []), getModel: async () => { throw missing; }, cacheDir: () => null, log: quiet });
  const got: HostMessage[] = [];
  const r = await runner.start(info('r1'), req, (m) => got.push(m));
  assert.deepEqual(r, { outcome: 'error', code: 'model-missing', message: 'Model folder /x does not exist.' });
  assert.deepEqual(got[1], { type: 'runEvent', runId: 'r1', event: { type: 'error', code: 'model-missing', message: 'Model folder /x does not exist.' } });
  assert.deepEqual(got[2], { type: 'runEnded', runId: 'r1', outcome: 'error' });
  // And the queue keeps working after a failure.
  const ok = new AskRunner({ ask: scripted(['z'], []), getModel: async () => model, cacheDir: () => null, log: quiet });
  await ok.exclusive(async () => { throw new Error('x'); }).catch(() => undefined);
  assert.equal((await ok.start(info('r2'), req, () => {})).outcome, 'done');
});

test('errorCodeOf maps unknown errors to internal and AbortError to cancelled', () => {
  assert.equal(errorCodeOf(new Error('boom')), 'internal');
  assert.equal(errorCodeOf({ code: 'ENOENT' }), 'internal');
  assert.equal(errorCodeOf({ code: 'no-sources' }), 'no-sources');
  assert.equal(errorCodeOf(Object.assign(new Error('x'), { name: 'AbortError' })), 'cancelled');
  assert.equal(errorCodeOf(null), 'internal');
});
