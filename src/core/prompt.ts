// The decoder prompt of docs/DESIGN.md, and the small helpers around it: rendering a chunk,
// splitting a document into encoder-sized chunks, and fitting context into the window.
//
//   prefix = [BOS] + context + tokens(questionTemplate with {question})
//   arc:  per chunk, its compressed vectors then the <Cont> vector; with
//         documentFormat.compressedHeader, the token ids of its rendered header come first
//   full: per chunk, the token ids of the rendered chunk (header + body ending in one "\n")
//   mixed: the compressed chunks as in arc, then the text chunks as in full (each group in
//          document order; which chunk takes which form is context/plan.ts's planMixed); with
//          prompt.contextOrder "rank", the text chunks first, then the compressed ones
//   chunks of every mode are in document order, or best-ranked first with prompt.contextOrder
//   "rank" (the callers order them)
//   none: no context (closed book)
import type { AnswerMode, ArcModel, CompressedChunk, Manifest, PrefixPart, TextTokenizer } from './api';
import type { ContextPlan } from './context/plan';
import { ArcError } from './errors';

/** What buildPrefix reads from a model. */
export type PromptModel = Pick<ArcModel, 'manifest' | 'encoder' | 'tokenizer' | 'decoder'>;

/** Tokenizer for decoder-side text (prompt, plain-text context, answer). */
export function decoderTokenizer(model: PromptModel): TextTokenizer {
  return model.decoder?.tokenizer ?? model.tokenizer;
}

/** Replaces every {name} placeholder; split/join keeps "$" in values literal (String.replace would not). */
function fill(template: string, name: string, value: string): string {
  return template.split(`{${name}}`).join(value);
}

/** documentFormat.header with {path} filled in: the start of every rendered chunk. */
export function chunkHeader(format: Manifest['documentFormat'], path: string): string {
  return fill(format.header, 'path', path);
}

/**
 * Decoder token ids that precede a compressed chunk's vectors: its rendered header tokenized on
 * its own (no BOS) when documentFormat.compressedHeader is set, else none.
 */
export function compressedHeaderIds(model: PromptModel, path: string): number[] {
  const format = model.manifest.documentFormat;
  return format.compressedHeader ? decoderTokenizer(model).encode(chunkHeader(format, path)) : [];
}

/**
 * Decoder positions a compressed chunk of `vectors` vectors takes: its header tokens (with
 * documentFormat.compressedHeader), its vectors and the <Cont> vector. Memoizes header costs
 * by path, since a file's chunks share one header.
 */
export function compressedCoster(model: PromptModel): (path: string, vectors: number) => number {
  if (!model.manifest.documentFormat.compressedHeader) return (_path, vectors) => vectors + 1;
  const headers = new Map<string, number>();
  return (path, vectors) => {
    let h = headers.get(path);
    if (h === undefined) headers.set(path, (h = compressedHeaderIds(model, path).length));
    return h + vectors + 1;
  };
}

/** A chunk as the model sees it: documentFormat.header, then the body with exactly one final "\n". */
export function renderChunk(format: Manifest['documentFormat'], path: string, body: string): string {
  return chunkHeader(format, path) + body.replace(/\n+$/, '') + '\n';
}

/** The text after the context: the question template filled with the (trimmed) question. */
export function questionText(manifest: Manifest, question: string): string {
  return fill(manifest.prompt.questionTemplate, 'question', question.trim());
}

export interface BuiltPrefix {
  parts: PrefixPart[];
  /** Decoder positions of the whole prefix. */
  positions: number;
  /**
   * Positions taken by the context alone: per compressed chunk its header tokens (with
   * documentFormat.compressedHeader), vectors and <Cont>; plus the text tokens.
   */
  contextPositions: number;
}

/** A chunk for full mode: its rendered text, or that text's decoder token ids. */
export type PlainChunk = string | readonly number[];

/**
 * A compressed chunk laid out in the prefix: the encoder output (from the cache or the encoder)
 * and the display path of the chunk, which its header as text needs when the manifest sets
 * documentFormat.compressedHeader (the cache is keyed by content, so the path comes from the
 * caller, never from the cache).
 */
export type PlacedChunk = CompressedChunk & { readonly path?: string };

/** Mixed mode's context: the compressed chunks and the text chunks, each in the order they are laid out in (prompt.contextOrder). */
export interface MixedContext {
  compressed: readonly PlacedChunk[];
  text: readonly PlainChunk[];
}

