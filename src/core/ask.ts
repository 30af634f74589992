// The ask() pipeline: sources -> chunks (token counts and search terms, from the lexical index
// when the files are unchanged) -> plan (which chunks, as text or compressed) -> the chosen
// chunks only: (cache) -> compressed vectors / token ids -> decoder prefix -> streamed answer.
// Selection needs no vectors: a chunk's vector count follows from its token count (the group
// rule, encoder.ts groupSizes), so only what the window holds is read or encoded. Each stage is
// a function below; askImpl is the thin loop that runs them and yields their events. It never
// throws: failures end the stream with an `error` event carrying an ArcErrorCode.
import type { AnswerMode, AskFn, AskOptions, ArcModel, CompressedChunk, GenerationTimings } from './api';
import type { ArcErrorCode, AskEvent, AskRequest, AskStats, Citation, FileCompression } from './types';
import { VectorCache } from './context/cache';
import { renderHeader, type Chunk, type ChunkOptions } from './context/chunker';
import { chunkFileIndexed, openChunkIndex, type ChunkIndex } from './context/chunkIndex';
import { compressChunks } from './context/compress';
import { bm25Scores, bodyOf, LexicalIndex, lexicalIndexCap, lexiconsFor } from './context/lexicalIndex';
import { planArc, planFull, planMixedFor, type ContextPlan } from './context/plan';
import { boostScores } from './context/select';
import { collectSources, type SkipReport, type SourceFile } from './context/sources';
import { groupSizes } from './encoder';
import { ArcError, errorMessage, throwIfAborted } from './errors';
import { buildPrefix, compressedCoster, contextBudget, decoderTokenizer, mixedTextBudget, type BuiltPrefix, type PlacedChunk } from './prompt';

export type { AskOptions };

const ERROR_CODES: ReadonlySet<string> = new Set<ArcErrorCode>([
  'model-missing',
  'model-corrupt',
  'provider-unavailable',
  'no-sources',
  'empty-question',
  'cancelled',
  'context-too-large',
  'decoder-server',
  'internal',
]);

/** Maps anything thrown to an error event; core errors (ArcError) carry their own code. */
export function toErrorEvent(e: unknown, signal?: AbortSignal): Extract<AskEvent, { type: 'error' }> {
  if (signal?.aborted || (e instanceof Error && e.name === 'AbortError')) {
    return { type: 'error', code: 'cancelled', message: 'The request was cancelled.' };
  }
  const code = typeof e === 'object' && e !== null ? (e as { code?: unknown }).code : undefined;
  const message = errorMessage(e);
  if (typeof code === 'string' && ERROR_CODES.has(code)) return { type: 'error', code: code as ArcErrorCode, message };
  return { type: 'error', code: 'internal', message: `Internal error: ${message}` };
}

function emptyStats(mode: AskRequest['mode'], provider: string): AskStats {
  return {
    mode,
    provider,
    sourceTokens: 0,
    textTokens: 0,
    compressedVectors: 0,
    contextPositions: 0,
    ratio: 0,
    encodeMs: 0,
    prefillMs: 0,
    ttftMs: 0,
    totalMs: 0,
    tokensPerSecond: 0,
    generatedTokens: 0,
    cacheHits: 0,
    cacheMisses: 0,
    chunksIncluded: 0,
    textChunks: 0,
    compressedChunks: 0,
    chunksLeftOut: 0,
    truncatedTokens: 0,
  };
}

/** Adjacent chunks of one file become one citation (a file split in three reads as one range). */
export function mergeCitations(chunks: readonly Pick<Chunk, 'path' | 'absPath' | 'startLine' | 'endLine'>[]): Citation[] {
  const out: Citation[] = [];
  for (const c of chunks) {
    const last = out[out.length - 1];
    if (last && last.path === c.path && c.startLine <= last.endLine + 1 && c.endLine >= last.startLine) {
      last.endLine = Math.max(last.endLine, c.endLine);
      continue;
    }
    out.push({ path: c.path, ...(c.absPath ? { absPath: c.absPath } : {}), startLine: c.startLine, endLine: c.endLine });
  }
  return out;
}

