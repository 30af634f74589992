// Time to first token and total answer time over contexts of growing size, built from real
// source files: arc with a warm vector cache, arc cold (encoder included), mixed with a warm cache,
// and full text where it fits the decoder window (and, with --full-max-tokens N, up to N source
// tokens: longer plain-text prefill is recorded as not measured).
import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ArcModel } from '../src/core/api';
import { chunkFiles, type Chunk, type ChunkOptions } from '../src/core/context/chunker';
import type { SourceFile } from '../src/core/context/sources';
import { contextBudget, decoderTokenizer } from '../src/core/prompt';
import { loadTokenizer } from '../src/core/tokenizer';
import type { SourceInput } from '../src/core/types';
import { askOnce, type AskOutcome } from './ask';
import type { FullNotMeasured, LatencySection, LatencySize, ModeRun, NotFit } from './types';
import { median, round, sampled } from './util';

export interface LatencyOptions {
  sizes: number[];
  reps: number;
  maxNewTokens: number;
  /** Sizes with more source tokens than this measure arc and mixed only (full: not measured). */
  fullMaxTokens?: number;
  signal?: AbortSignal;
  log: (line: string) => void;
}

export function chunkOptions(model: ArcModel): ChunkOptions {
  return { maxTokens: model.encoder.maxChunkTokens, header: model.manifest.documentFormat.header };
}

/** Remaining room below which a cut chunk is not worth adding (it would be mostly header). */
const MIN_PIECE_TOKENS = 16;

/**
 * The first files of the tree, in path order, up to about `target` source tokens; the last file
 * is cut at a line so the total lands close to the target.
 */
export function buildContext(model: ArcModel, files: readonly SourceFile[], target: number): SourceFile[] {
  return contextFor(model, files, target).files;
}

/**
 * buildContext, and whether the context is the whole tree short of the target (the tree holds
 * fewer source tokens than asked for).
 */
export function contextFor(model: ArcModel, files: readonly SourceFile[], target: number): { files: SourceFile[]; wholeTree: boolean } {
  const opts = chunkOptions(model);
  const out: SourceFile[] = [];
  let total = 0;
  for (const f of files) {
    const chunks = chunkFiles([f], model.tokenizer, opts);
    const tokens = chunks.reduce((n, c) => n + c.tokenIds.length, 0);
    if (tokens === 0) continue;
    if (total + tokens <= target) {
      out.push(f);
      total += tokens;
      if (total >= target) return { files: out, wholeTree: false };
      continue;
    }
    // Whole chunks first, then a line-proportional piece of the next one.
    const before = total;
    let lastLine = 0;
    for (const c of chunks) {
      const room = target - total;
      if (c.tokenIds.length <= room) {
        total += c.tokenIds.length;
        lastLine = c.endLine;
        continue;
      }
      if (room >= MIN_PIECE_TOKENS) lastLine = c.startLine - 1 + Math.floor(((c.endLine - c.startLine + 1) * room) / c.tokenIds.length);
      break;
    }
    // A context never comes out empty: at least the first line of the tree.
    if (out.length === 0) lastLine = Math.max(lastLine, 1);
    if (lastLine === 0) return { files: out, wholeTree: false };
    const lines = f.text.split('\n');
    const cut = (n: number): SourceFile => ({ ...f, text: lines.slice(0, n).join('\n') + '\n' });
    const tokensOf = (sf: SourceFile): number => chunkFiles([sf], model.tokenizer, opts).reduce((n, c) => n + c.tokenIds.length, 0);
    // The cut file is chunked afresh (its cut points can move) and lines vary in length: trim
    // lines until the context is within the target again.
    while (lastLine > 1 && before + tokensOf(cut(lastLine)) > target) lastLine--;
    out.push(cut(lastLine));
    return { files: out, wholeTree: false };
  }
  return { files: out, wholeTree: true };
}

const DEFINITION = /^(?:export\s+)?(?:default\s+)?(?:async\s+)?(?:function\*?|class|const|let|interface|type|enum|def)\s+([A-Za-z_$][\w$]*)/m;

