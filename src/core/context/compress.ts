// Turns chunks into compressed vectors, serving what it can from the cache and encoding the
// rest in batches so that progress and cancellation happen between encoder calls.
import type { ArcEncoder, CompressedChunk, TextTokenizer } from '../api';
import { cacheKey, type VectorCache } from './cache';
import { streamFileChunks, type ChunkIndex, type FileChunks } from './chunkIndex';
import type { Chunk, ChunkOptions } from './chunker';
import type { SourceFile } from './sources';
import { throwIfAborted } from '../errors';

/** Chunks per encoder call: large enough to batch, small enough to cancel promptly. */
export const DEFAULT_ENCODE_BATCH = 8;
/** Cache lookups in flight at once. */
const CACHE_READ_CONCURRENCY = 16;

export interface CompressProgress {
  done: number;
  total: number;
  cacheHits: number;
  encoded: number;
}

export interface CompressResult {
  /** One entry per input chunk, same order. */
  compressed: CompressedChunk[];
  cacheHits: number;
  /** Chunks run through the encoder (identical chunks are encoded once). */
  encoded: number;
  encodeMs: number;
}

export interface CompressOptions {
  encoder: ArcEncoder;
  modelIdentity: string;
  cache: VectorCache | null;
  signal?: AbortSignal;
  batchSize?: number;
}

/** Yields progress after the cache lookups and after every encoder batch. */
export async function* compressChunks(chunks: Chunk[], opts: CompressOptions): AsyncGenerator<CompressProgress, CompressResult> {
  const { encoder, cache, signal } = opts;
  const out = new Array<CompressedChunk | undefined>(chunks.length);
  // Chunks with identical rendered text (copied files, repeated boilerplate) share one result.
  const byHash = new Map<string, number[]>();
  chunks.forEach((c, i) => {
    const list = byHash.get(c.hash);
    if (list) list.push(i);
    else byHash.set(c.hash, [i]);
  });
  let cacheHits = 0;
  const misses: string[] = [];
  const unique = [...byHash.keys()];
  // Cache reads overlap (file reads run on libuv's pool); results are taken in chunk order.
  const found = new Array<CompressedChunk | null>(unique.length).fill(null);
  if (cache) {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < unique.length) {
        throwIfAborted(signal, 'Compressing the context');
        const k = next++;
        found[k] = await cache.get(cacheKey(opts.modelIdentity, unique[k]), encoder.dim);
      }
    };
    await Promise.all(Array.from({ length: Math.min(CACHE_READ_CONCURRENCY, unique.length) }, worker));
  }
  unique.forEach((hash, k) => {
    const hit = found[k];
    const idx = byHash.get(hash) as number[];
    if (hit) {
      for (const i of idx) out[i] = hit;
      cacheHits += idx.length;
    } else misses.push(hash);
  });
  let done = cacheHits;
  yield { done, total: chunks.length, cacheHits, encoded: 0 };

  const batch = Math.max(1, opts.batchSize ?? DEFAULT_ENCODE_BATCH);
  let encoded = 0;
  let encodeMs = 0;
  for (let b = 0; b < misses.length; b += batch) {
    throwIfAborted(signal, 'Compressing the context');
    const hashes = misses.slice(b, b + batch);
    const t0 = performance.now();
    // No signal: a started batch runs to the end and is stored, so cancelling costs at most one
    // batch of waiting and never throws finished work away.
    const results = await encoder.encode(hashes.map((h) => chunks[(byHash.get(h) as number[])[0]].tokenIds));
    encodeMs += performance.now() - t0;
    if (results.length !== hashes.length) throw new Error(`The encoder returned ${results.length} results for ${hashes.length} chunks.`);
    // A batch that finished is stored even when the signal fired meanwhile: the next run reads it.
    for (let k = 0; k < hashes.length; k++) {
      const idx = byHash.get(hashes[k]) as number[];
      for (const i of idx) out[i] = results[k];
      done += idx.length;
    }
    // The batch's entries are written at once (libuv's threads), not one after another: on a
    // whole tree the writes are the largest cost after the encoder itself.
    if (cache) await Promise.all(hashes.map((h, k) => cache.put(cacheKey(opts.modelIdentity, h), results[k])));
    encoded += hashes.length;
    throwIfAborted(signal, 'Compressing the context');
    yield { done, total: chunks.length, cacheHits, encoded };
  }
  if (cache) await cache.evictIfGrown();
  return { compressed: out as CompressedChunk[], cacheHits, encoded, encodeMs };
}