function describeSkips(skipped: SkipReport): string {
  const parts = Object.entries(skipped.counts).map(([reason, n]) => `${n} ${reason}`);
  return parts.length > 0 ? ` (skipped: ${parts.join(', ')})` : '';
}

type ContextMode = Exclude<AnswerMode, 'none'>;

/** A chunk as planning sees it: everything but its token ids, and their count. */
export type ChunkRef = Omit<Chunk, 'tokenIds'> & { tokens: number; file: number };

/** The forms a mode reads the chosen chunks in; entries only for chosen chunks (sparse). */
interface Materialized {
  /** Encoder output (arc, mixed). */
  compressed: CompressedChunk[] | null;
  /** Decoder token ids of each rendered chunk (full, mixed). */
  plainIds: number[][] | null;
}

/** What gatherChunks found: chunk refs in document order and what ranking and loading need. */
interface Gathered {
  files: SourceFile[];
  refs: ChunkRef[];
  /** scoreChunks' numbers from the lexical index; null when ranking must build them (no cache folder). */
  scores: Float64Array | null;
  /** All chunks with token ids, when they were made anyway (no cache folder); else loaded on demand. */
  full: Chunk[] | null;
  chunkIndex: ChunkIndex | null;
  chunkOpts: ChunkOptions;
}

/** Vectors the encoder makes for a chunk of `tokens` tokens (the group rule; BOS counts when added). */
export function predictedVectors(model: ArcModel, tokens: number): number {
  return groupSizes(tokens + (model.manifest.encoder.addBos ? 1 : 0), model.encoder.poolingFactor).length;
}

/**
 * Stages 1-2: sources, then chunks sized for the encoder (every mode uses them, so citations
 * agree). With a cache folder, unchanged files come from the lexical index (ranges, token
 * counts, search terms) without tokenizing or reading token ids; the others are chunked through
 * the chunk index and indexed.
 */
async function* gatherChunks(model: ArcModel, request: AskRequest, options: AskOptions, question: string): AsyncGenerator<AskEvent, Gathered> {
  const { signal } = options;
  yield { type: 'progress', stage: 'scan', message: 'Looking for source files' };
  const collected = await collectSources({
    roots: request.roots,
    sources: request.sources,
    include: request.include,
    exclude: request.exclude,
    maxFileBytes: options.maxFileBytes,
    signal,
  });
  yield { type: 'progress', stage: 'scan', message: `Scanned ${collected.scanned} files, ${collected.files.length} usable`, done: collected.scanned, total: collected.scanned };
  if (Object.keys(collected.skipped.counts).length > 0) yield { type: 'skipped', ...collected.skipped };
  const where = request.roots && request.roots.length > 0 ? ` in ${request.roots.join(', ')}` : '';
  if (collected.files.length === 0) {
    throw new ArcError('no-sources', `No readable text files to answer from${where}${describeSkips(collected.skipped)}. Open a folder with source code or add files to the question.`);
  }
  const indexLog: string[] = [];
  const log = (line: string) => {
    indexLog.push(line);
    options.log?.(line);
  };
  const chunkIndex = await openChunkIndex(model, options.cacheDir, { cacheMaxBytes: options.cacheMaxBytes, log });
  const chunkOpts: ChunkOptions = { maxTokens: model.encoder.maxChunkTokens, header: model.manifest.documentFormat.header };
  const files = collected.files;
  let refs: ChunkRef[];
  let scores: Float64Array | null = null;
  let full: Chunk[] | null = null;
  let message: string;
  if (chunkIndex && options.cacheDir) {
    const lexical = new LexicalIndex(options.cacheDir, chunkIndex.identity, { maxBytes: options.cacheMaxBytes !== undefined ? lexicalIndexCap(options.cacheMaxBytes) : undefined, log });
    const r = await lexiconsFor(files, model.tokenizer, chunkOpts, chunkIndex, lexical, signal);
    throwIfAborted(signal, 'Indexing files');
    refs = r.files.flatMap((lf, k) => {
      const f = files[k];
      const header = renderHeader(chunkOpts.header, f.path);
      return lf.lexicon.chunks.map((m) => {
        const body = bodyOf(f, m);
        return { path: f.path, absPath: f.absPath, origin: f.origin, startLine: m.startLine, endLine: m.endLine, body, text: header + body, hash: m.hash, tokens: m.tokens, file: k };
      });
    });
    const bm25 = bm25Scores(r.files, question);
    scores = Float64Array.from(boostScores(refs, bm25, question));
    message = `${refs.length} chunks from ${files.length} files${r.fromIndex > 0 ? ` (${r.fromIndex} unchanged, read from the index)` : ''}`;
  } else {
    // No lexical index (no cache folder, or a tokenizer not loaded from a file): every chunk
    // is made here anyway, so keep them; ranking builds its search index from the bodies.
    full = [];
    refs = [];
    let unchanged = 0;
    for (let k = 0; k < files.length && !signal?.aborted; k++) {
      const { chunks, from } = await chunkFileIndexed(files[k], model.tokenizer, chunkOpts, chunkIndex);
      if (from !== 'chunked') unchanged++;
      for (const c of chunks) {
        const { tokenIds, ...rest } = c;
        full.push(c);
        refs.push({ ...rest, tokens: tokenIds.length, file: k });
      }
    }
    if (chunkIndex) await chunkIndex.evictIfGrown();
    throwIfAborted(signal, 'Splitting files into chunks');
    message = `${refs.length} chunks from ${files.length} files${unchanged > 0 ? ` (${unchanged} unchanged, not tokenized again)` : ''}`;
  }
  for (const line of indexLog) yield { type: 'progress', stage: 'tokenize', message: line };
  yield { type: 'progress', stage: 'tokenize', message, done: files.length, total: files.length };
  if (refs.length === 0) {
    throw new ArcError('no-sources', `The files found${where} contain only whitespace${describeSkips(collected.skipped)}. Open a folder with source code or add files to the question.`);
  }
  return { files, refs, scores, full, chunkIndex, chunkOpts };
}

