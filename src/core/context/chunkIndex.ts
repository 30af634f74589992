// Persistent per-file chunk index beside the vector cache, so that a later process does not
// tokenize unchanged files again (tokenizing, not encoding, is what a warm run spends its time on).
//
// One entry per source file, named by sha256 of everything that decides its chunks: the
// tokenizer's identity, the header template, maxChunkTokens, the display path, the start line
// and sha256 of the file's text. An edited file simply misses and is chunked again; only its
// changed chunks then miss the vector cache. An entry holds each chunk's line range, the offsets
// of its body in the file text, its hash and its token ids, so a hit rebuilds the exact Chunk
// objects chunkFile would return. Same robustness rules as the vector cache (cache.ts):
// versioned folder and header, checksum, temp file + rename, bad entries logged, deleted and
// rebuilt, several processes may share the folder, least recently used entries are evicted
// beyond a size cap under a lock.
import { createHash } from 'node:crypto';
import { readFile, unlink, utimes } from 'node:fs/promises';
import * as path from 'node:path';
import type { ArcModel, TextTokenizer } from '../api';
import { DEFAULT_CACHE_MAX_BYTES, ENTRY_CHECKSUM_OFFSET, ENTRY_HEADER_BYTES, entryChecksum, evictStore, isErrno, listStoreEntries, writeStoreEntry, type EvictResult, type StoreEntry } from './cache';
import { HfTokenizer } from '../tokenizer';
import { chunkFile, hashText, memoLookup, memoStore, renderHeader, type Chunk, type ChunkOptions } from './chunker';
import type { SourceFile } from './sources';

export const CHUNK_INDEX_FORMAT_VERSION = 1;
const MAGIC = 0x49435241; // "ARCI" read as little-endian u32
const HEADER_BYTES = ENTRY_HEADER_BYTES; // magic, version, chunk count, token count, key[32], checksum[32]
const CHECKSUM_OFFSET = ENTRY_CHECKSUM_OFFSET;
const RECORD_BYTES = 52; // startLine, endLine, bodyStart, bodyEnd, tokens (u32 each), hash[32]
const ENTRY_EXT = '.arci';
/**
 * The index's own cap beside a vector cache capped at `cacheMaxBytes`: an eighth of it (an entry
 * takes one to three times its file's size, 4 bytes per token, far less than the file's vectors).
 */
export function chunkIndexCap(cacheMaxBytes: number): number {
  return Math.max(1024 ** 2, Math.floor(cacheMaxBytes / 8));
}
export const DEFAULT_CHUNK_INDEX_MAX_BYTES = chunkIndexCap(DEFAULT_CACHE_MAX_BYTES);

export interface ChunkIndexOptions {
  maxBytes?: number;
  log?: (line: string) => void;
}

const tokenizerIds = new WeakMap<TextTokenizer, Promise<string | null>>();

/**
 * What decides how a model's tokenizer splits text: sha256 of its tokenizer.json and
 * tokenizer_config.json. null for a tokenizer not loaded from a file (nothing stable to key on),
 * in which case the index is not used. The model identity does not cover the tokenizer file.
 */
export function chunkIndexIdentity(model: Pick<ArcModel, 'tokenizer'>): Promise<string | null> {
  const tok = model.tokenizer;
  let id = tokenizerIds.get(tok);
  if (!id) {
    id = (async () => {
      if (!(tok instanceof HfTokenizer)) return null;
      const h = createHash('sha256').update('hf-tokenizer\n');
      for (const f of [tok.path, path.join(path.dirname(tok.path), 'tokenizer_config.json')]) {
        const bytes = await readFile(f).catch(() => null);
        h.update(bytes === null ? 'absent\n' : `${bytes.length}\n`);
        if (bytes) h.update(bytes);
      }
      return h.digest('hex');
    })();
    tokenizerIds.set(tok, id);
  }
  return id;
}

/**
 * The chunk index beside the vector cache in `cacheDir` for this model's tokenizer, capped
 * relative to the cache's cap; null without a cache folder or a file-backed tokenizer.
 */
export async function openChunkIndex(
  model: Pick<ArcModel, 'tokenizer'>,
  cacheDir: string | undefined | null,
  opts: { cacheMaxBytes?: number; log?: (line: string) => void } = {},
): Promise<ChunkIndex | null> {
  if (!cacheDir) return null;
  const identity = await chunkIndexIdentity(model);
  if (!identity) return null;
  return new ChunkIndex(cacheDir, identity, {
    maxBytes: opts.cacheMaxBytes !== undefined ? chunkIndexCap(opts.cacheMaxBytes) : undefined,
    log: opts.log,
  });
}

export class ChunkIndex {
  readonly root: string;
  readonly maxBytes: number;
  private readonly log: (line: string) => void;
  private written = 0;