/** What compressing a whole tree reports: counts only, no vectors kept. */
export interface CompressCounts {
  /** Vectors of each input chunk, same order. */
  counts: number[];
  cacheHits: number;
  encoded: number;
  encodeMs: number;
}

/** Chunks per slice when a whole tree is compressed. */
const TREE_SLICE = 1024;

/**
 * compressChunks over a whole tree in slices, keeping only counts: memory stays that of one
 * slice of vectors whatever the tree's size (the vectors are in the cache). Progress is for the
 * whole list. Used by `arc-context compress` and the extension's workspace compression.
 */
export async function* compressTree(chunks: Chunk[], opts: CompressOptions & { sliceSize?: number }): AsyncGenerator<CompressProgress, CompressCounts> {
  const res: CompressCounts = { counts: [], cacheHits: 0, encoded: 0, encodeMs: 0 };
  const slice = Math.max(1, opts.sliceSize ?? TREE_SLICE);
  for (let start = 0; start < chunks.length; start += slice) {
    const it = compressChunks(chunks.slice(start, start + slice), opts);
    let r = await it.next();
    while (!r.done) {
      yield { done: start + r.value.done, total: chunks.length, cacheHits: res.cacheHits + r.value.cacheHits, encoded: res.encoded + r.value.encoded };
      r = await it.next();
    }
    for (const c of r.value.compressed) res.counts.push(c.count);
    res.cacheHits += r.value.cacheHits;
    res.encoded += r.value.encoded;
    res.encodeMs += r.value.encodeMs;
  }
  return res;
}

/** Progress of compressFiles: chunks are counted as the files are chunked, so `total` grows. */
export interface TreeProgress extends CompressProgress {
  /** Files whose chunks have been taken for compression so far, of `files`. */
  filesDone: number;
  files: number;
}

/** One input file's share of a whole-tree compression. */
export interface FileFigures {
  path: string;
  chunks: number;
  tokens: number;
  vectors: number;
}

/** What compressing a whole tree of files reports: figures only, no chunks or vectors kept. */
export interface TreeCompression {
  /** One per input file, same order (files without chunks included, with zeros). */
  files: FileFigures[];
  chunks: number;
  sourceTokens: number;
  vectors: number;
  cacheHits: number;
  encoded: number;
  encodeMs: number;
  /** Files whose chunks came from this process's memo, from the on-disk index, or were tokenized. */
  fromMemo: number;
  fromIndex: number;
  chunked: number;
}

export interface CompressFilesOptions extends CompressOptions {
  tokenizer: TextTokenizer;
  chunkOptions: ChunkOptions;
  /** The chunk index beside the cache (openChunkIndex), or null. */
  index: ChunkIndex | null;
  sliceSize?: number;
  /** Tokenizer worker threads (streamFileChunks); 0 tokenizes on this thread first. Default 1. */
  workers?: number;
  /** Keep the chunks in this process's memo. Default false (a whole tree would crowd it). */
  remember?: boolean;
  /** Text handed to the tokenizer workers and not yet encoded (streamFileChunks). */
  maxBufferedChars?: number;
  log?: (line: string) => void;
  /**
   * Each file's chunks as they come, in file order, before they are compressed (e.g. to build
   * the file's lexical index entry from the same chunks instead of tokenizing it again).
   */
  onFile?: (file: FileChunks) => void | Promise<void>;
}

