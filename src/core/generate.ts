// The decoding loop, independent of ONNX: pick a token from logits, feed it back, turn the ids
// into text pieces that are safe to show (complete characters, never part of a stop string).
import type { GenerateOptions, GenerationTimings, TextTokenizer } from './api';
import { ArcError, throwIfAborted } from './errors';

/** Index of the largest logit; the first one on ties, like torch.argmax. */
export function argmax(logits: Float32Array): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/** mulberry32: a small seeded PRNG so sampled answers can be reproduced from a seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Samples from softmax(logits / temperature) restricted to the smallest set of most likely
 * tokens whose probability reaches topP (nucleus sampling). topP >= 1 keeps every token.
 */
export function sampleTopP(logits: Float32Array, temperature: number, topP: number, random: () => number): number {
  if (!(temperature > 0)) throw new RangeError(`temperature must be > 0 for sampling (got ${temperature})`);
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`topP must be in (0, 1] (got ${topP})`);
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  const probs = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const p = Math.exp((logits[i]! - max) / temperature);
    probs[i] = p;
    sum += p;
  }
  const order = Array.from(probs.keys()).sort((a, b) => probs[b]! - probs[a]! || a - b);
  const kept: number[] = [];
  let mass = 0;
  for (const i of order) {
    kept.push(i);
    mass += probs[i]! / sum;
    if (mass >= topP) break;
  }
  let r = random() * kept.reduce((acc, i) => acc + probs[i]!, 0);
  for (const i of kept) {
    r -= probs[i]!;
    if (r < 0) return i;
  }
  return kept[kept.length - 1]!;
}

/** Chooses the next token: greedy unless a positive temperature is given. */
export function tokenPicker(opts: Pick<GenerateOptions, 'temperature' | 'topP' | 'seed'>): (logits: Float32Array) => number {
  const temperature = opts.temperature ?? 0;
  if (temperature <= 0) return argmax;
  const random = seededRandom(opts.seed ?? Math.floor(Math.random() * 2 ** 32));
  const topP = opts.topP ?? 1;
  return (logits) => sampleTopP(logits, temperature, topP, random);
}

/** Candidates tried per step by extractive decoding, most likely first. */
export const EXTRACTIVE_CANDIDATES = 4096;

/** Characters of an identifier or number: an answer never starts or ends between two of them in the span. */
function isWordChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 36; // 0-9 A-Z a-z _ $
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/**
 * Whether the span has a boundary before index k: not between two word characters, nor at either
 * side of a decimal point between two digits (`0.21` is one number).
 */
function boundaryAt(span: string, k: number): boolean {
  if (k <= 0 || k >= span.length) return true;
  const a = span.charCodeAt(k - 1);
  const b = span.charCodeAt(k);
  if (isWordChar(a) && isWordChar(b)) return false;
  if (isDigit(a) && b === 46 && isDigit(span.charCodeAt(k + 1))) return false; // 0|.21
  if (a === 46 && isDigit(b) && isDigit(span.charCodeAt(k - 2))) return false; // 0.|21
  return true;
}

/**
 * Whether `text` occurs in `span` as whole lexical units: it starts at a boundary of the span
 * (boundaryAt: never inside a word, an identifier or number) and, with `ended`, ends at one. An
 * answer to a question about code (a name, a file name, a value, a parameter list) starts and
 * ends at such boundaries.
 */
export function occursWhole(span: string, text: string, ended: boolean): boolean {
  if (text === '') return true;
  for (let at = span.indexOf(text); at >= 0; at = span.indexOf(text, at + 1)) {
    if (boundaryAt(span, at) && (!ended || boundaryAt(span, at + text.length))) return true;
  }
  return false;
}

/**
 * Characters an answer does not end on: separators and operators, which something must follow.
 * Not `>` (it closes generic types: `Map<string, number>`) nor `!` (TypeScript's non-null `x!`).
 */
const OPEN_ENDED = new Set([...',;=:+-*/%&|^<~.\\@'].map((c) => c.charCodeAt(0)));

/**
 * Whether `text` could be a whole answer as it stands: its quotes and brackets are closed (quoted
 * strings, with backslash escapes, are skipped when counting brackets) and it does not end on a
 * separator or operator. A name, value or parameter list ends complete (`dict_type=dict`, not
 * `dict_type=`; `"HTTPOnly"`, not `"HTTP`).
 */
