// "ARC: Compress Workspace", the background compression after a question and the file watcher's
// recompression all run this: fill the lexical index and the vector cache for a set of sources
// without asking anything. Built from the pipeline's own stages (collect -> chunk in a worker
// thread while this thread encodes, compressFiles as `arc-context compress` runs it), so it
// caches exactly what ask() will look up; each file's lexical index entry is built from the
// chunks compressFiles hands over, so no file is tokenized twice. Every finished encoder batch is
// in the cache and every file the tokenizer finished is in the chunk index, so a cancelled run
// loses nothing: the next one starts where it stopped.
// No `vscode` import: progress and cancellation come in as plain callbacks and a signal.
import type { ArcModel } from '../core/api';
import { InFlight, VectorCache } from '../core/context/cache';
import { hashText, type ChunkOptions } from '../core/context/chunker';
import { openChunkIndex, type FileChunks } from '../core/context/chunkIndex';
import { buildLexicon, LexicalIndex, lexicalIndexCap } from '../core/context/lexicalIndex';
import { compressFiles, type TreeCompression } from '../core/context/compress';
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

/** Lexical index lookups and writes in flight at once (lexiconsFor reads as many). */
const LEXICAL_CONCURRENCY = 16;

/**
 * Fills the lexical index from the chunks compressFiles hands over, file by file: an entry that
 * is there (memo or disk) is kept, a missing one is built from those chunks and stored, as
 * lexiconsFor does. Lookups and writes overlap (libuv's pool) so that the encoder does not wait
 * on them; at most LEXICAL_CONCURRENCY files' chunks are held meanwhile.
 */
class LexiconFiller {
  private readonly inFlight = new InFlight(LEXICAL_CONCURRENCY);

  constructor(
    private readonly lexical: LexicalIndex,
    private readonly chunkOpts: ChunkOptions,
  ) {}

  async add({ file, chunks }: FileChunks): Promise<void> {
    this.check();
    await this.inFlight.add(
      (async () => {
        const key = this.lexical.key(file, this.chunkOpts, hashText(file.text));
        if (await this.lexical.get(key, file)) return;
        await this.lexical.put(key, file, buildLexicon(file, chunks));
      })(),
    );
    this.check();
  }

  /** Waits for the writes, then trims the index; throws what a file's entry failed with. */
  async finish(): Promise<void> {
    await this.inFlight.settled();
    await this.lexical.evictIfGrown();
    this.check();
  }

  /** After a failure or a cancellation: the writes started are finished (whole entries), then trimmed. */
  async abandon(): Promise<void> {
    await this.inFlight.settled();
    await this.lexical.evictIfGrown().catch(() => {});
  }

  private check(): void {
    if (this.inFlight.failure !== null) throw this.inFlight.failure;
  }
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
  const chunkOpts: ChunkOptions = { maxTokens: model.encoder.maxChunkTokens, header: model.manifest.documentFormat.header };
  // The lexical index too, so that the next question ranks these files without tokenizing them.
  const lexicons = index
    ? new LexiconFiller(new LexicalIndex(opts.cacheDir, index.identity, { maxBytes: opts.cacheMaxBytes !== undefined ? lexicalIndexCap(opts.cacheMaxBytes) : undefined, log: opts.log }), chunkOpts)
    : null;
  const cache = new VectorCache(opts.cacheDir, { maxBytes: opts.cacheMaxBytes, log: opts.log });
  let res: TreeCompression;
  try {
    // Tokenizing (a worker thread) and encoding (this thread) overlap; the slices, the encoder
    // batches and every entry written are those of chunkFilesIndexed + compressTree.
    const it = compressFiles(collected.files, {
      encoder: model.encoder,
      modelIdentity: model.identity,
      cache,
      signal,
      tokenizer: model.tokenizer,
      chunkOptions: chunkOpts,
      index,
      log: opts.log,
      onFile: lexicons ? (fc) => lexicons.add(fc) : undefined,
    });
    let r = await it.next();
    while (!r.done) {
      const p = r.value;
      // The total grows while files are still being chunked: until then it is extrapolated from
      // the files chunked so far (as `arc-context compress` does), so the share done stays sensible.
      const chunking = p.filesDone < p.files;
      const total = chunking ? Math.max(p.total, Math.round((p.total * p.files) / Math.max(1, p.filesDone))) : p.total;
      const files = chunking ? `; ${p.filesDone}/${p.files} files chunked` : '';
      opts.onProgress?.(`Compressed ${p.done}/${chunking ? '~' : ''}${total} chunks (${p.cacheHits} from cache)${files}`, p.done, total);
      r = await it.next();
    }
    res = r.value;
  } catch (e) {
    await lexicons?.abandon();
    throw e;
  }
  await lexicons?.finish();
  // One entry per display path with chunks, in file order (as the chunks' paths gave before).
  const files = new Map<string, FileCompression>();
  for (const f of res.files) {
    if (f.chunks === 0) continue;
    const e = files.get(f.path) ?? { path: f.path, tokens: 0, vectors: 0, chunks: 0, included: 0, textChunks: 0 };
    e.tokens += f.tokens;
    e.vectors += f.vectors;
    e.chunks += f.chunks;
    files.set(f.path, e);
  }
  return {
    title,
    files: [...files.values()],
    included: [],
    leftOut: [],
    compress: {
      chunks: res.chunks,
      cacheHits: res.cacheHits,
      encoded: res.encoded,
      encodeMs: res.encodeMs,
      skippedFiles,
    },
  };
}

/** Entries and bytes in the cache folder, for the status bar. */
export async function cacheUsage(cacheDir: string): Promise<{ entries: number; bytes: number }> {
  const entries = await new VectorCache(cacheDir).listEntries().catch(() => []);
  return { entries: entries.length, bytes: entries.reduce((s, e) => s + e.size, 0) };
}