/** The chosen chunks with their token ids: from the full list, else their files' chunks (memo, chunk index or tokenizer). */
async function loadChunks(model: ArcModel, g: Gathered, chosen: readonly number[]): Promise<Map<number, Chunk>> {
  const out = new Map<number, Chunk>();
  if (g.full) {
    for (const i of chosen) out.set(i, g.full[i]);
    return out;
  }
  const byFile = new Map<number, number[]>();
  for (const i of chosen) {
    const list = byFile.get(g.refs[i].file);
    if (list) list.push(i);
    else byFile.set(g.refs[i].file, [i]);
  }
  for (const [k, list] of byFile) {
    const { chunks } = await chunkFileIndexed(g.files[k], model.tokenizer, g.chunkOpts, g.chunkIndex);
    const byStart = new Map(chunks.map((c) => [`${c.startLine}:${c.hash}`, c]));
    for (const i of list) {
      const c = byStart.get(`${g.refs[i].startLine}:${g.refs[i].hash}`);
      if (!c) throw new Error(`${g.refs[i].path}:${g.refs[i].startLine} is not among the file's chunks (the index and the chunker disagree)`);
      out.set(i, c);
    }
  }
  if (g.chunkIndex) await g.chunkIndex.evictIfGrown();
  return out;
}

/** Decoder positions of each chunk in each form, computed before anything is read or encoded. */
interface Costs {
  /** Decoder tokens of the rendered chunk (full, mixed); with another decoder tokenizer, its ids too. */
  text: number[] | null;
  decoderIds: number[][] | null;
  /** Predicted vectors (arc, mixed). */
  vectors: number[];
  /** Positions of the compressed form: header tokens (documentFormat.compressedHeader) + vectors + <Cont>. */
  compressed: number[];
}

function costsFor(model: ArcModel, refs: readonly ChunkRef[], mode: ContextMode): Costs {
  const vectors = refs.map((r) => predictedVectors(model, r.tokens));
  const coster = compressedCoster(model);
  const compressed = mode === 'full' ? [] : refs.map((r, i) => coster(r.path, vectors[i]));
  if (mode === 'arc') return { text: null, decoderIds: null, vectors, compressed };
  // The decoder may read text with its own tokenizer; chunks were sized with the encoder's.
  const tok = decoderTokenizer(model);
  if (tok === model.tokenizer) return { text: refs.map((r) => r.tokens), decoderIds: null, vectors, compressed };
  const decoderIds = refs.map((r) => tok.encode(r.text));
  return { text: decoderIds.map((ids) => ids.length), decoderIds, vectors, compressed };
}