export function endsComplete(text: string): boolean {
  const t = text.trimEnd();
  if (t === '') return true;
  let depth = 0;
  let quote = 0;
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (quote !== 0) {
      if (c === 92) i++; // backslash: the next character is escaped
      else if (c === quote) quote = 0;
    } else if (c === 34 || c === 39 || c === 96) quote = c; // " ' `
    else if (c === 40 || c === 91 || c === 123) depth++; // ( [ {
    else if (c === 41 || c === 93 || c === 125) depth--; // ) ] }
  }
  return quote === 0 && depth === 0 && !OPEN_ENDED.has(t.charCodeAt(t.length - 1));
}

/**
 * Extractive decoding: picks as `pick` would, among the EXTRACTIVE_CANDIDATES most likely tokens
 * (and EOS) that keep the answer a substring of `span` made of whole lexical units (occursWhole:
 * it starts at a boundary of the span, and it may end, by EOS or a stop string, only at one and
 * only complete: endsComplete); the answer is the decoded text before the first stop string (a
 * trailing incomplete character must start one in the span). When no candidate does, EOS.
 */
export function extractivePicker(
  tokenizer: TextTokenizer,
  span: string,
  stops: readonly string[],
  eosTokenId: number,
  pick: (logits: Float32Array) => number,
): (logits: Float32Array, ids: readonly number[]) => number {
  const answerOf = (ids: readonly number[]): { text: string; stopped: boolean } => {
    let text = tokenizer.decode(ids as number[]);
    let stopped = false;
    for (const s of stops) {
      const i = text.indexOf(s);
      if (i >= 0) {
        text = text.slice(0, i);
        stopped = true;
      }
    }
    return { text, stopped };
  };
  // A whole answer so far; one that ends here (EOS, a stop string) also ends at a boundary, complete.
  const whole = (text: string, ended: boolean): boolean => occursWhole(span, text, ended) && (!ended || endsComplete(text));
  const keeps = (ids: readonly number[], next: number): boolean => {
    const { text, stopped } = answerOf([...ids, next]);
    // A byte-level token may end inside a character (decoded as one U+FFFD): the answer so far
    // must then go on, in the span, with a character beyond ASCII.
    if (!text.endsWith('\ufffd')) return whole(text, stopped);
    const head = text.slice(0, -1);
    for (let at = span.indexOf(head); at >= 0 && at + head.length < span.length; at = span.indexOf(head, at + 1)) {
      if ((span.codePointAt(at + head.length) ?? 0) >= 0x80) return true;
    }
    return false;
  };
  return (logits, ids) => {
    // EOS ends the answer as it stands (asked once per step, and only when EOS is a candidate).
    let endOk: boolean | undefined;
    const mayEnd = () => (endOk ??= whole(answerOf(ids).text, true));
    const first = pick(logits);
    if (first === eosTokenId ? mayEnd() : keeps(ids, first)) return first;
    const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b);
    const masked = new Float32Array(logits.length).fill(-Infinity);
    let any = false;
    for (const t of order.slice(0, EXTRACTIVE_CANDIDATES)) {
      if (t === eosTokenId ? mayEnd() : keeps(ids, t)) {
        masked[t] = logits[t]!;
        any = true;
      }
    }
    return any ? pick(masked) : eosTokenId;
  };
}

/**
 * Turns a growing answer text into pieces safe to show: a piece never ends with text that could
 * still become a stop string (nor, with holdReplacement, inside a UTF-8 character: byte-level
 * tokens decode an incomplete character as U+FFFD); text from a stop string on is never emitted.
 * Shared by the in-process decoder (TextStream) and the serving-engine client.
 */
export class StopText {
  private emitted = 0;
  private text = '';
  private readonly longestStop: number;
  stopped = false;

  /** holdReplacement: keep a trailing U+FFFD back (a byte-level decoder's incomplete character). */
  constructor(private readonly stops: readonly string[], private readonly holdReplacement = false) {
    this.longestStop = Math.max(0, ...stops.map((s) => s.length));
  }

  /** Text emitted so far. */
  get answer(): string {
    return this.text.slice(0, this.emitted);
  }

  /** Call with the whole text so far; returns the piece to show (maybe ''). */
  update(text: string): string {
    if (this.stopped) return '';
    this.text = text;
    let stopAt = -1;
    for (const s of this.stops) {
      const i = this.text.indexOf(s);
      if (i >= 0 && (stopAt < 0 || i < stopAt)) stopAt = i;
    }
    if (stopAt >= 0) {
      this.stopped = true;
      return this.take(Math.max(stopAt, this.emitted));
    }
    let end = this.text.length;
    if (this.holdReplacement) while (end > this.emitted && this.text.charCodeAt(end - 1) === 0xfffd) end--;
    for (let k = Math.min(this.longestStop - 1, end - this.emitted); k > 0; k--) {
      const tail = this.text.slice(end - k, end);
      if (this.stops.some((s) => s.startsWith(tail))) {
        end -= k;
        break;
      }
    }
    return this.take(end);
  }

