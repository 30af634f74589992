// The ask() pipeline: sources -> chunks -> (cache) -> compressed vectors -> selection ->
// decoder prefix -> streamed answer. It reports every stage as typed events and never throws:
// failures end the stream with an `error` event carrying an ArcErrorCode.
import type { AskFn, AskOptions, ArcModel, CompressedChunk, GenerationTimings } from './api';
import type { ArcErrorCode, AskEvent, AskRequest, AskStats, Citation, FileCompression } from './types';
import { VectorCache } from './context/cache';
import type { Chunk } from './context/chunker';
import { chunkFilesIndexed, openChunkIndex } from './context/chunkIndex';
import { compressChunks } from './context/compress';
import { selectChunks, type SelectItem } from './context/select';
import { collectSources, type SkipReport } from './context/sources';
import { ArcError, errorMessage, throwIfAborted } from './errors';
import { buildPrefix, contextBudget, decoderTokenizer, type BuiltPrefix } from './prompt';

export type { AskOptions };

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
  const message = errorMessage(e);
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

/** Smallest piece of a cut chunk worth showing in full mode; fewer tokens are mostly header. */
const MIN_PARTIAL_TOKENS = 16;

async function* askImpl(model: ArcModel, request: AskRequest, options: AskOptions = {}): AsyncGenerator<AskEvent, void> {
  const t0 = performance.now();
  const { signal } = options;
  const mode = request.mode;
  const stats = emptyStats(mode, model.provider);
  const cancelled = (what: string) => throwIfAborted(signal, what);
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
      yield { type: 'progress', stage: 'scan', message: `Scanned ${collected.scanned} files, ${collected.files.length} usable`, done: collected.scanned, total: collected.scanned };
      if (Object.keys(collected.skipped.counts).length > 0) yield { type: 'skipped', ...collected.skipped };
      const where = request.roots && request.roots.length > 0 ? ` in ${request.roots.join(', ')}` : '';
      if (collected.files.length === 0) {
        throw new ArcError('no-sources', `No readable text files to answer from${where}${describeSkips(collected.skipped)}. Open a folder with source code or add files to the question.`);
      }
      // 2. Chunks, sized for the encoder (full mode uses the same chunks so citations agree).
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
      cancelled('Splitting files into chunks');
      for (const line of indexLog) yield { type: 'progress', stage: 'tokenize', message: line };
      const unchanged = chunked.fromIndex + chunked.fromMemo;
      yield { type: 'progress', stage: 'tokenize', message: `${chunks.length} chunks from ${collected.files.length} files${unchanged > 0 ? ` (${unchanged} unchanged, not tokenized again)` : ''}`, done: collected.files.length, total: collected.files.length };
      if (chunks.length === 0) {
        throw new ArcError('no-sources', `The files found${where} contain only whitespace${describeSkips(collected.skipped)}. Open a folder with source code or add files to the question.`);
      }
      // 3. Compressed vectors (arc) or decoder token ids (full).
      let compressed: CompressedChunk[] | null = null;
      let plainIds: number[][] | null = null;
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
          yield { type: 'progress', stage: 'encode', message: `Compressed ${p.done}/${p.total} chunks (${p.cacheHits} from cache, ${p.encoded} encoded)`, done: p.done, total: p.total };
          r = await it.next();
        }
        for (const line of logLines.splice(0)) yield { type: 'progress', stage: 'encode', message: line };
        compressed = r.value.compressed;
        stats.cacheHits = r.value.cacheHits;
        stats.cacheMisses = chunks.length - r.value.cacheHits;
        stats.encodeMs = r.value.encodeMs;
      } else {
        // The decoder may read text with its own tokenizer; chunks were sized with the encoder's.
        const tok = decoderTokenizer(model);
        plainIds = tok === model.tokenizer ? chunks.map((c) => c.tokenIds) : chunks.map((c) => tok.encode(c.text));
      }
      // 4. Selection.
      yield { type: 'progress', stage: 'select', message: `Choosing chunks for ${budget} context positions` };
      const cost = (i: number): number => (compressed ? compressed[i].count + 1 : (plainIds as number[][])[i].length);
      const items: SelectItem[] = chunks.map((c, i) => ({ path: c.path, body: c.body, origin: c.origin, cost: cost(i) }));
      const sel = selectChunks(items, question, budget);
      const chosen = new Set(sel.included);
      // Full mode: room a whole chunk cannot use goes to the best remaining chunk's first
      // tokens, as plain-text truncation would do (a part of a chunk's vectors means nothing).
      let partial: { index: number; keep: number } | null = null;
      const top = sel.ranked[0];
      if (plainIds && top !== undefined && !chosen.has(top) && items[top].cost > budget) {
        // The best chunk alone is larger than the window: its beginning beats any other chunk.
        chosen.clear();
        chosen.add(top);
        partial = { index: top, keep: budget };
      } else if (plainIds && budget - sel.used >= MIN_PARTIAL_TOKENS) {
        const best = sel.ranked.find((i) => !chosen.has(i));
        if (best !== undefined) {
          partial = { index: best, keep: budget - sel.used };
          chosen.add(best);
        }
      }
      const order = chunks.map((_, i) => i).filter((i) => chosen.has(i));
      included = order.map((i) => chunks[i]);
      const leftOut = chunks.filter((_, i) => !chosen.has(i));
      if (included.length === 0) {
        throw new ArcError('context-too-large', `No chunk fits the ${budget} positions left for context. Ask a shorter question or use a model with a larger window.`);
      }
      const files = new Map<string, FileCompression>();
      chunks.forEach((c, i) => {
        const f = files.get(c.path) ?? { path: c.path, tokens: 0, vectors: 0, chunks: 0, included: 0 };
        f.tokens += c.tokenIds.length;
        f.vectors += compressed ? compressed[i].count : 0;
        f.chunks++;
        if (chosen.has(i)) f.included++;
        files.set(c.path, f);
      });
      yield { type: 'selection', included: mergeCitations(included), leftOut: mergeCitations(leftOut), files: [...files.values()], budget };

      for (const i of order) stats.sourceTokens += chunks[i].tokenIds.length;
      stats.truncatedTokens = leftOut.reduce((s, c) => s + c.tokenIds.length, 0);
      if (compressed) {
        const kept = order.map((i) => (compressed as CompressedChunk[])[i]);
        prefix = buildPrefix(model, 'arc', kept, question);
        stats.compressedVectors = kept.reduce((s, c) => s + c.count, 0);
        stats.ratio = stats.compressedVectors > 0 ? stats.sourceTokens / stats.compressedVectors : 0;
      } else {
        const ids = order.map((i) => {
          const all = (plainIds as number[][])[i];
          return partial && partial.index === i ? all.slice(0, partial.keep) : all;
        });
        if (partial) stats.truncatedTokens += (plainIds as number[][])[partial.index].length - partial.keep;
        prefix = buildPrefix(model, 'full', ids, question);
        stats.ratio = 1;
      }
      stats.contextPositions = prefix.contextPositions;
      stats.chunksIncluded = included.length;
      stats.chunksLeftOut = leftOut.length;
    }

    // 5. Generation.
    cancelled('The question');
    yield { type: 'progress', stage: 'prefill', message: `Reading ${prefix.positions} positions` };
    const gen = model.decoder.generate(prefix.parts, {
      maxNewTokens,
      temperature: request.temperature,
      topP: request.topP,
      stop: model.manifest.prompt.stop,
      signal,
    });
    let answer = '';
    let timings: GenerationTimings;
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
      timings = r.value;
    } finally {
      // The consumer may stop reading early; stop the decoder with it.
      await gen.return(undefined as unknown as GenerationTimings).catch(() => {});
    }
    cancelled('Answering');
    stats.prefillMs = timings.prefillMs;
    stats.tokensPerSecond = timings.tokensPerSecond;
    stats.generatedTokens = timings.generatedTokens;
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
