// "ARC: Compress Workspace", the background compression after a question and the file watcher's
// recompression all run this: fill the lexical index and the vector cache for a set of sources
// without asking anything. Built from the pipeline's own stages (collect -> index + chunk ->
// compress with cache), so it caches exactly what ask() will look up. Every finished encoder
// batch is in the cache, so a cancelled run loses nothing: the next one starts where it stopped.
// No `vscode` import: progress and cancellation come in as plain callbacks and a signal.
import type { ArcModel } from '../core/api';
import { VectorCache } from '../core/context/cache';
import { chunkFilesIndexed, openChunkIndex } from '../core/context/chunkIndex';
import { LexicalIndex, lexicalIndexCap, lexiconsFor } from '../core/context/lexicalIndex';
import { compressTree } from '../core/context/compress';
import { throwIfAborted } from '../core/errors';
import { collectSources } from '../core/context/sources';
import type { FileCompression, SourceInput } from '../core/types';
import type { CompressionSnapshot } from '../protocol';

export interface CompressOptions {
  cacheDir: string;
  cacheMaxBytes?: number;
  include?: string[];
  exclude?: string[];
  signal?: AbortSignal;
  onProgress?: (message: string, done?: number, total?: number) => void;
  log?: (line: string) => void;
}

export async function compressSources(
  model: ArcModel,
  sources: SourceInput[],
  title: string,
  opts: CompressOptions,
): Promise<CompressionSnapshot> {
  const { signal } = opts;
  opts.onProgress?.('Reading files');
  const collected = await collectSources({ sources, include: opts.include, exclude: opts.exclude, signal });
  const skippedFiles = Object.values(collected.skipped.counts).reduce((a, b) => a + (b ?? 0), 0);
  opts.onProgress?.(`Chunking ${collected.files.length} files`);
  // Unchanged files come from the chunk index beside the cache (as ask() and the CLI do), so a
  // second Compress Workspace in a new window does not tokenize them again.
  const index = await openChunkIndex(model, opts.cacheDir, { cacheMaxBytes: opts.cacheMaxBytes, log: opts.log });
  const chunkOpts = { maxTokens: model.encoder.maxChunkTokens, header: model.manifest.documentFormat.header };
  if (index) {
    // The lexical index too, so that the next question ranks these files without tokenizing them.
    const lexical = new LexicalIndex(opts.cacheDir, index.identity, { maxBytes: opts.cacheMaxBytes !== undefined ? lexicalIndexCap(opts.cacheMaxBytes) : undefined, log: opts.log });
    await lexiconsFor(collected.files, model.tokenizer, chunkOpts, index, lexical, signal);
    throwIfAborted(signal, 'Indexing files');
  }
  const chunked = await chunkFilesIndexed(collected.files, model.tokenizer, chunkOpts, index, signal);
  throwIfAborted(signal, 'Splitting files into chunks');
  const chunks = chunked.chunks;
  const cache = new VectorCache(opts.cacheDir, { maxBytes: opts.cacheMaxBytes, log: opts.log });
  const it = compressTree(chunks, { encoder: model.encoder, modelIdentity: model.identity, cache, signal });
  let r = await it.next();
  while (!r.done) {
    const p = r.value;
    opts.onProgress?.(`Compressed ${p.done}/${p.total} chunks (${p.cacheHits} from cache)`, p.done, p.total);
    r = await it.next();
  }
  const result = r.value;
  const files = new Map<string, FileCompression>();
  chunks.forEach((c, i) => {
    const f = files.get(c.path) ?? { path: c.path, tokens: 0, vectors: 0, chunks: 0, included: 0, textChunks: 0 };
    f.tokens += c.tokenIds.length;
    f.vectors += result.counts[i] ?? 0;
    f.chunks += 1;
    files.set(c.path, f);
  });
  return {
    title,
    files: [...files.values()],
    included: [],
    leftOut: [],
    compress: {
      chunks: chunks.length,
      cacheHits: result.cacheHits,
      encoded: result.encoded,
      encodeMs: result.encodeMs,
      skippedFiles,
    },
  };
}

/** Entries and bytes in the cache folder, for the status bar. */
export async function cacheUsage(cacheDir: string): Promise<{ entries: number; bytes: number }> {
  const entries = await new VectorCache(cacheDir).listEntries().catch(() => []);
  return { entries: entries.length, bytes: entries.reduce((s, e) => s + e.size, 0) };
}