/**
 * "Which file defines `NAME`?" for the first definition in the smallest context (so the answer is
 * in every context: they all start with the same files), else the first one in the tree.
 */
export function questionFor(smallest: readonly SourceFile[], tree: readonly SourceFile[]): string {
  for (const f of [...smallest, ...tree]) {
    const m = DEFINITION.exec(f.text);
    if (m) return `Which file defines \`${m[1]}\`?`;
  }
  return 'Which file is this?';
}

function toSources(files: readonly SourceFile[]): SourceInput[] {
  return files.map((f) => ({ path: f.path, text: f.text, origin: 'workspace' }));
}

function modeRun(runs: AskOutcome[]): ModeRun {
  const last = runs[runs.length - 1]!.stats;
  return {
    ttftMs: sampled(runs.map((r) => r.stats.ttftMs)),
    totalMs: sampled(runs.map((r) => r.stats.totalMs)),
    encodeMs: round(median(runs.map((r) => r.stats.encodeMs))),
    prefillMs: round(median(runs.map((r) => r.stats.prefillMs))),
    generatedTokens: last.generatedTokens,
    sourceTokensIncluded: last.sourceTokens,
    contextPositions: last.contextPositions,
    chunksIncluded: last.chunksIncluded,
    chunksLeftOut: last.chunksLeftOut,
    cacheHits: last.cacheHits,
  };
}

function fullTokens(model: ArcModel, chunks: readonly Chunk[]): number {
  const tok = decoderTokenizer(model);
  return chunks.reduce((n, c) => n + (tok === model.tokenizer ? c.tokenIds.length : tok.encode(c.text).length), 0);
}