/** Stage 5: compressed vectors (from the cache or the encoder) and/or decoder token ids of the chosen chunks only. */
async function* materialize(model: ArcModel, g: Gathered, p: ContextPlan, costs: Costs, mode: ContextMode, options: AskOptions, stats: AskStats): AsyncGenerator<AskEvent, Materialized> {
  const out: Materialized = { compressed: null, plainIds: null };
  const loaded = await loadChunks(model, g, [...p.text, ...p.compressed]);
  if ((mode === 'arc' || mode === 'mixed') && p.compressed.length > 0) {
    const logLines: string[] = [];
    const cache = options.cacheDir
      ? new VectorCache(options.cacheDir, {
          maxBytes: options.cacheMaxBytes,
          log: (line) => {
            logLines.push(line);
            options.log?.(line);
          },
        })
      : null;
    const chunks = p.compressed.map((i) => loaded.get(i) as Chunk);
    const it = compressChunks(chunks, { encoder: model.encoder, modelIdentity: model.identity, cache, signal: options.signal });
    let r = await it.next();
    while (!r.done) {
      for (const line of logLines.splice(0)) yield { type: 'progress', stage: 'encode', message: line };
      const pr = r.value;
      yield { type: 'progress', stage: 'encode', message: `Compressed ${pr.done}/${pr.total} chosen chunks (${pr.cacheHits} from cache, ${pr.encoded} encoded)`, done: pr.done, total: pr.total };
      r = await it.next();
    }
    for (const line of logLines.splice(0)) yield { type: 'progress', stage: 'encode', message: line };
    out.compressed = [];
    r.value.compressed.forEach((c, k) => {
      const i = p.compressed[k];
      // The plan counted on the group rule; an encoder that breaks it would overrun the window.
      if (c.count !== costs.vectors[i]) throw new Error(`The encoder made ${c.count} vectors for ${g.refs[i].path}:${g.refs[i].startLine} (${g.refs[i].tokens} tokens); the group rule gives ${costs.vectors[i]}.`);
      (out.compressed as CompressedChunk[])[i] = c;
    });
    stats.cacheHits = r.value.cacheHits;
    stats.cacheMisses = chunks.length - r.value.cacheHits;
    stats.encodeMs = r.value.encodeMs;
  }
  if (mode === 'full' || mode === 'mixed') {
    out.plainIds = [];
    for (const i of p.text) out.plainIds[i] = costs.decoderIds ? costs.decoderIds[i] : (loaded.get(i) as Chunk).tokenIds;
  }
  return out;
}

/** Stage 3: which chunks reach the decoder, and in which form (from token counts alone). */
function plan(mode: ContextMode, g: Gathered, costs: Costs, question: string, budget: number, textBudget: number): ContextPlan {
  const rankable = (i: number) => ({ path: g.refs[i].path, body: g.refs[i].body, origin: g.refs[i].origin });
  const compressedCost = (i: number) => costs.compressed[i];
  const textCost = (i: number) => (costs.text as number[])[i];
  const scores = g.scores ?? undefined;
  if (mode === 'arc') return planArc(g.refs.map((_, i) => ({ ...rankable(i), cost: compressedCost(i) })), question, budget, scores);
  if (mode === 'full') return planFull(g.refs.map((_, i) => ({ ...rankable(i), cost: textCost(i) })), question, budget, scores);
  return planMixedFor(
    g.refs.map((_, i) => rankable(i)),
    g.refs.map((_, i) => ({ text: textCost(i), compressed: compressedCost(i) })),
    question,
    textBudget,
    budget,
    scores,
  );
}

