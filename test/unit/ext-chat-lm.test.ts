// Plain chat with an ARC model in the Chat view's model picker (src/extension/lmChat.ts) on the
// real tiny-arc decoder: the conversation's prompt, the window check, streaming, token counts.
// lmProvider.ts (the VS Code side) only converts messages and parts; it is exercised by the e2e suite.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildPrefix } from '../../src/core/prompt';
import { answerConversation, chatWindow, conversationPrefix, conversationPrompt, countTokens } from '../../src/extension/lmChat';
import { useTinyArc } from './pipeline-helpers';

const tiny = useTinyArc();

test('a one-message chat is the closed-book question, streamed piece by piece', { skip: tiny.skip }, async () => {
  const model = await tiny.model();
  const pieces: string[] = [];
  const answer = await answerConversation(model, [{ role: 'user', text: 'Where is `restock`?' }], { onText: (p) => pieces.push(p) });
  assert.equal(pieces.join(''), answer);
  // The same prefix ask() builds in none mode, the same greedy decoder.
  const prefix = buildPrefix(model, 'none', [], 'Where is `restock`?');
  let direct = '';
  for await (const p of model.decoder!.generate(prefix.parts, { maxNewTokens: chatWindow(model)!.maxOutputTokens, stop: model.manifest.prompt.stop })) direct += p;
  assert.equal(answer, direct);
});

test('earlier turns become Question/Answer text before the last question', { skip: tiny.skip }, async () => {
  const model = await tiny.model();
  const p = conversationPrompt(model, [
    { role: 'system', text: 'Be brief.' },
    { role: 'user', text: 'What is x?' },
    { role: 'assistant', text: '1' },
    { role: 'user', text: 'And y?' },
  ]);
  assert.deepEqual(p, { history: 'Be brief.\nQuestion: What is x?\nAnswer: 1\n', question: 'And y?' });
  assert.throws(() => conversationPrompt(model, [{ role: 'assistant', text: 'hi' }]), { code: 'empty-question' });
});

test('a request larger than the window is refused with the window and @arc named, not cut', { skip: tiny.skip }, async () => {
  const model = await tiny.model();
  const win = chatWindow(model)!;
  assert.equal(win.contextLength, model.manifest.decoder!.contextLength);
  assert.equal(win.maxInputTokens + win.maxOutputTokens, win.contextLength, 'the request and the answer share the window');
  const agentPrompt = 'You are an expert programming assistant. Follow the rules. '.repeat(200);
  let pieces = 0;
  await assert.rejects(
    answerConversation(model, [{ role: 'system', text: agentPrompt }, { role: 'user', text: 'Fix the bug.' }], { toolCount: 40, onText: () => pieces++ }),
    (e: Error & { code?: string }) => {
      assert.equal(e.code, 'context-too-large');
      assert.match(e.message, new RegExp(`${win.contextLength}-token window`));
      assert.match(e.message, /40 tool definitions/);
      assert.match(e.message, /@arc/);
      return true;
    },
  );
  assert.equal(pieces, 0, 'nothing was generated');
  // A short question fits.
  const fits = conversationPrefix(model, [{ role: 'user', text: 'x' }]);
  assert.ok(fits.prefix.positions - 1 <= win.maxInputTokens);
});

test('token counts use the decoder tokenizer', { skip: tiny.skip }, async () => {
  const model = await tiny.model();
  const text = 'def restock(item, quantity):\n    return item';
  assert.equal(countTokens(model, text), model.tokenizer.encode(text).length);
  assert.equal(countTokens(model, ''), 0);
});

test('a stopped chat request stops the decoder', { skip: tiny.skip }, async () => {
  const model = await tiny.model();
  const abort = new AbortController();
  let after = 0;
  const pieces: string[] = [];
  await answerConversation(model, [{ role: 'user', text: 'What is the value of `TAX_RATE`?' }], {
    signal: abort.signal,
    onText: (p) => {
      if (abort.signal.aborted) after++;
      pieces.push(p);
      abort.abort();
    },
  }).catch((e: Error & { code?: string }) => assert.equal(e.code ?? e.name, e.code ? 'cancelled' : 'AbortError'));
  assert.equal(pieces.length, 1);
  assert.equal(after, 0);
});
