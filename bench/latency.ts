// Time to first token and total answer time over contexts of growing size, built from real
// source files: arc with a warm vector cache, arc cold (encoder included), and full text where
// it fits the decoder window.
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
import type { LatencySection, LatencySize, ModeRun, NotFit } from './types';
import { median, round, sampled } from './util';

export interface LatencyOptions {
  sizes: number[];
  reps: number;
  maxNewTokens: number;
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
      if (total >= target) break;
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
    if (lastLine === 0) break;
    const lines = f.text.split('\n');
    const cut = (n: number): SourceFile => ({ ...f, text: lines.slice(0, n).join('\n') + '\n' });
    const tokensOf = (sf: SourceFile): number => chunkFiles([sf], model.tokenizer, opts).reduce((n, c) => n + c.tokenIds.length, 0);
    // The cut file is chunked afresh (its cut points can move) and lines vary in length: trim
    // lines until the context is within the target again.
    while (lastLine > 1 && before + tokensOf(cut(lastLine)) > target) lastLine--;
    out.push(cut(lastLine));
    break;
  }
  return out;
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
  const { reps, maxNewTokens, signal } = opts;
  const tokenizerPath = path.resolve(model.dir, model.manifest.encoder.tokenizer);
  const question = questionFor(buildContext(model, tree, Math.min(...opts.sizes)), tree);
  const budget = contextBudget(model, question, maxNewTokens);
  const sizes: LatencySize[] = [];
  for (const target of opts.sizes) {
    const files = buildContext(model, tree, target);
    const chunks = chunkFiles(files, model.tokenizer, chunkOptions(model));
    const sourceTokens = chunks.reduce((n, c) => n + c.tokenIds.length, 0);
    const contextTokens = fullTokens(model, chunks);
    const fits = contextTokens <= budget;
    const request = { question, sources: toSources(files), maxNewTokens };
    opts.log(`latency: ${sourceTokens} source tokens (${files.length} files, ${chunks.length} chunks); full ${fits ? 'fits' : 'does not fit'}`);

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
      if (fits) await askOnce(model, { ...request, mode: 'full' }, null, signal);
      await askOnce(model, { ...request, mode: 'mixed' }, warmDir, signal);
      const runs: Record<'arcWarm' | 'arcCold' | 'mixedWarm' | 'full', AskOutcome[]> = { arcWarm: [], arcCold: [], mixedWarm: [], full: [] };
      const order = (['arcWarm', 'arcCold', 'mixedWarm', 'full'] as const).filter((m) => m !== 'full' || fits);
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
      const full: ModeRun | NotFit = fits ? modeRun(runs.full) : { fits: false, contextTokens, budget };
      const ratios =
        'ttftMs' in full
          ? {
              ttftFullOverArcWarm: round(full.ttftMs.median / arcWarm.ttftMs.median, 2),
              ttftFullOverArcCold: round(full.ttftMs.median / arcCold.ttftMs.median, 2),
              totalFullOverArcWarm: round(full.totalMs.median / arcWarm.totalMs.median, 2),
              totalFullOverArcCold: round(full.totalMs.median / arcCold.totalMs.median, 2),
            }
          : null;
      sizes.push({ targetTokens: target, sourceTokens, files: files.length, chunks: chunks.length, tokenizeMs: sampled(tokenizeMs), arcWarm, arcCold, mixedWarm, full, ratios });
      opts.log(
        `latency: ${sourceTokens} tokens: first token arc warm ${arcWarm.ttftMs.median} ms, arc cold ${arcCold.ttftMs.median} ms, mixed warm ${mixedWarm.ttftMs.median} ms, full ${'ttftMs' in full ? `${full.ttftMs.median} ms` : 'does not fit'}`,
      );
    } finally {
      await rm(warmDir, { recursive: true, force: true });
    }
  }
  return { source: sourceRoot, question, maxNewTokens, budget, reps, sizes };
}