  /** Everything still held back, once generation ended without a stop string. */
  flush(): string {
    if (this.stopped) return '';
    return this.take(this.text.length);
  }

  private take(end: number): string {
    if (end <= this.emitted) return '';
    const piece = this.text.slice(this.emitted, end);
    this.emitted = end;
    return piece;
  }
}

/** StopText over generated token ids: the text is decoded from all ids at each step. */
export class TextStream {
  private readonly out: StopText;

  constructor(private readonly tokenizer: TextTokenizer, stops: readonly string[]) {
    this.out = new StopText(stops, true);
  }

  get stopped(): boolean {
    return this.out.stopped;
  }

  /** Text emitted so far plus any text still held back. */
  get answer(): string {
    return this.out.answer;
  }

  /** Call with all generated ids after each new token; returns the piece to show (maybe ''). */
  push(ids: readonly number[]): string {
    if (this.out.stopped) return '';
    // Decoding the whole list each time keeps the text exact: pieces of a multi-byte
    // character only become text together. Answers are short, so this stays cheap.
    return this.out.update(this.tokenizer.decode([...ids]));
  }

  /** Everything still held back, once generation ended without a stop string. */
  flush(): string {
    return this.out.flush();
  }
}

/** What the loop needs from a decoder: logits for the prefix, then for each fed token. */
export interface LogitsSource {
  /** Runs the prefix; returns the logits of its last position. */
  prefill(): Promise<Float32Array>;
  /** Feeds one token at the next position; returns its logits. */
  step(tokenId: number): Promise<Float32Array>;
}

export interface LoopLimits {
  /** Positions the prefix occupies. */
  prefixPositions: number;
  /** Decoder window; no token is fed at a position at or past it. */
  contextLength: number;
  eosTokenId: number;
}

/**
 * The generation loop: prefill, then pick -> stream -> feed until EOS, a stop string,
 * maxNewTokens or the end of the window. The signal is checked before and after every model call.
 */
export async function* decodeLoop(
  source: LogitsSource,
  tokenizer: TextTokenizer,
  opts: GenerateOptions,
  limits: LoopLimits,
): AsyncGenerator<string, GenerationTimings> {
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) {
    throw new ArcError('internal', `maxNewTokens must be a non-negative integer (got ${opts.maxNewTokens}).`);
  }
  const start = performance.now();
  const plain = tokenPicker(opts);
  const pick =
    opts.answerFrom === undefined
      ? (logits: Float32Array) => plain(logits)
      : extractivePicker(tokenizer, opts.answerFrom, opts.stop ?? [], limits.eosTokenId, plain);
  const stream = new TextStream(tokenizer, opts.stop ?? []);
  throwIfAborted(opts.signal, 'Generation');
  let logits = await source.prefill();
  const prefillMs = performance.now() - start;
  let ttftMs = prefillMs;
  const ids: number[] = [];
  while (ids.length < opts.maxNewTokens) {
    const next = pick(logits, ids);
    if (ids.length === 0) ttftMs = performance.now() - start;
    if (next === limits.eosTokenId) break;
    ids.push(next);
    const piece = stream.push(ids);
    if (piece) yield piece;
    if (stream.stopped || ids.length >= opts.maxNewTokens) break;
    // The token just picked would sit at position prefix + ids.length - 1.
    if (limits.prefixPositions + ids.length - 1 >= limits.contextLength) break;
    throwIfAborted(opts.signal, 'Generation');
    logits = await source.step(next);
    // A stop that came during the step: its token is not picked or streamed (measured in the
    // Chat view, a token used to arrive after Stop).
    throwIfAborted(opts.signal, 'Generation');
  }
  const rest = stream.flush();
  if (rest) yield rest;
  const totalMs = performance.now() - start;
  const decodeMs = totalMs - prefillMs;
  return {
    prefillMs,
    ttftMs,
    totalMs,
    generatedTokens: ids.length,
    // Decode speed after the prefill: the figure that describes streaming.
    tokensPerSecond: decodeMs > 0 ? (ids.length * 1000) / decodeMs : 0,
    prefixPositions: limits.prefixPositions,
  };
}