/** Source tokens of a chunk that reach the decoder: a cut chunk counts its kept share. */
function keptSourceTokens(ref: ChunkRef, i: number, p: ContextPlan, costs: Costs): number {
  if (!p.partial || p.partial.index !== i) return ref.tokens;
  const plain = (costs.text as number[])[i];
  return plain > 0 ? Math.round((ref.tokens * p.partial.keep) / plain) : 0;
}

/** The selection event: merged citations overall and per form, and per-file figures. */
function selectionEvent(chunks: ChunkRef[], costs: Costs, mode: ContextMode, p: ContextPlan, budget: number): Extract<AskEvent, { type: 'selection' }> {
  const text = new Set(p.text);
  const included = new Set([...p.text, ...p.compressed]);
  const files = new Map<string, FileCompression>();
  chunks.forEach((c, i) => {
    const f = files.get(c.path) ?? { path: c.path, tokens: 0, vectors: 0, chunks: 0, included: 0, textChunks: 0 };
    f.tokens += c.tokens;
    f.vectors += mode === 'full' ? 0 : costs.vectors[i];
    f.chunks++;
    if (included.has(i)) f.included++;
    if (text.has(i)) f.textChunks++;
    files.set(c.path, f);
  });
  const pick = (list: number[]) => list.map((i) => chunks[i]);
  return {
    type: 'selection',
    included: mergeCitations(chunks.filter((_, i) => included.has(i))),
    text: mergeCitations(pick(p.text)),
    compressed: mergeCitations(pick(p.compressed)),
    leftOut: mergeCitations(pick(p.leftOut)),
    files: [...files.values()],
    budget,
  };
}

/** Stage 6: the decoder prefix the plan describes (layout in prompt.ts and docs/DESIGN.md). */
function layout(model: ArcModel, mode: ContextMode, refs: readonly ChunkRef[], forms: Materialized, p: ContextPlan, question: string): BuiltPrefix {
  // The path comes with the chunk, not from the cache (keyed by content): its header as text needs it.
  const vectorsOf = (i: number): PlacedChunk => ({ ...(forms.compressed as CompressedChunk[])[i], path: refs[i].path });
  const idsOf = (i: number) => {
    const all = (forms.plainIds as number[][])[i];
    return p.partial && p.partial.index === i ? all.slice(0, p.partial.keep) : all;
  };
  if (mode === 'arc') return buildPrefix(model, 'arc', p.compressed.map(vectorsOf), question);
  if (mode === 'full') return buildPrefix(model, 'full', p.text.map(idsOf), question);
  return buildPrefix(model, 'mixed', { compressed: p.compressed.map(vectorsOf), text: p.text.map(idsOf) }, question);
}

function contextStats(stats: AskStats, chunks: ChunkRef[], costs: Costs, forms: Materialized, p: ContextPlan, prefix: BuiltPrefix): void {
  const kept = (i: number) => keptSourceTokens(chunks[i], i, p, costs);
  stats.textTokens = p.text.reduce((n, i) => n + kept(i), 0);
  stats.sourceTokens = stats.textTokens + p.compressed.reduce((n, i) => n + chunks[i].tokens, 0);
  stats.compressedVectors = p.compressed.reduce((n, i) => n + (forms.compressed as CompressedChunk[])[i].count, 0);
  stats.contextPositions = prefix.contextPositions;
  // Over the whole context in every mode: what the decoder would read as plain text, per position it read.
  stats.ratio = prefix.contextPositions > 0 ? stats.sourceTokens / prefix.contextPositions : 0;
  stats.textChunks = p.text.length;
  stats.compressedChunks = p.compressed.length;
  stats.chunksIncluded = p.text.length + p.compressed.length;
  stats.chunksLeftOut = p.leftOut.length;
  const all = chunks.reduce((n, c) => n + c.tokens, 0);
  stats.truncatedTokens = all - stats.sourceTokens;
}

