// Turns chunks into compressed vectors, serving what it can from the cache and encoding the
// rest in batches so that progress and cancellation happen between encoder calls.
import type { ArcEncoder, CompressedChunk } from '../api';
import { cacheKey, type VectorCache } from './cache';
import type { Chunk } from './chunker';
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
      if (cache) await cache.put(cacheKey(opts.modelIdentity, hashes[k]), results[k]);
    }
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
