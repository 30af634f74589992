// The ask() pipeline: sources -> chunks -> (cache) -> compressed vectors -> selection ->
// decoder prefix -> streamed answer. It reports every stage as typed events and never throws:
// failures end the stream with an `error` event carrying an ArcErrorCode.
import type { AskFn, ArcModel, CompressedChunk, GenerationTimings, PrefixPart } from './api';
import type { ArcErrorCode, AskEvent, AskRequest, AskStats, Citation, FileCompression } from './types';
import { VectorCache } from './context/cache';
import { chunkFiles, type Chunk } from './context/chunker';
import { compressChunks } from './context/compress';
import { selectChunks, type SelectItem } from './context/select';
import { collectSources, throwIfAborted, type SkipReport } from './context/sources';

export interface AskOptions {
  signal?: AbortSignal;
  /** Cache directory for compressed vectors; null or undefined runs without a cache. */
  cacheDir?: string | null;
  /** Cache size cap in bytes (default 2 GiB). */
  cacheMaxBytes?: number;
  /** Per-file size cap in bytes (default 1 MiB). */
  maxFileBytes?: number;
  /** Extra diagnostics (cache repairs); they are also sent as progress events. */
  log?: (line: string) => void;
}

/** An error that ends the stream with a specific code. */
class PipelineError extends Error {
  constructor(
    readonly code: ArcErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const ERROR_CODES: ReadonlySet<string> = new Set<ArcErrorCode>([
  'model-missing',
  'model-corrupt',
  'provider-unavailable',
  'no-sources',
  'empty-question',
  'cancelled',
  'context-too-large',
  'internal',
]);

/** Maps anything thrown to an error event; core errors (ArcError) carry their own code. */
export function toErrorEvent(e: unknown, signal?: AbortSignal): Extract<AskEvent, { type: 'error' }> {
  if (signal?.aborted || (e instanceof Error && e.name === 'AbortError')) {
    return { type: 'error', code: 'cancelled', message: 'The request was cancelled.' };
  }
  const code = typeof e === 'object' && e !== null ? (e as { code?: unknown }).code : undefined;
  const message = e instanceof Error ? e.message : String(e);
  if (typeof code === 'string' && ERROR_CODES.has(code)) return { type: 'error', code: code as ArcErrorCode, message };
  return { type: 'error', code: 'internal', message: `Internal error: ${message}` };
}

function emptyStats(mode: AskRequest['mode'], provider: string): AskStats {
  return {
    mode,
    provider,
    sourceTokens: 0,
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

/** Positions before the context and after it that every prompt needs: BOS, question, answer room. */
export function contextBudget(model: ArcModel, questionIds: number[], maxNewTokens: number): number {
  const dec = model.manifest.decoder;
  if (!dec) return 0;
  return dec.contextLength - 1 - questionIds.length - maxNewTokens;
}

export function renderQuestion(template: string, question: string): string {
  return template.split('{question}').join(question);
}

async function* askImpl(model: ArcModel, request: AskRequest, options: AskOptions = {}): AsyncGenerator<AskEvent, void> {
  const t0 = performance.now();
  const { signal } = options;
  const mode = request.mode;
  const stats = emptyStats(mode, model.provider);
  try {
    const question = request.question.trim();
    if (question === '') throw new PipelineError('empty-question', 'The question is empty. Type a question about the code.');
    const dec = model.manifest.decoder;
    if (!dec || !model.decoder) {
      throw new PipelineError('model-missing', `The model package ${model.dir} has no decoder, so it cannot answer questions. Choose a package with a decoder.`);
    }
    const maxNewTokens = request.maxNewTokens ?? model.manifest.prompt.maxNewTokens;
    const questionIds = model.tokenizer.encode(renderQuestion(model.manifest.prompt.questionTemplate, question));
    const budget = contextBudget(model, questionIds, maxNewTokens);

    let included: Chunk[] = [];
    const prefix: PrefixPart[] = [{ kind: 'tokens', ids: [dec.bosTokenId] }];
    if (mode !== 'none') {
      if (budget <= 0) {
        throw new PipelineError('context-too-large', `The question and answer room (${questionIds.length} + ${maxNewTokens} tokens) fill the model's ${dec.contextLength}-position window. Ask a shorter question.`);
      }
      // 1. Sources.
      yield { type: 'progress', stage: 'scan', message: 'Looking for source files' };
      const collected = await collectSources({
        roots: request.roots,
        sources: request.sources,
        include: request.include,
        exclude: request.exclude,
        maxFileBytes: options.maxFileBytes,
        signal,
      });
      throwIfAborted(signal);
      yield { type: 'progress', stage: 'scan', message: `Scanned ${collected.scanned} files, ${collected.files.length} usable`, done: collected.scanned, total: collected.scanned };
      if (Object.keys(collected.skipped.counts).length > 0) yield { type: 'skipped', ...collected.skipped };
      const where = request.roots && request.roots.length > 0 ? ` in ${request.roots.join(', ')}` : '';
      if (collected.files.length === 0) {
        throw new PipelineError('no-sources', `No readable text files to answer from${where}${describeSkips(collected.skipped)}. Open a folder with source code or add files to the question.`);
      }
      // 2. Chunks.
      const chunks = chunkFiles(collected.files, model.tokenizer, { maxTokens: model.encoder.maxChunkTokens, header: model.manifest.documentFormat.header }, signal);
      throwIfAborted(signal);
      yield { type: 'progress', stage: 'tokenize', message: `${chunks.length} chunks from ${collected.files.length} files`, done: collected.files.length, total: collected.files.length };
      if (chunks.length === 0) {
        throw new PipelineError('no-sources', `The files found${where} contain only whitespace${describeSkips(collected.skipped)}.`);
      }
      // 3. Compressed vectors (arc) or token costs (full).
      let compressed: CompressedChunk[] | null = null;
      if (mode === 'arc') {
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
        const it = compressChunks(chunks, { encoder: model.encoder, modelIdentity: model.identity, cache, signal });
        let r = await it.next();
        while (!r.done) {
          for (const line of logLines.splice(0)) yield { type: 'progress', stage: 'encode', message: line };
          const p = r.value;
          yield { type: 'progress', stage: 'encode', message: `Compressed ${p.done}/${p.total} chunks (${p.cacheHits} from cache)`, done: p.done, total: p.total };
          r = await it.next();
        }
        for (const line of logLines.splice(0)) yield { type: 'progress', stage: 'encode', message: line };
        compressed = r.value.compressed;
        stats.cacheHits = r.value.cacheHits;
        stats.cacheMisses = chunks.length - r.value.cacheHits;
        stats.encodeMs = r.value.encodeMs;
      }
      // 4. Selection.
      const items: SelectItem[] = chunks.map((c, i) => ({
        path: c.path,
        body: c.body,
        origin: c.origin,
        cost: compressed ? compressed[i].count + 1 : c.tokenIds.length,
      }));
      const sel = selectChunks(items, question, budget);
      included = sel.included.map((i) => chunks[i]);
      const leftOut = sel.leftOut.map((i) => chunks[i]);
      if (included.length === 0) {
        throw new PipelineError('context-too-large', `No chunk fits the ${budget} positions left for context. Ask a shorter question or use a model with a larger window.`);
      }
      yield { type: 'progress', stage: 'select', message: `${included.length} of ${chunks.length} chunks fit (${sel.used}/${budget} positions)`, done: included.length, total: chunks.length };
      const files = new Map<string, FileCompression>();
      chunks.forEach((c, i) => {
        const f = files.get(c.path) ?? { path: c.path, tokens: 0, vectors: 0, chunks: 0, included: 0 };
        f.tokens += c.tokenIds.length;
        f.vectors += compressed ? compressed[i].count : 0;
        f.chunks++;
        files.set(c.path, f);
      });
      for (const c of included) (files.get(c.path) as FileCompression).included++;
      yield { type: 'selection', included: mergeCitations(included), leftOut: mergeCitations(leftOut), files: [...files.values()], budget };

      for (const i of sel.included) {
        const c = chunks[i];
        stats.sourceTokens += c.tokenIds.length;
        if (compressed) {
          const v = compressed[i];
          prefix.push({ kind: 'vectors', data: v.vectors, count: v.count });
          prefix.push({ kind: 'vectors', data: model.encoder.cont, count: 1 });
          stats.compressedVectors += v.count;
          stats.contextPositions += v.count + 1;
        } else {
          prefix.push({ kind: 'tokens', ids: c.tokenIds });
          stats.contextPositions += c.tokenIds.length;
        }
      }
      stats.ratio = compressed ? (stats.compressedVectors > 0 ? stats.sourceTokens / stats.compressedVectors : 0) : 1;
      stats.chunksIncluded = included.length;
      stats.chunksLeftOut = leftOut.length;
      stats.truncatedTokens = leftOut.reduce((s, c) => s + c.tokenIds.length, 0);
    }
    prefix.push({ kind: 'tokens', ids: questionIds });

    // 5. Generation.
    throwIfAborted(signal);
    yield { type: 'progress', stage: 'prefill', message: `Reading ${stats.contextPositions + questionIds.length + 1} positions` };
    const gen = model.decoder.generate(prefix, {
      maxNewTokens,
      temperature: request.temperature,
      topP: request.topP,
      stop: model.manifest.prompt.stop,
      signal,
    });
    let answer = '';
    let timings: GenerationTimings;
    let first = true;
    try {
      let r = await gen.next();
      while (!r.done) {
        if (first) {
          first = false;
          yield { type: 'progress', stage: 'generate', message: 'Answering' };
        }
        answer += r.value;
        yield { type: 'token', text: r.value };
        r = await gen.next();
      }
      timings = r.value;
    } finally {
      // The consumer may stop reading early; stop the decoder with it.
      await gen.return(undefined as unknown as GenerationTimings).catch(() => {});
    }
    throwIfAborted(signal);
    stats.prefillMs = timings.prefillMs;
    stats.ttftMs = timings.ttftMs;
    stats.tokensPerSecond = timings.tokensPerSecond;
    stats.generatedTokens = timings.generatedTokens;
    stats.totalMs = performance.now() - t0;
    yield { type: 'citations', citations: mergeCitations(included) };
    yield { type: 'stats', stats };
    yield { type: 'done', answer, stats };
  } catch (e) {
    yield toErrorEvent(e, signal);
  }
}

export const ask = askImpl satisfies AskFn;
