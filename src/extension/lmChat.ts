// Plain chat with an ARC model (no `@arc`): the conversation's text, read by the decoder as a
// closed-book question, answered token by token. No `vscode` import: lmProvider.ts hands in
// the messages as plain role + text, so this runs in unit tests on the real decoder.
//
// The decoder is a small question-answering model with a short window; it has no tools and no
// instruction tuning. A conversation that does not fit the window is refused with an error that
// names the window and points to `@arc` (which compresses the workspace to fit), never cut.
import type { ArcModel } from '../core/api';
import { ArcError } from '../core/errors';
import { buildPrefix, decoderTokenizer, questionText, type BuiltPrefix } from '../core/prompt';

export interface ChatTurnText {
  role: 'user' | 'assistant' | 'system';
  text: string;
}

/** What the model picker shows: the window and how much of it a request may fill. */
export interface ChatModelWindow {
  /** Decoder positions (manifest decoder.contextLength). */
  contextLength: number;
  /** Room kept for the answer (prompt.maxNewTokens). */
  maxOutputTokens: number;
  /** What a request may use: the window less BOS and the answer room. */
  maxInputTokens: number;
}

export function chatWindow(model: Pick<ArcModel, 'manifest'>): ChatModelWindow | null {
  const dec = model.manifest.decoder;
  if (!dec) return null;
  const maxOutputTokens = Math.min(model.manifest.prompt.maxNewTokens, dec.contextLength - 2);
  return { contextLength: dec.contextLength, maxOutputTokens, maxInputTokens: dec.contextLength - 1 - (maxOutputTokens - 1) };
}

/**
 * The prompt: earlier turns as "Question/Answer" text in the question template's own words
 * (system text first), then the last user message as the question.
 */
export function conversationPrompt(model: Pick<ArcModel, 'manifest'>, turns: readonly ChatTurnText[]): { history: string; question: string } {
  const texts = turns.filter((t) => t.text.trim() !== '');
  let last = -1;
  for (let i = texts.length - 1; i >= 0; i--) {
    if (texts[i].role === 'user') {
      last = i;
      break;
    }
  }
  if (last < 0) throw new ArcError('empty-question', 'The conversation has no user message to answer.');
  let history = '';
  for (const t of texts.slice(0, last)) {
    if (t.role === 'system') history += `${t.text.trim()}\n`;
    else if (t.role === 'user') history += questionText(model.manifest, t.text);
    else history += `${t.text.trim()}\n`;
  }
  // Anything after the last user message (an assistant prefill) has no place in this prompt.
  return { history, question: texts[last].text };
}

/** Decoder tokens of a text with this model's decoder tokenizer (the picker's token counts). */
export function countTokens(model: ArcModel, text: string): number {
  return decoderTokenizer(model).encode(text).length;
}

/** The prefix of a conversation, or a context-too-large error naming the window and `@arc`. */
export function conversationPrefix(model: ArcModel, turns: readonly ChatTurnText[], toolCount = 0): { prefix: BuiltPrefix; maxNewTokens: number } {
  const win = chatWindow(model);
  if (!win || !model.decoder) throw new ArcError('model-missing', `The model package ${model.dir} has no decoder, so it cannot chat. Choose a package with a decoder.onnx.`);
  const { history, question } = conversationPrompt(model, turns);
  const prefix = history ? buildPrefix(model, 'full', [history], question) : buildPrefix(model, 'none', [], question);
  const input = prefix.positions - 1;
  if (input > win.maxInputTokens) {
    const tools = toolCount > 0 ? ` and ${toolCount} tool definitions it cannot use` : '';
    throw new ArcError(
      'context-too-large',
      `This request is ${input} tokens${tools}; ${model.manifest.name} has a ${win.contextLength}-token window ` +
        `(${win.maxInputTokens} for the request, ${win.maxOutputTokens} for the answer), so it cannot read it. ` +
        'It is a small local question-answering model, not an agent: ask `@arc` in the Chat view instead, which compresses the workspace to fit the window.',
    );
  }
  return { prefix, maxNewTokens: win.maxOutputTokens };
}

/** Answers the conversation, streaming pieces to `onText`; resolves with the whole answer. */
export async function answerConversation(
  model: ArcModel,
  turns: readonly ChatTurnText[],
  opts: { signal?: AbortSignal; onText: (piece: string) => void; toolCount?: number; temperature?: number },
): Promise<string> {
  const { prefix, maxNewTokens } = conversationPrefix(model, turns, opts.toolCount);
  const gen = model.decoder!.generate(prefix.parts, {
    maxNewTokens,
    stop: model.manifest.prompt.stop,
    signal: opts.signal,
    ...(opts.temperature && opts.temperature > 0 ? { temperature: opts.temperature } : {}),
  });
  let answer = '';
  for (;;) {
    const r = await gen.next();
    if (r.done) break;
    answer += r.value;
    opts.onText(r.value);
  }
  return answer;
}
