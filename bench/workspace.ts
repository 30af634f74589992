// Compressing a whole source tree into the vector cache, as `arc-context compress` and the
// extension's background compression do: cold, re-run with a warm cache, re-run after editing
// one file. The tree is copied to a temporary folder first, so the edit touches nothing real.
import { cp, readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { ArcModel, TextTokenizer } from '../src/core/api';
import { VectorCache } from '../src/core/context/cache';
import { chunkFilesIndexed, openChunkIndex } from '../src/core/context/chunkIndex';
import { compressChunks } from '../src/core/context/compress';
import { collectSources } from '../src/core/context/sources';
import { loadTokenizer } from '../src/core/tokenizer';
import { chunkOptions } from './latency';
import type { WorkspaceRun, WorkspaceSection } from './types';
import { bytesOf, mib, round, withMemoryPeak, withTempDir } from './util';

export interface WorkspaceOptions {
  tokenizerPath: string;
  signal?: AbortSignal;
  log: (line: string) => void;
}

interface PassFigures {
  run: WorkspaceRun;
  files: number;
  bytes: number;
  chunks: number;
  sourceTokens: number;
  vectors: number;
}

async function compressPass(model: ArcModel, root: string, cacheDir: string, tokenizer: TextTokenizer, signal?: AbortSignal): Promise<PassFigures> {
  const { value, peakRss, peakHeap } = await withMemoryPeak(async () => {
    const t0 = performance.now();
    const { files } = await collectSources({ roots: [root], signal });
    const t1 = performance.now();
    // The chunk index beside the cache, as `arc-context compress`, ask() and the extension use it.
    const index = await openChunkIndex({ tokenizer }, cacheDir);
    const chunked = await chunkFilesIndexed(files, tokenizer, chunkOptions(model), index, signal);
    const chunks = chunked.chunks;
    const t2 = performance.now();
    const it = compressChunks(chunks, { encoder: model.encoder, modelIdentity: model.identity, cache: new VectorCache(cacheDir), signal });
    let r = await it.next();
    while (!r.done) r = await it.next();
    const t3 = performance.now();
    return {
      times: { scanMs: t1 - t0, chunkMs: t2 - t1, compressMs: t3 - t2, totalMs: t3 - t0 },
      result: r.value,
      filesFromIndex: chunked.fromIndex,
      files: files.length,
      bytes: bytesOf(files),
      chunks: chunks.length,
      sourceTokens: chunks.reduce((n, c) => n + c.tokenIds.length, 0),
    };
  });
  const { times, result } = value;
  return {
    run: {
      scanMs: round(times.scanMs),
      chunkMs: round(times.chunkMs),
      compressMs: round(times.compressMs),
      totalMs: round(times.totalMs),
      cacheHits: result.cacheHits,
      encoded: result.encoded,
      filesFromIndex: value.filesFromIndex,
      peakRssMiB: mib(peakRss),
      peakHeapMiB: mib(peakHeap),
    },
    files: value.files,
    bytes: value.bytes,
    chunks: value.chunks,
    sourceTokens: value.sourceTokens,
    vectors: result.compressed.reduce((n, c) => n + c.count, 0),
  };
}

/** Inserts a comment line in the middle of the file, in the file's own comment syntax. */
async function editOneFile(file: string): Promise<void> {
  const text = await readFile(file, 'utf8');
  const lines = text.split('\n');
  const hash = /\.(py|sh|rb|ya?ml|toml|r)$/i.test(file);
  lines.splice(lines.length >> 1, 0, `${hash ? '#' : '//'} edited by arc-context bench`);
  await writeFile(file, lines.join('\n'));
}

export async function runWorkspace(model: ArcModel, tree: string, opts: WorkspaceOptions): Promise<WorkspaceSection> {
  const baselineRss = process.memoryUsage.rss();
  return withTempDir('arc-bench-tree-', async (dir) => {
    const root = path.join(dir, 'tree');
    const cacheDir = path.join(dir, 'cache');
    await cp(tree, root, { recursive: true });
    // A new process starts with an empty chunk memo (a fresh tokenizer instance per run shows that)
    // and reads unchanged files' chunks from the on-disk chunk index.
    const fresh = (): Promise<TextTokenizer> => loadTokenizer(opts.tokenizerPath);
    const cold = await compressPass(model, root, cacheDir, await fresh(), opts.signal);
    opts.log(`workspace: cold ${cold.run.totalMs} ms (${cold.files} files, ${cold.sourceTokens} tokens, ${cold.run.encoded} chunks encoded)`);
    const longLived = await fresh();
    const warm = await compressPass(model, root, cacheDir, longLived, opts.signal);
    opts.log(`workspace: warm ${warm.run.totalMs} ms`);
    const warmSame = await compressPass(model, root, cacheDir, longLived, opts.signal);
    opts.log(`workspace: warm, same process ${warmSame.run.totalMs} ms`);
    const { files } = await collectSources({ roots: [root], signal: opts.signal });
    // The middle source file (by path) gets the edit; package.json and the like only if there is no code.
    const code = files.filter((f) => /\.(ts|tsx|js|mjs|cjs|py|go|rs|java|c|h|cpp|cs|rb)$/i.test(f.path));
    const pickFrom = code.length > 0 ? code : files;
    const target = pickFrom[pickFrom.length >> 1];
    if (!target?.absPath) throw new Error(`No file to edit under ${root}`);
    await editOneFile(target.absPath);
    const edited = await compressPass(model, root, cacheDir, await fresh(), opts.signal);
    opts.log(`workspace: after editing ${target.path}: ${edited.run.totalMs} ms (${edited.run.encoded} chunks encoded)`);
    return {
      tree,
      files: cold.files,
      bytes: cold.bytes,
      chunks: cold.chunks,
      sourceTokens: cold.sourceTokens,
      vectors: cold.vectors,
      edited: target.path,
      cold: cold.run,
      warm: warm.run,
      afterEdit: edited.run,
      warmSameProcess: warmSame.run,
      baselineRssMiB: mib(baselineRss),
      // maxRSS is in KiB on Linux and macOS.
      processMaxRssMiB: mib(process.resourceUsage().maxRSS * 1024),
    };
  });
}