  /** `cacheDir` is the vector cache's folder; the index lives in its own subfolder. */
  constructor(cacheDir: string, readonly identity: string, opts: ChunkIndexOptions = {}) {
    this.root = path.join(cacheDir, 'chunks', `v${CHUNK_INDEX_FORMAT_VERSION}`);
    this.maxBytes = opts.maxBytes ?? DEFAULT_CHUNK_INDEX_MAX_BYTES;
    this.log = opts.log ?? (() => {});
  }

  key(file: SourceFile, opts: ChunkOptions): string {
    const fields = [CHUNK_INDEX_FORMAT_VERSION, this.identity, opts.header, opts.maxTokens, file.path, file.startLine, hashText(file.text)];
    return createHash('sha256').update(`arc-chunks\n${JSON.stringify(fields)}`).digest('hex');
  }

  entryPath(key: string): string {
    return path.join(this.root, key.slice(0, 2), key + ENTRY_EXT);
  }

  /** The file's chunks as chunkFile would make them, or null on a miss or a bad entry (deleted). */
  async get(file: SourceFile, opts: ChunkOptions): Promise<Chunk[] | null> {
    const key = this.key(file, opts);
    const entry = this.entryPath(key);
    let buf: Buffer;
    try {
      buf = await readFile(entry);
    } catch (e) {
      if (!isErrno(e, 'ENOENT', 'ENOTDIR')) this.log(`chunk index: cannot read ${entry}: ${(e as Error).message}; re-chunking`);
      return null;
    }
    const chunks = decodeChunkEntry(key, buf, file, opts);
    if (typeof chunks === 'string') {
      this.log(`chunk index: corrupt entry ${entry} for ${file.path} (${chunks}); deleted, will re-chunk`);
      await unlink(entry).catch(() => {}); // a concurrent writer may already have replaced it
      return null;
    }
    const now = new Date();
    await utimes(entry, now, now).catch(() => {});
    return chunks;
  }

  async put(file: SourceFile, opts: ChunkOptions, chunks: Chunk[]): Promise<void> {
    const key = this.key(file, opts);
    const entry = this.entryPath(key);
    try {
      const buf = encodeChunkEntry(key, file, chunks);
      await writeStoreEntry(entry, buf);
      this.written += buf.length;
    } catch (e) {
      // The index only saves time: a failed write must not fail the question.
      this.log(`chunk index: could not store ${entry} for ${file.path}: ${(e as Error).message}`);
    }
  }

  async evictIfGrown(): Promise<void> {
    if (this.written === 0) return;
    this.written = 0;
    await this.evict();
  }

  /** Trims least recently used entries to the store's low-water mark (see evictStore). */
  evict(): Promise<EvictResult> {
    return evictStore(this.root, ENTRY_EXT, this.maxBytes, (line) => this.log(`chunk index: ${line}`));
  }

  /** Lists entries (and removes temp files left by crashed writers). */
  listEntries(): Promise<StoreEntry[]> {
    return listStoreEntries(this.root, ENTRY_EXT);
  }
}

/** Character offsets [start, end) of each chunk's body (without its final "\n") in file.text. */
function bodyOffsets(file: SourceFile, chunks: Chunk[]): [number, number][] {
  const out: [number, number][] = [];
  let cursor = 0;
  for (const c of chunks) {
    // Any occurrence of the body rebuilds the same text (and the hash is checked on reading);
    // bodies appear in file order, so searching on from the previous one stays linear.
    const core = c.body.slice(0, -1);
    const at = file.text.indexOf(core, cursor);
    if (at < 0) throw new Error(`chunk ${c.startLine}-${c.endLine} is not a slice of the file text`);
    out.push([at, at + core.length]);
    cursor = at + core.length;
  }
  return out;
}

export function encodeChunkEntry(key: string, file: SourceFile, chunks: Chunk[]): Buffer {
  if (!/^[0-9a-f]{64}$/.test(key)) throw new Error(`Invalid chunk index key ${key}`);
  const offsets = bodyOffsets(file, chunks);
  const tokens = chunks.reduce((s, c) => s + c.tokenIds.length, 0);
  const buf = Buffer.alloc(HEADER_BYTES + chunks.length * RECORD_BYTES + tokens * 4);
  buf.writeUInt32LE(MAGIC, 0);
  buf.writeUInt32LE(CHUNK_INDEX_FORMAT_VERSION, 4);
  buf.writeUInt32LE(chunks.length, 8);
  buf.writeUInt32LE(tokens, 12);
  buf.write(key, 16, 32, 'hex');
  let o = HEADER_BYTES;
  chunks.forEach((c, i) => {
    for (const v of [c.startLine, c.endLine, offsets[i][0], offsets[i][1], c.tokenIds.length]) {
      buf.writeUInt32LE(v, o);
      o += 4;
    }
    buf.write(c.hash, o, 32, 'hex');
    o += 32;
  });
  for (const c of chunks) for (const id of c.tokenIds) o = buf.writeUInt32LE(id, o);
  checksum(buf).copy(buf, CHECKSUM_OFFSET);
  return buf;
}

