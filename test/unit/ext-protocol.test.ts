// Validation of webview -> host messages (src/protocol.ts). Pure: no vscode, no DOM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ANSWER_MODES, MAX_QUESTION_LENGTH, parseWebviewMessage } from '../../src/protocol';

const ok = (v: unknown) => {
  const r = parseWebviewMessage(v);
  assert.equal(r.ok, true, r.ok ? '' : r.error);
  return r.ok ? r.message : undefined;
};
const bad = (v: unknown, re?: RegExp) => {
  const r = parseWebviewMessage(v);
  assert.equal(r.ok, false, `accepted ${JSON.stringify(v)}`);
  if (re && !r.ok) assert.match(r.error, re);
};

test('accepts every well-formed message type', () => {
  assert.deepEqual(ok({ type: 'ready' }), { type: 'ready' });
  assert.deepEqual(ok({ type: 'ask', question: 'Which file defines `foo`?', source: 'workspace' }), {
    type: 'ask', question: 'Which file defines `foo`?', source: 'workspace',
  });
  assert.deepEqual(ok({ type: 'ask', question: 'q', source: 'open', mode: 'full' }), {
    type: 'ask', question: 'q', source: 'open', mode: 'full',
  });
  assert.deepEqual(ok({ type: 'compare', question: 'q', source: 'selection' }), {
    type: 'compare', question: 'q', source: 'selection',
  });
  assert.deepEqual(ok({ type: 'stop' }), { type: 'stop' });
  assert.deepEqual(ok({ type: 'stop', runId: 'r1' }), { type: 'stop', runId: 'r1' });
  assert.deepEqual(ok({ type: 'openCitation', citation: { path: 'src/a.ts', startLine: 3, endLine: 9 } }), {
    type: 'openCitation', citation: { path: 'src/a.ts', startLine: 3, endLine: 9 },
  });
  assert.deepEqual(ok({ type: 'command', command: 'selectModel' }), { type: 'command', command: 'selectModel' });
});

test('returns a fresh object, not the input (no prototype or extra data leaks through)', () => {
  const input = { type: 'ask', question: 'q', source: 'open' };
  const out = ok(input);
  assert.notEqual(out, input);
  const withNullProto = Object.assign(Object.create(null), { type: 'ready' });
  ok(withNullProto);
});

test('rejects non-objects and unknown types', () => {
  for (const v of [null, undefined, 1, 'ask', [], [{ type: 'ready' }], new Date()]) bad(v);
  bad({}, /missing type/);
  bad({ type: 'eval', code: '1' }, /unknown message type "eval"/);
  bad({ type: 42 }, /missing type/);
  class Msg { type = 'ready'; }
  bad(new Msg(), /plain object/);
});

test('rejects extra fields', () => {
  bad({ type: 'ready', x: 1 }, /unexpected field "x"/);
  bad({ type: 'ask', question: 'q', source: 'open', html: '<b>' }, /unexpected field "html"/);
  bad({ type: 'openCitation', citation: { path: 'a', startLine: 1, endLine: 1, uri: 'file:///etc' } }, /unexpected/);
});

test('rejects malformed ask/compare', () => {
  bad({ type: 'ask', source: 'open' }, /question/);
  bad({ type: 'ask', question: 3, source: 'open' }, /question/);
  bad({ type: 'ask', question: 'q', source: 'disk' }, /source/);
  bad({ type: 'ask', question: 'q', source: 'open', mode: 'fast' }, /mode/);
  bad({ type: 'ask', question: 'x'.repeat(MAX_QUESTION_LENGTH + 1), source: 'open' }, /longer/);
  ok({ type: 'ask', question: 'x'.repeat(MAX_QUESTION_LENGTH), source: 'open' });
  bad({ type: 'compare', question: 'q', source: 'open', mode: 'arc' }, /needs a runId/);
  bad({ type: 'compare', question: 'q', source: 'open', runId: 'r7', mode: 'fast' }, /mode must be one of mixed, arc, full, none/);
  assert.deepEqual(ok({ type: 'compare', question: 'q', source: 'open', runId: 'r7', mode: 'mixed' }), {
    type: 'compare', question: 'q', source: 'open', runId: 'r7', mode: 'mixed',
  });
  assert.deepEqual(ok({ type: 'ask', question: 'q', source: 'open', mode: 'mixed' }), { type: 'ask', question: 'q', source: 'open', mode: 'mixed' });
  assert.deepEqual(ANSWER_MODES, ['mixed', 'arc', 'full', 'none'], 'the default mode first');
  assert.deepEqual(ok({ type: 'compare', question: 'q', source: 'open', runId: 'r7' }), {
    type: 'compare', question: 'q', source: 'open', runId: 'r7',
  });
  bad({ type: 'compare', question: 'q', source: 'open', runId: 7 }, /runId/);
});

test('rejects malformed citations and stops', () => {
  bad({ type: 'openCitation' }, /citation/);
  bad({ type: 'openCitation', citation: { path: '', startLine: 1, endLine: 1 } }, /path/);
  bad({ type: 'openCitation', citation: { path: 'a', startLine: 0, endLine: 1 } }, /lines/);
  bad({ type: 'openCitation', citation: { path: 'a', startLine: 5, endLine: 4 } }, /lines/);
  bad({ type: 'openCitation', citation: { path: 'a', startLine: 1.5, endLine: 2 } }, /lines/);
  bad({ type: 'openCitation', citation: { path: 'a', absPath: 7, startLine: 1, endLine: 2 } }, /absPath/);
  bad({ type: 'stop', runId: '' }, /runId/);
  bad({ type: 'stop', runId: 'x'.repeat(65) }, /runId/);
  bad({ type: 'command', command: 'workbench.action.terminal.new' }, /unknown command/);
});
