// The chat host's outbox: messages sent before the page is ready are delivered in order when it
// is; a run that ends before then still arrives whole; a recreated page gets the runs in
// progress again but nothing it already has. Pages are modelled with the webview's own reducer.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AskEvent } from '../../src/core/types';
import type { HostMessage, RunInfo } from '../../src/protocol';
import { ChatOutbox, MAX_WAITING_NOTES, MAX_WAITING_RUNS } from '../../src/extension/chatOutbox';
import { applyEvent, endRun, newEntry, restoreChatState, type AnswerEntry, type ChatState } from '../../webview/state';

const run = (runId: string, question = 'Which file defines `x`?'): RunInfo => ({ runId, question, mode: 'arc', sourceLabel: 'selection' });
const started = (runId: string): HostMessage => ({ type: 'runStarted', run: run(runId) });
const event = (runId: string, e: AskEvent): HostMessage => ({ type: 'runEvent', runId, event: e });
const token = (runId: string, text: string): HostMessage => event(runId, { type: 'token', text });
const ended = (runId: string, outcome: 'done' | 'error' | 'cancelled' = 'done'): HostMessage => ({ type: 'runEnded', runId, outcome });
const failed = (runId: string): HostMessage[] => [
  started(runId),
  event(runId, { type: 'error', code: 'model-corrupt', message: 'encoder.onnx is not a valid ONNX file.' }),
  ended(runId, 'error'),
];

/** A chat page: history restored from the saved state, updated the way webview/chat.ts does. */
class Page {
  readonly got: HostMessage[] = [];
  readonly state: ChatState;
  constructor(saved?: ChatState) {
    this.state = restoreChatState(saved ? structuredClone(saved) : undefined);
  }
  receive(m: HostMessage): void {
    this.got.push(m);
    const find = (id: string): AnswerEntry | undefined => this.state.entries.find((e) => e.runId === id);
    if (m.type === 'runStarted') {
      const i = this.state.entries.findIndex((e) => e.runId === m.run.runId);
      if (i >= 0) this.state.entries[i] = newEntry(m.run);
      else this.state.entries.push(newEntry(m.run));
    } else if (m.type === 'runEvent') {
      const e = find(m.runId);
      if (e) applyEvent(e, m.event, false);
    } else if (m.type === 'runEnded') {
      const e = find(m.runId);
      if (e) endRun(e, m.outcome);
    }
  }
}

/** The host side: an outbox whose deliveries go to whichever page is current (or nowhere). */
function host(): { box: ChatOutbox; page: () => Page | undefined; load: (saved?: ChatState) => Page; hide: () => void } {
  let current: Page | undefined;
  const box = new ChatOutbox((m) => current?.receive(m));
  return {
    box,
    page: () => current,
    load: (saved) => {
      box.detach(); // new HTML: the old page is gone
      current = new Page(saved);
      box.attach(); // the page says 'ready'
      return current;
    },
    hide: () => {
      box.detach();
      current = undefined;
    },
  };
}

test('a run that ends before the page is ready reaches it whole, after the focusQuestion, in order', () => {
  const h = host();
  const msgs: HostMessage[] = [{ type: 'focusQuestion', source: 'selection' }, ...failed('r1')];
  for (const m of msgs) h.box.send(m);
  assert.equal(h.box.isReady, false);
  const page = h.load();
  assert.deepEqual(page.got, msgs);
  assert.equal(page.state.entries.length, 1);
  assert.equal(page.state.entries[0]!.state, 'error');
  assert.equal(page.state.entries[0]!.error?.code, 'model-corrupt');
  assert.deepEqual(h.box.pending, [], 'nothing kept once a finished run is delivered');
});

test('a recreated page gets neither the finished run nor the one-off messages again', () => {
  const h = host();
  for (const m of [{ type: 'focusQuestion', question: 'q' } as HostMessage, ...failed('r1')]) h.box.send(m);
  const first = h.load();
  h.hide();
  const second = h.load(first.state);
  assert.deepEqual(second.got, []);
  assert.equal(second.state.entries.length, 1);
  assert.equal(second.state.entries[0]!.state, 'error');
});

