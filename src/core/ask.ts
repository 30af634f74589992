// The ask() pipeline: sources -> chunks -> (cache) -> compressed vectors / token ids -> plan
// (which chunks, as text or compressed) -> decoder prefix -> streamed answer. Each stage is a
// function below; askImpl is the thin loop that runs them and yields their events. It never
// throws: failures end the stream with an `error` event carrying an ArcErrorCode.
import type { AnswerMode, AskFn, AskOptions, ArcModel, CompressedChunk, GenerationTimings } from './api';
import type { ArcErrorCode, AskEvent, AskRequest, AskStats, Citation, FileCompression } from './types';
import { VectorCache } from './context/cache';
import type { Chunk } from './context/chunker';
import { chunkFilesIndexed, openChunkIndex } from './context/chunkIndex';
import { compressChunks } from './context/compress';
import { planArc, planFull, planMixedFor, type ContextPlan } from './context/plan';
import { collectSources, type SkipReport } from './context/sources';
import { ArcError, errorMessage, throwIfAborted } from './errors';
import { buildPrefix, contextBudget, decoderTokenizer, mixedTextBudget, type BuiltPrefix } from './prompt';

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
export function mergeCitations(chunks: Chunk[]): Citation[] {
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

/** The forms a mode may read the chunks in, one entry per chunk. */
interface Materialized {
  /** Encoder output (arc, mixed). */
  compressed: CompressedChunk[] | null;
  /** Decoder token ids of each rendered chunk (full, mixed). */
  plainIds: number[][] | null;
}

/** Stages 1-2: sources, then chunks sized for the encoder (every mode uses them, so citations agree). */
async function* gatherChunks(model: ArcModel, request: AskRequest, options: AskOptions): AsyncGenerator<AskEvent, Chunk[]> {
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
  // Unchanged files come from the chunk index beside the vector cache, untokenized.
  const indexLog: string[] = [];
  const index = await openChunkIndex(model, options.cacheDir, {
    cacheMaxBytes: options.cacheMaxBytes,
    log: (line) => {
      indexLog.push(line);
      options.log?.(line);
    },
  });
  const chunked = await chunkFilesIndexed(collected.files, model.tokenizer, { maxTokens: model.encoder.maxChunkTokens, header: model.manifest.documentFormat.header }, index, signal);
  const chunks = chunked.chunks;
  throwIfAborted(signal, 'Splitting files into chunks');
  for (const line of indexLog) yield { type: 'progress', stage: 'tokenize', message: line };
  const unchanged = chunked.fromIndex + chunked.fromMemo;
  yield { type: 'progress', stage: 'tokenize', message: `${chunks.length} chunks from ${collected.files.length} files${unchanged > 0 ? ` (${unchanged} unchanged, not tokenized again)` : ''}`, done: collected.files.length, total: collected.files.length };
  if (chunks.length === 0) {
    throw new ArcError('no-sources', `The files found${where} contain only whitespace${describeSkips(collected.skipped)}. Open a folder with source code or add files to the question.`);
  }
  return chunks;
}

/** Stage 3: compressed vectors (from the cache or the encoder) and/or decoder token ids, as the mode reads them. */
async function* materialize(model: ArcModel, chunks: Chunk[], mode: ContextMode, options: AskOptions, stats: AskStats): AsyncGenerator<AskEvent, Materialized> {
  const out: Materialized = { compressed: null, plainIds: null };
  if (mode === 'arc' || mode === 'mixed') {
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
    const it = compressChunks(chunks, { encoder: model.encoder, modelIdentity: model.identity, cache, signal: options.signal });
    let r = await it.next();
    while (!r.done) {
      for (const line of logLines.splice(0)) yield { type: 'progress', stage: 'encode', message: line };
      const p = r.value;
      yield { type: 'progress', stage: 'encode', message: `Compressed ${p.done}/${p.total} chunks (${p.cacheHits} from cache, ${p.encoded} encoded)`, done: p.done, total: p.total };
      r = await it.next();
    }
    for (const line of logLines.splice(0)) yield { type: 'progress', stage: 'encode', message: line };
    out.compressed = r.value.compressed;
    stats.cacheHits = r.value.cacheHits;
    stats.cacheMisses = chunks.length - r.value.cacheHits;
    stats.encodeMs = r.value.encodeMs;
  }
  if (mode === 'full' || mode === 'mixed') {
    // The decoder may read text with its own tokenizer; chunks were sized with the encoder's.
    const tok = decoderTokenizer(model);
    out.plainIds = tok === model.tokenizer ? chunks.map((c) => c.tokenIds) : chunks.map((c) => tok.encode(c.text));
  }
  return out;
}

/** Stage 4: which chunks reach the decoder, and in which form. */
function plan(mode: ContextMode, chunks: Chunk[], forms: Materialized, question: string, budget: number, textBudget: number): ContextPlan {
  const rankable = (i: number) => ({ path: chunks[i].path, body: chunks[i].body, origin: chunks[i].origin });
  const compressedCost = (i: number) => (forms.compressed as CompressedChunk[])[i].count + 1;
  const textCost = (i: number) => (forms.plainIds as number[][])[i].length;
  if (mode === 'arc') return planArc(chunks.map((_, i) => ({ ...rankable(i), cost: compressedCost(i) })), question, budget);
  if (mode === 'full') return planFull(chunks.map((_, i) => ({ ...rankable(i), cost: textCost(i) })), question, budget);
  return planMixedFor(
    chunks.map((_, i) => rankable(i)),
    chunks.map((_, i) => ({ text: textCost(i), compressed: compressedCost(i) })),
    question,
    textBudget,
    budget,
  );
}

/** Source tokens of a chunk that reach the decoder: a cut chunk counts its kept share. */
function keptSourceTokens(chunk: Chunk, i: number, p: ContextPlan, forms: Materialized): number {
  if (!p.partial || p.partial.index !== i) return chunk.tokenIds.length;
  const plain = (forms.plainIds as number[][])[i].length;
  return plain > 0 ? Math.round((chunk.tokenIds.length * p.partial.keep) / plain) : 0;
}

/** The selection event: merged citations overall and per form, and per-file figures. */
function selectionEvent(chunks: Chunk[], forms: Materialized, p: ContextPlan, budget: number): Extract<AskEvent, { type: 'selection' }> {
  const text = new Set(p.text);
  const included = new Set([...p.text, ...p.compressed]);
  const files = new Map<string, FileCompression>();
  chunks.forEach((c, i) => {
    const f = files.get(c.path) ?? { path: c.path, tokens: 0, vectors: 0, chunks: 0, included: 0, textChunks: 0 };
    f.tokens += c.tokenIds.length;
    f.vectors += forms.compressed ? forms.compressed[i].count : 0;
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

/** Stage 5: the decoder prefix the plan describes (layout in prompt.ts and docs/DESIGN.md). */
function layout(model: ArcModel, mode: ContextMode, forms: Materialized, p: ContextPlan, question: string): BuiltPrefix {
  const vectorsOf = (i: number) => (forms.compressed as CompressedChunk[])[i];
  const idsOf = (i: number) => {
    const all = (forms.plainIds as number[][])[i];
    return p.partial && p.partial.index === i ? all.slice(0, p.partial.keep) : all;
  };
  if (mode === 'arc') return buildPrefix(model, 'arc', p.compressed.map(vectorsOf), question);
  if (mode === 'full') return buildPrefix(model, 'full', p.text.map(idsOf), question);
  return buildPrefix(model, 'mixed', { compressed: p.compressed.map(vectorsOf), text: p.text.map(idsOf) }, question);
}

function contextStats(stats: AskStats, chunks: Chunk[], forms: Materialized, p: ContextPlan, prefix: BuiltPrefix): void {
  const kept = (i: number) => keptSourceTokens(chunks[i], i, p, forms);
  stats.textTokens = p.text.reduce((n, i) => n + kept(i), 0);
  stats.sourceTokens = stats.textTokens + p.compressed.reduce((n, i) => n + chunks[i].tokenIds.length, 0);
  stats.compressedVectors = p.compressed.reduce((n, i) => n + (forms.compressed as CompressedChunk[])[i].count, 0);
  stats.contextPositions = prefix.contextPositions;
  // Over the whole context in every mode: what the decoder would read as plain text, per position it read.
  stats.ratio = prefix.contextPositions > 0 ? stats.sourceTokens / prefix.contextPositions : 0;
  stats.textChunks = p.text.length;
  stats.compressedChunks = p.compressed.length;
  stats.chunksIncluded = p.text.length + p.compressed.length;
  stats.chunksLeftOut = p.leftOut.length;
  const all = chunks.reduce((n, c) => n + c.tokenIds.length, 0);
  stats.truncatedTokens = all - stats.sourceTokens;
}

/** Stage 6: streams the answer; returns it with the timings. */
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

    let included: Chunk[] = [];
    let prefix: BuiltPrefix;
    if (mode === 'none') {
      prefix = buildPrefix(model, 'none', [], question);
    } else {
      if (budget <= 0) {
        throw new ArcError('context-too-large', `The question and the answer room (${maxNewTokens} tokens) fill the model's ${dec.contextLength}-position window. Ask a shorter question.`);
      }
      const textBudget = mode === 'mixed' ? mixedTextBudget(model.manifest, request.textBudget) : 0;
      const chunks = yield* gatherChunks(model, request, options);
      const forms = yield* materialize(model, chunks, mode, options, stats);
      yield { type: 'progress', stage: 'select', message: `Choosing chunks for ${budget} context positions${mode === 'mixed' ? ` (up to ${textBudget} tokens as text)` : ''}` };
      const p = plan(mode, chunks, forms, question, budget, textBudget);
      const chosen = new Set([...p.text, ...p.compressed]);
      included = chunks.filter((_, i) => chosen.has(i));
      if (included.length === 0) {
        throw new ArcError('context-too-large', `No chunk fits the ${budget} positions left for context. Ask a shorter question or use a model with a larger window.`);
      }
      yield selectionEvent(chunks, forms, p, budget);
      prefix = layout(model, mode, forms, p, question);
      contextStats(stats, chunks, forms, p, prefix);
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