/** Mixed mode reads the best-ranked chunks as text; this many decoder tokens unless the manifest or the caller says otherwise. */
export const DEFAULT_MIXED_TEXT_BUDGET = 160;

/** The text budget a mixed-mode request uses: the caller's, else the model's, else the default. */
export function mixedTextBudget(manifest: Manifest, requested?: number): number {
  if (requested !== undefined) {
    if (!Number.isInteger(requested) || requested < 0) throw new ArcError('internal', `The text budget must be a whole number of tokens, 0 or more (got ${requested}).`);
    return requested;
  }
  return manifest.prompt.mixedTextBudget ?? DEFAULT_MIXED_TEXT_BUDGET;
}

/**
 * The chunks an extractive answer may quote (GenerateOptions.answerFrom, with the question): in
 * mixed mode the chunks read as text only, since that is where the policy put the code that
 * matters and a compressed chunk's exact spans are what ARC reads worst (the bundled model's arc
 * value questions: 8% exact match); in arc mode, where only vectors were read, the compressed
 * chunks' sources; in full mode the text read. Returned best-ranked first (the plan's `ranked`,
 * whatever the layout order); with `limit` (the manifest's prompt.quoteChunks) only the first
 * `limit` of those. docs/DESIGN.md, manifest fields prompt.extractive and prompt.quoteChunks.
 */
export function quotableChunks(mode: AnswerMode, p: Pick<ContextPlan, 'text' | 'ranked'>, limit?: number): number[] {
  let all = p.ranked;
  if (mode === 'mixed') {
    const isText = new Set(p.text);
    all = all.filter((i) => isText.has(i));
  }
  return all.slice(0, limit);
}

/** The manifest's prompt.contextOrder (absent: "document"). */
export function contextOrder(manifest: Manifest): 'document' | 'rank' {
  return manifest.prompt.contextOrder ?? 'document';
}

/**
 * Each compressed chunk as its vectors followed by the <Cont> vector, preceded by its header's
 * token ids when the manifest sets documentFormat.compressedHeader.
 */
function compressedParts(model: PromptModel, chunks: readonly unknown[], mode: string): { parts: PrefixPart[]; positions: number } {
  const cont = model.encoder.cont;
  const withHeader = model.manifest.documentFormat.compressedHeader === true;
  const headers = new Map<string, number[]>();
  const parts: PrefixPart[] = [];
  let positions = 0;
  for (const c of chunks) {
    if (typeof c !== 'object' || c === null || Array.isArray(c) || !('vectors' in c)) {
      throw new ArcError('internal', `${mode} mode takes compressed chunks (encoder output) for its compressed context.`);
    }
    const cc = c as PlacedChunk;
    if (cc.dim !== model.encoder.dim) throw new ArcError('internal', `A compressed chunk has width ${cc.dim}, the model expects ${model.encoder.dim}; it was made by another model.`);
    if (withHeader) {
      if (typeof cc.path !== 'string') throw new ArcError('internal', `${model.manifest.name} reads each compressed chunk after its header (documentFormat.compressedHeader); a compressed chunk came without its path.`);
      let ids = headers.get(cc.path);
      if (!ids) headers.set(cc.path, (ids = compressedHeaderIds(model, cc.path)));
      // Each part gets its own array: a consumer may keep or change one part's ids.
      if (ids.length > 0) parts.push({ kind: 'tokens', ids: [...ids] });
      positions += ids.length;
    }
    parts.push({ kind: 'vectors', data: cc.vectors, count: cc.count }, { kind: 'vectors', data: cont, count: 1 });
    positions += cc.count + 1;
  }
  return { parts, positions };
}

/** Each text chunk as the token ids of the rendered chunk. */
function textParts(tok: TextTokenizer, chunks: readonly unknown[], mode: string): { parts: PrefixPart[]; positions: number } {
  const parts: PrefixPart[] = [];
  let positions = 0;
  for (const c of chunks) {
    let ids: number[];
    if (typeof c === 'string') ids = tok.encode(c);
    else if (Array.isArray(c)) ids = [...(c as readonly number[])];
    else throw new ArcError('internal', `${mode} mode takes rendered chunk texts or their token ids for its text context.`);
    parts.push({ kind: 'tokens', ids });
    positions += ids.length;
  }
  return { parts, positions };
}