export async function runLatency(model: ArcModel, sourceRoot: string, tree: readonly SourceFile[], opts: LatencyOptions): Promise<LatencySection> {
  const { reps, maxNewTokens, signal, fullMaxTokens } = opts;
  const tokenizerPath = path.resolve(model.dir, model.manifest.encoder.tokenizer);
  const question = questionFor(buildContext(model, tree, Math.min(...opts.sizes)), tree);
  const budget = contextBudget(model, question, maxNewTokens);
  const sizes: LatencySize[] = [];
  const notMeasured: { targetTokens: number; reason: string }[] = [];
  // The size that measured the whole tree, once the tree has run out.
  let treeSize: LatencySize | null = null;
  for (const target of opts.sizes) {
    const { files, wholeTree } = contextFor(model, tree, target);
    const chunks = chunkFiles(files, model.tokenizer, chunkOptions(model));
    const sourceTokens = chunks.reduce((n, c) => n + c.tokenIds.length, 0);
    if (wholeTree && treeSize) {
      const reason = `the source tree holds only ${sourceTokens} source tokens, measured whole at size ${treeSize.targetTokens}; pass --source DIR with a larger tree`;
      notMeasured.push({ targetTokens: target, reason });
      opts.log(`latency: size ${target} not measured: ${reason.replace('the source tree', `the source tree ${sourceRoot}`)}`);
      continue;
    }
    if (wholeTree) opts.log(`latency: the source tree ${sourceRoot} holds only ${sourceTokens} source tokens, fewer than the ${target} asked for: this size measures the whole tree (pass --source DIR with a larger tree)`);
    const contextTokens = fullTokens(model, chunks);
    const fits = contextTokens <= budget;
    const measureFull = fits && (fullMaxTokens === undefined || sourceTokens <= fullMaxTokens);
    const request = { question, sources: toSources(files), maxNewTokens };
    opts.log(
      `latency: ${sourceTokens} source tokens (${files.length} files, ${chunks.length} chunks); full ${!fits ? 'does not fit' : measureFull ? 'fits' : `fits, not measured (above --full-max-tokens ${fullMaxTokens})`}`,
    );

    const tokenizeMs: number[] = [];
    for (let r = 0; r < reps; r++) {
      // A fresh tokenizer has an empty chunk memo: this is the first question's tokenizing.
      const fresh = await loadTokenizer(tokenizerPath);
      const t = performance.now();
      chunkFiles(files, fresh, chunkOptions(model));
      tokenizeMs.push(performance.now() - t);
    }

    const warmDir = await mkdtemp(path.join(os.tmpdir(), 'arc-bench-warm-'));
    try {
      // Untimed: fills the warm cache and the chunk memo, and warms up every code path.
      await askOnce(model, { ...request, mode: 'arc' }, warmDir, signal);
      if (measureFull) await askOnce(model, { ...request, mode: 'full' }, null, signal);
      await askOnce(model, { ...request, mode: 'mixed' }, warmDir, signal);
      const runs: Record<'arcWarm' | 'arcCold' | 'mixedWarm' | 'full', AskOutcome[]> = { arcWarm: [], arcCold: [], mixedWarm: [], full: [] };
      const order = (['arcWarm', 'arcCold', 'mixedWarm', 'full'] as const).filter((m) => m !== 'full' || measureFull);
      for (let r = 0; r < reps; r++) {
        // Rotating the order spreads any drift of the machine (other processes) over the modes.
        for (let k = 0; k < order.length; k++) {
          const mode = order[(k + r) % order.length]!;
          if (mode === 'arcWarm') runs.arcWarm.push(await askOnce(model, { ...request, mode: 'arc' }, warmDir, signal));
          else if (mode === 'mixedWarm') runs.mixedWarm.push(await askOnce(model, { ...request, mode: 'mixed' }, warmDir, signal));
          else if (mode === 'full') runs.full.push(await askOnce(model, { ...request, mode: 'full' }, null, signal));
          else {
            const coldDir = await mkdtemp(path.join(os.tmpdir(), 'arc-bench-cold-'));
            try {
              runs.arcCold.push(await askOnce(model, { ...request, mode: 'arc' }, coldDir, signal));
            } finally {
              await rm(coldDir, { recursive: true, force: true });
            }
          }
        }
      }
      const arcWarm = modeRun(runs.arcWarm);
      const arcCold = modeRun(runs.arcCold);
      const mixedWarm = modeRun(runs.mixedWarm);
      const full: ModeRun | NotFit | FullNotMeasured = measureFull
        ? modeRun(runs.full)
        : fits
          ? { measured: false, reason: 'above --full-max-tokens', fullMaxTokens: fullMaxTokens!, contextTokens, budget }
          : { fits: false, contextTokens, budget };
      const ratios =
        'ttftMs' in full
          ? {
              ttftFullOverArcWarm: round(full.ttftMs.median / arcWarm.ttftMs.median, 2),
              ttftFullOverArcCold: round(full.ttftMs.median / arcCold.ttftMs.median, 2),
              totalFullOverArcWarm: round(full.totalMs.median / arcWarm.totalMs.median, 2),
              totalFullOverArcCold: round(full.totalMs.median / arcCold.totalMs.median, 2),
            }
          : null;
      const size: LatencySize = { targetTokens: target, sourceTokens, files: files.length, chunks: chunks.length, tokenizeMs: sampled(tokenizeMs), arcWarm, arcCold, mixedWarm, full, ratios, ...(wholeTree ? { wholeTree: true as const } : {}) };
      sizes.push(size);
      if (wholeTree) treeSize = size;
      opts.log(
        `latency: ${sourceTokens} tokens: first token arc warm ${arcWarm.ttftMs.median} ms, arc cold ${arcCold.ttftMs.median} ms, mixed warm ${mixedWarm.ttftMs.median} ms, full ${fullText(full)}`,
      );
    } finally {
      await rm(warmDir, { recursive: true, force: true });
    }
  }
  return { source: sourceRoot, question, maxNewTokens, budget, reps, ...(fullMaxTokens !== undefined ? { fullMaxTokens } : {}), sizes, ...(notMeasured.length > 0 ? { notMeasured } : {}) };
}

/** The full-text column of a size in words: its time, or why there is none. */
export function fullText(full: ModeRun | NotFit | FullNotMeasured): string {
  if ('ttftMs' in full) return `${full.ttftMs.median} ms`;
  if ('measured' in full) return `not measured (above --full-max-tokens ${full.fullMaxTokens})`;
  return 'does not fit';
}