/** How often progress is reported while files are only being chunked. */
const CHUNKING_PROGRESS_MS = 100;

/**
 * Chunks and compresses a whole tree with the tokenizer and the encoder working at once: the
 * files are tokenized by a worker thread (streamFileChunks) while this thread encodes the slices
 * already chunked. The slices are compressTree's (the same 1024 chunks in the same order), so
 * the chunks, the encoder batches, the cache and chunk index entries and every figure equal
 * those of chunkFilesIndexed followed by compressTree; only memory differs: no more than one
 * slice of chunks and vectors, plus the tokenizer's bounded lead, is held. A cancellation stops
 * the tokenizer after its current file and the encoder after its current batch; both keep what
 * they finished (index entries, cached vectors), so the next run resumes there.
 */
export async function* compressFiles(files: SourceFile[], opts: CompressFilesOptions): AsyncGenerator<TreeProgress, TreeCompression> {
  const { signal } = opts;
  const slice = Math.max(1, opts.sliceSize ?? TREE_SLICE);
  const res: TreeCompression = {
    files: files.map((f) => ({ path: f.path, chunks: 0, tokens: 0, vectors: 0 })),
    chunks: 0,
    sourceTokens: 0,
    vectors: 0,
    cacheHits: 0,
    encoded: 0,
    encodeMs: 0,
    fromMemo: 0,
    fromIndex: 0,
    chunked: 0,
  };
  let pending: Chunk[] = [];
  let owners: number[] = [];
  let compressed = 0;
  let filesDone = 0;
  let lastYield = performance.now();
  const progress = (done: number, cacheHits: number, encoded: number): TreeProgress => {
    lastYield = performance.now();
    return { done, total: res.chunks, cacheHits, encoded, filesDone, files: files.length };
  };
  async function* compressSlice(n: number): AsyncGenerator<TreeProgress, void> {
    const part = pending.slice(0, n);
    const who = owners.slice(0, n);
    pending = pending.slice(n);
    owners = owners.slice(n);
    const it = compressChunks(part, opts);
    let r = await it.next();
    while (!r.done) {
      yield progress(compressed + r.value.done, res.cacheHits + r.value.cacheHits, res.encoded + r.value.encoded);
      r = await it.next();
    }
    r.value.compressed.forEach((c, k) => {
      res.files[who[k]].vectors += c.count;
      res.vectors += c.count;
    });
    res.cacheHits += r.value.cacheHits;
    res.encoded += r.value.encoded;
    res.encodeMs += r.value.encodeMs;
    compressed += n;
  }
  const stream = streamFileChunks(files, opts.tokenizer, opts.chunkOptions, {
    index: opts.index,
    signal,
    workers: opts.workers,
    remember: opts.remember,
    maxBufferedChars: opts.maxBufferedChars,
    log: opts.log,
  });
  for await (const fc of stream) {
    const { chunks, from } = fc;
    if (opts.onFile) await opts.onFile(fc);
    const i = filesDone++;
    if (from === 'memo') res.fromMemo++;
    else if (from === 'index') res.fromIndex++;
    else res.chunked++;
    const f = res.files[i];
    for (const c of chunks) {
      f.tokens += c.tokenIds.length;
      pending.push(c);
      owners.push(i);
    }
    f.chunks += chunks.length;
    res.chunks += chunks.length;
    res.sourceTokens += f.tokens;
    while (pending.length >= slice) yield* compressSlice(slice);
    if (performance.now() - lastYield >= CHUNKING_PROGRESS_MS) yield progress(compressed, res.cacheHits, res.encoded);
  }
  throwIfAborted(signal, 'Splitting files into chunks');
  if (pending.length > 0) yield* compressSlice(pending.length);
  yield progress(compressed, res.cacheHits, res.encoded);
  return res;
}