export function buildPrefix(model: PromptModel, mode: 'arc', chunks: readonly PlacedChunk[], question: string): BuiltPrefix;
export function buildPrefix(model: PromptModel, mode: 'full', chunks: readonly PlainChunk[], question: string): BuiltPrefix;
export function buildPrefix(model: PromptModel, mode: 'mixed', context: MixedContext, question: string): BuiltPrefix;
export function buildPrefix(model: PromptModel, mode: 'none', chunks: readonly never[], question: string): BuiltPrefix;
export function buildPrefix(model: PromptModel, mode: AnswerMode, chunks: readonly (PlacedChunk | PlainChunk)[] | MixedContext, question: string): BuiltPrefix;
export function buildPrefix(model: PromptModel, mode: AnswerMode, chunks: readonly (PlacedChunk | PlainChunk)[] | MixedContext, question: string): BuiltPrefix {
  const dec = model.decoder;
  const cfg = model.manifest.decoder;
  if (!dec || !cfg) {
    throw new ArcError('model-missing', `Model ${model.manifest.name} has no decoder (encoder-only package); answering needs a package with decoder.onnx.`);
  }
  const tok = decoderTokenizer(model);
  const isList = Array.isArray(chunks);
  const list = (isList ? chunks : []) as readonly unknown[];
  if (!isList && mode !== 'mixed') throw new ArcError('internal', `${mode} mode takes a list of chunks.`);
  if (isList && mode === 'mixed') throw new ArcError('internal', 'mixed mode takes { compressed, text } chunks.');
  const context: { parts: PrefixPart[]; positions: number }[] = [];
  if (mode === 'arc') context.push(compressedParts(model, list, mode));
  else if (mode === 'full') context.push(textParts(tok, list, mode));
  else if (mode === 'mixed') {
    // "document" order: compressed chunks first, text chunks last, nearest the question. "rank"
    // order: best-ranked first, and the text chunks are the best-ranked, so they come first.
    const m = chunks as MixedContext;
    const compressed = compressedParts(model, m.compressed, mode);
    const text = textParts(tok, m.text, mode);
    context.push(...(contextOrder(model.manifest) === 'rank' ? [text, compressed] : [compressed, text]));
  } else if (list.length > 0) {
    throw new ArcError('internal', 'none mode (closed book) takes no context.');
  }
  const parts: PrefixPart[] = [{ kind: 'tokens', ids: [cfg.bosTokenId] }, ...context.flatMap((c) => c.parts)];
  const contextPositions = context.reduce((n, c) => n + c.positions, 0);
  const q = tok.encode(questionText(model.manifest, question));
  parts.push({ kind: 'tokens', ids: q });
  return { parts, positions: 1 + contextPositions + q.length, contextPositions };
}

/**
 * Positions left for context once BOS, the question and the answer are accounted for. The
 * last answer token is never fed back, hence maxNewTokens - 1.
 */
export function contextBudget(model: PromptModel, question: string, maxNewTokens: number): number {
  const cfg = model.manifest.decoder;
  if (!cfg) return 0;
  const fixed = 1 + decoderTokenizer(model).encode(questionText(model.manifest, question)).length;
  return Math.max(0, cfg.contextLength - fixed - Math.max(0, maxNewTokens - 1));
}

export interface TruncationReport {
  /** Chunks given, kept whole, kept in part, and left out entirely. */
  chunks: number;
  kept: number;
  partial: number;
  dropped: number;
  /** Context positions kept and cut (tokens in full mode; header tokens, vectors + <Cont> in arc mode). */
  keptPositions: number;
  cutPositions: number;
}

/**
 * Plain-text truncation: keeps chunks in order until the budget is spent, cuts the first
 * chunk that does not fit at the budget (its leading tokens stay) and leaves the rest out.
 */
export function truncateTokens(chunks: readonly (readonly number[])[], budget: number): { chunks: number[][]; report: TruncationReport } {
  const out: number[][] = [];
  const report: TruncationReport = { chunks: chunks.length, kept: 0, partial: 0, dropped: 0, keptPositions: 0, cutPositions: 0 };
  let left = Math.max(0, budget);
  for (const c of chunks) {
    if (c.length <= left) {
      out.push([...c]);
      report.kept++;
      left -= c.length;
      report.keptPositions += c.length;
    } else if (left > 0) {
      out.push(c.slice(0, left));
      report.partial++;
      report.keptPositions += left;
      report.cutPositions += c.length - left;
      left = 0;
    } else {
      report.dropped++;
      report.cutPositions += c.length;
    }
  }
  return { chunks: out, report };
}