test('while ready, messages go out at once; a live run is replayed to a new page without duplicates', () => {
  const h = host();
  const first = h.load();
  h.box.send({ type: 'notice', level: 'info', message: 'hello' });
  h.box.send(started('r1'));
  h.box.send(token('r1', 'src/'));
  assert.equal(first.got.length, 3);
  assert.equal(first.state.entries[0]!.answer, 'src/');
  // The view is hidden mid-run: the page (and what it was sent) is gone, its state is saved.
  const saved = structuredClone(first.state);
  h.hide();
  h.box.send(token('r1', 'a.py'));
  h.box.send({ type: 'status', status: { state: 'ready' } });
  const second = h.load(saved);
  assert.deepEqual(second.got, [started('r1'), token('r1', 'src/'), token('r1', 'a.py')]);
  assert.equal(second.state.entries.length, 1);
  assert.equal(second.state.entries[0]!.answer, 'src/a.py', 'replayed tokens replace the saved partial answer');
  h.box.send(event('r1', { type: 'done', answer: 'src/a.py', stats: {} as never }));
  h.box.send(ended('r1'));
  assert.equal(second.state.entries[0]!.state, 'done');
  assert.deepEqual(h.box.pending, []);
  const third = h.load(second.state);
  assert.deepEqual(third.got, []);
  assert.equal(third.state.entries[0]!.answer, 'src/a.py');
});

test('a run that ends while the view is hidden is delivered when it is shown again', () => {
  const h = host();
  const first = h.load();
  h.box.send(started('r1'));
  h.box.send(token('r1', 'x'));
  const saved = structuredClone(first.state);
  h.hide();
  h.box.send(token('r1', 'y'));
  h.box.send(event('r1', { type: 'done', answer: 'xy', stats: {} as never }));
  h.box.send(ended('r1'));
  const second = h.load(saved);
  assert.deepEqual(second.got.map((m) => m.type), ['runStarted', 'runEvent', 'runEvent', 'runEvent', 'runEnded']);
  assert.equal(second.state.entries.length, 1);
  assert.equal(second.state.entries[0]!.answer, 'xy');
  assert.equal(second.state.entries[0]!.state, 'done');
  assert.deepEqual(h.box.pending, []);
});

test('several runs and notes queued before the first page interleave in send order', () => {
  const h = host();
  const msgs: HostMessage[] = [
    started('a'),
    { type: 'focusQuestion', question: 'second' },
    token('a', '1'),
    started('b'),
    token('b', '2'),
    ended('a'),
    { type: 'status', status: { state: 'loading' } },
    token('b', '3'),
  ];
  for (const m of msgs) h.box.send(m);
  const page = h.load();
  assert.deepEqual(page.got, msgs.filter((m) => m.type !== 'status'), 'status waits for init, which carries it');
  // Only the live run stays for a later page.
  assert.deepEqual(h.box.pending, [started('b'), token('b', '2'), token('b', '3')]);
});

test('what waits for a page that never comes is bounded: oldest finished runs and notes go first', () => {
  const h = host();
  h.box.send(started('live'));
  for (let i = 0; i < MAX_WAITING_RUNS + 5; i++) for (const m of failed(`r${i}`)) h.box.send(m);
  for (let i = 0; i < MAX_WAITING_NOTES + 3; i++) h.box.send({ type: 'notice', level: 'error', message: `n${i}` });
  const page = h.load();
  const runIds = [...new Set(page.got.flatMap((m) => (m.type === 'runStarted' ? [m.run.runId] : [])))];
  assert.deepEqual(runIds, ['live', ...Array.from({ length: MAX_WAITING_RUNS }, (_, i) => `r${i + 5}`)]);
  const notes = page.got.flatMap((m) => (m.type === 'notice' ? [m.message] : []));
  assert.deepEqual(notes, Array.from({ length: MAX_WAITING_NOTES }, (_, i) => `n${i + 3}`));
});