/** Stage 7: streams the answer; returns it with the timings. */
async function* generate(model: ArcModel, prefix: BuiltPrefix, request: AskRequest, maxNewTokens: number, signal: AbortSignal | undefined): AsyncGenerator<AskEvent, { answer: string; timings: GenerationTimings; firstTokenAt: number | null }> {
  const gen = (model.decoder as NonNullable<ArcModel['decoder']>).generate(prefix.parts, {
    maxNewTokens,
    temperature: request.temperature,
    topP: request.topP,
    stop: model.manifest.prompt.stop,
    signal,
  });
  let answer = '';
  let firstTokenAt: number | null = null;
  try {
    let r = await gen.next();
    while (!r.done) {
      if (firstTokenAt === null) {
        firstTokenAt = performance.now();
        yield { type: 'progress', stage: 'generate', message: 'Answering' };
      }
      answer += r.value;
      yield { type: 'token', text: r.value };
      r = await gen.next();
    }
    return { answer, timings: r.value, firstTokenAt };
  } finally {
    // The consumer may stop reading early; stop the decoder with it.
    await gen.return(undefined as unknown as GenerationTimings).catch(() => {});
  }
}

async function* askImpl(model: ArcModel, request: AskRequest, options: AskOptions = {}): AsyncGenerator<AskEvent, void> {
  const t0 = performance.now();
  const { signal } = options;
  const mode = request.mode;
  const stats = emptyStats(mode, model.provider);
  try {
    const question = request.question.trim();
    if (question === '') throw new ArcError('empty-question', 'The question is empty. Type a question about the code.');
    const dec = model.manifest.decoder;
    if (!dec || !model.decoder) {
      throw new ArcError('model-missing', `The model package ${model.dir} has no decoder, so it cannot answer questions. Choose a package with a decoder.onnx.`);
    }
    const maxNewTokens = request.maxNewTokens ?? model.manifest.prompt.maxNewTokens;
    const budget = contextBudget(model, question, maxNewTokens);

    let included: ChunkRef[] = [];
    let prefix: BuiltPrefix;
    if (mode === 'none') {
      prefix = buildPrefix(model, 'none', [], question);
    } else {
      if (budget <= 0) {
        throw new ArcError('context-too-large', `The question and the answer room (${maxNewTokens} tokens) fill the model's ${dec.contextLength}-position window. Ask a shorter question.`);
      }
      const textBudget = mode === 'mixed' ? mixedTextBudget(model.manifest, request.textBudget) : 0;
      const g = yield* gatherChunks(model, request, options, question);
      yield { type: 'progress', stage: 'select', message: `Choosing chunks for ${budget} context positions${mode === 'mixed' ? ` (up to ${textBudget} tokens as text)` : ''}` };
      const costs = costsFor(model, g.refs, mode);
      const p = plan(mode, g, costs, question, budget, textBudget);
      const chosen = new Set([...p.text, ...p.compressed]);
      included = g.refs.filter((_, i) => chosen.has(i));
      if (included.length === 0) {
        throw new ArcError('context-too-large', `No chunk fits the ${budget} positions left for context. Ask a shorter question or use a model with a larger window.`);
      }
      yield selectionEvent(g.refs, costs, mode, p, budget);
      const forms = yield* materialize(model, g, p, costs, mode, options, stats);
      prefix = layout(model, mode, g.refs, forms, p, question);
      contextStats(stats, g.refs, costs, forms, p, prefix);
    }

    throwIfAborted(signal, 'The question');
    yield { type: 'progress', stage: 'prefill', message: `Reading ${prefix.positions} positions` };
    const { answer, timings, firstTokenAt } = yield* generate(model, prefix, request, maxNewTokens, signal);
    throwIfAborted(signal, 'Answering');
    stats.prefillMs = timings.prefillMs;
    stats.tokensPerSecond = timings.tokensPerSecond;
    stats.generatedTokens = timings.generatedTokens;
    if (timings.backend) Object.assign(stats, { decoderBackend: timings.backend, serverTtftMs: timings.serverTtftMs });
    stats.totalMs = performance.now() - t0;
    // Time to first token as the user feels it: scanning, encoding and prefill included.
    stats.ttftMs = (firstTokenAt ?? performance.now()) - t0;
    yield { type: 'citations', citations: mergeCitations(included) };
    yield { type: 'stats', stats };
    yield { type: 'done', answer, stats };
  } catch (e) {
    yield toErrorEvent(e, signal);
  }
}

export const ask = askImpl satisfies AskFn;