/**
 * Arc-mode fitting: a chunk costs its vectors + one <Cont>, plus `extra[i]` positions (its
 * header tokens with documentFormat.compressedHeader, see compressedHeaderIds); chunks that no
 * longer fit are left out whole (part of a chunk's vectors is not a meaningful context).
 */
export function fitCompressed<C extends CompressedChunk>(chunks: readonly C[], budget: number, extra?: readonly number[]): { chunks: C[]; report: TruncationReport } {
  const out: C[] = [];
  const report: TruncationReport = { chunks: chunks.length, kept: 0, partial: 0, dropped: 0, keptPositions: 0, cutPositions: 0 };
  let left = Math.max(0, budget);
  for (const [i, c] of chunks.entries()) {
    const cost = c.count + 1 + (extra?.[i] ?? 0);
    // Later chunks are also left out, so the kept context stays a prefix of the given order.
    if (report.dropped === 0 && cost <= left) {
      out.push(c);
      report.kept++;
      report.keptPositions += cost;
      left -= cost;
    } else {
      report.dropped++;
      report.cutPositions += cost;
    }
  }
  return { chunks: out, report };
}

/** One encoder-sized piece of a document, rendered. */
export interface DocumentChunk {
  path: string;
  /** 1-based inclusive line range of the body in the document. */
  startLine: number;
  endLine: number;
  text: string;
  ids: number[];
}

/**
 * Splits a document at line boundaries into rendered chunks of at most maxTokens tokens each
 * (header included). A single line longer than that is split inside the line. A simple
 * splitter for the CLI and tests; the context pipeline has its own smarter chunker.
 */
export function splitDocument(tokenizer: TextTokenizer, format: Manifest['documentFormat'], path: string, text: string, maxTokens: number): DocumentChunk[] {
  const lines = text.replace(/\n+$/, '').split('\n');
  const chunks: DocumentChunk[] = [];
  const render = (from: number, to: number): { text: string; ids: number[] } => {
    const t = renderChunk(format, path, lines.slice(from, to).join('\n'));
    return { text: t, ids: tokenizer.encode(t) };
  };
  // Per-line counts (each with its "\n") give a first guess; tokenizing the rendered candidate
  // then makes it exact, since BPE can merge across line ends.
  const lineCost = lines.map((l) => tokenizer.encode(l + '\n').length);
  const headerCost = tokenizer.encode(chunkHeader(format, path)).length;
  let start = 0;
  while (start < lines.length) {
    let end = start;
    let estimate = headerCost;
    while (end < lines.length && estimate + lineCost[end]! <= maxTokens) estimate += lineCost[end++]!;
    end = Math.max(end, start + 1);
    let best = render(start, end);
    while (best.ids.length > maxTokens && end > start + 1) best = render(start, --end);
    if (best.ids.length > maxTokens) {
      for (const piece of splitLongLine(tokenizer, format, path, lines[start]!, maxTokens)) {
        chunks.push({ path, startLine: start + 1, endLine: start + 1, ...piece });
      }
      start = end;
      continue;
    }
    while (end < lines.length) {
      const next = render(start, end + 1);
      if (next.ids.length > maxTokens) break;
      best = next;
      end++;
    }
    chunks.push({ path, startLine: start + 1, endLine: end, ...best });
    start = end;
  }
  return chunks;
}

function splitLongLine(tokenizer: TextTokenizer, format: Manifest['documentFormat'], path: string, line: string, maxTokens: number): { text: string; ids: number[] }[] {
  const out: { text: string; ids: number[] }[] = [];
  let rest = line;
  while (rest.length > 0) {
    // Longest prefix whose rendering fits, by binary search over its length in characters.
    let lo = 1;
    let hi = rest.length;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (tokenizer.encode(renderChunk(format, path, rest.slice(0, mid))).length <= maxTokens) lo = mid;
      else hi = mid - 1;
    }
    const t = renderChunk(format, path, rest.slice(0, lo));
    const ids = tokenizer.encode(t);
    if (ids.length > maxTokens) {
      throw new ArcError('context-too-large', `The chunk header of ${path} alone needs more than ${maxTokens} tokens (encoder.maxChunkTokens).`);
    }
    out.push({ text: t, ids });
    rest = rest.slice(lo);
  }
  return out;
}