const checksum = entryChecksum;

/** Parses, verifies and rebuilds an entry for `file`; returns the reason when it must not be served. */
export function decodeChunkEntry(key: string, buf: Buffer, file: SourceFile, opts: ChunkOptions): Chunk[] | string {
  if (buf.length < HEADER_BYTES) return `truncated (${buf.length} bytes)`;
  if (buf.readUInt32LE(0) !== MAGIC) return 'bad magic';
  const version = buf.readUInt32LE(4);
  if (version !== CHUNK_INDEX_FORMAT_VERSION) return `version ${version}, expected ${CHUNK_INDEX_FORMAT_VERSION}`;
  const count = buf.readUInt32LE(8);
  const tokens = buf.readUInt32LE(12);
  if (buf.toString('hex', 16, 48) !== key) return 'key mismatch';
  const want = HEADER_BYTES + count * RECORD_BYTES + tokens * 4;
  if (buf.length !== want) return `size ${buf.length}, expected ${want}`;
  if (!checksum(buf).equals(buf.subarray(CHECKSUM_OFFSET, HEADER_BYTES))) return 'checksum mismatch';
  const header = renderHeader(opts.header, file.path);
  const out: Chunk[] = [];
  let r = HEADER_BYTES;
  let t = HEADER_BYTES + count * RECORD_BYTES;
  for (let i = 0; i < count; i++, r += RECORD_BYTES) {
    const [startLine, endLine, start, end, n] = [0, 4, 8, 12, 16].map((d) => buf.readUInt32LE(r + d));
    if (start > end || end > file.text.length || n > opts.maxTokens) return `chunk ${i} out of range`;
    const body = `${file.text.slice(start, end)}\n`;
    const text = header + body;
    const hash = buf.toString('hex', r + 20, r + 52);
    // The entry names the file's text hash, so this only fails on a bug or a sha256 collision.
    if (hashText(text) !== hash) return `chunk ${i} hash mismatch`;
    const tokenIds = new Array<number>(n);
    for (let k = 0; k < n; k++, t += 4) tokenIds[k] = buf.readUInt32LE(t);
    out.push({ path: file.path, absPath: file.absPath, origin: file.origin, startLine, endLine, body, text, tokenIds, hash });
  }
  return out;
}

export interface IndexedChunks {
  chunks: Chunk[];
  /** Files whose chunks came from this process's memo, from the on-disk index, or were tokenized. */
  fromMemo: number;
  fromIndex: number;
  chunked: number;
}

/**
 * chunkFiles with the on-disk index behind the per-process memo: unchanged files are served
 * without tokenizing; the rest are chunked and stored. `index` null is the plain memo path.
 * Stops between files when `signal` fires (the caller checks it and reports the cancellation).
 */
export async function chunkFilesIndexed(
  files: SourceFile[],
  tokenizer: TextTokenizer,
  opts: ChunkOptions,
  index: ChunkIndex | null,
  signal?: AbortSignal,
): Promise<IndexedChunks> {
  const res: IndexedChunks = { chunks: [], fromMemo: 0, fromIndex: 0, chunked: 0 };
  for (const f of files) {
    if (signal?.aborted) break;
    const { chunks, from } = await chunkFileIndexed(f, tokenizer, opts, index);
    if (from === 'memo') res.fromMemo++;
    else if (from === 'index') res.fromIndex++;
    else res.chunked++;
    res.chunks.push(...chunks);
  }
  if (index) await index.evictIfGrown();
  return res;
}

/**
 * One file's chunks: from this process's memo, else the on-disk index, else the tokenizer (then
 * stored). The caller runs `index.evictIfGrown()` once after a batch of files. `remember: false`
 * keeps them out of the memo (indexing a whole tree needs each file's token ids only once).
 */
export async function chunkFileIndexed(
  f: SourceFile,
  tokenizer: TextTokenizer,
  opts: ChunkOptions,
  index: ChunkIndex | null,
  remember = true,
): Promise<{ chunks: Chunk[]; from: 'memo' | 'index' | 'chunked' }> {
  const hit = memoLookup(f, tokenizer, opts);
  if (hit) return { chunks: hit, from: 'memo' };
  let chunks = index ? await index.get(f, opts) : null;
  const from = chunks ? 'index' : 'chunked';
  if (!chunks) {
    chunks = chunkFile(f, tokenizer, opts);
    if (index) await index.put(f, opts, chunks);
  }
  if (remember) memoStore(f, tokenizer, opts, chunks);
  return { chunks: chunks.map((c) => ({ ...c, origin: f.origin, absPath: f.absPath })), from };
}
