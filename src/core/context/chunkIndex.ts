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
import { existsSync } from 'node:fs';
import { readFile, unlink, utimes } from 'node:fs/promises';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ArcModel, TextTokenizer } from '../api';
import { ArcError } from '../errors';
import type { ArcErrorCode } from '../types';
import { DEFAULT_CACHE_MAX_BYTES, ENTRY_CHECKSUM_OFFSET, ENTRY_HEADER_BYTES, entryChecksum, entryMayExist, evictStore, InFlight, evictStoreIfGrown, isErrno, listStoreEntries, writeStoreEntry, type EvictResult, type StoreEntry } from './cache';
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
  readonly log: (line: string) => void;
  private written = 0;

  /** `cacheDir` is the vector cache's folder; the index lives in its own subfolder. */
  constructor(
    readonly cacheDir: string,
    readonly identity: string,
    opts: ChunkIndexOptions = {},
  ) {
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
    if (!entryMayExist(entry)) return null;
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
    const written = this.written;
    this.written = 0;
    await evictStoreIfGrown(this.root, ENTRY_EXT, this.maxBytes, written, (line) => this.log(`chunk index: ${line}`));
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
  /** When given, a new entry's write is left running there instead of awaited (the caller settles them). */
  writes?: InFlight,
): Promise<{ chunks: Chunk[]; from: 'memo' | 'index' | 'chunked' }> {
  const hit = memoLookup(f, tokenizer, opts);
  if (hit) return { chunks: hit, from: 'memo' };
  let chunks = index ? await index.get(f, opts) : null;
  const from = chunks ? 'index' : 'chunked';
  if (!chunks) {
    chunks = chunkFile(f, tokenizer, opts);
    if (index) await (writes ? writes.add(index.put(f, opts, chunks)) : index.put(f, opts, chunks));
  }
  if (remember) memoStore(f, tokenizer, opts, chunks);
  return { chunks: chunks.map((c) => ({ ...c, origin: f.origin, absPath: f.absPath })), from };
}

// ---------------------------------------------------------------------------------------------
// Streaming a whole tree's chunks, tokenized off the main thread.
//
// Whole-tree compression tokenizes every file and encodes every chunk. ONNX Runtime's run() is
// synchronous on the calling thread (onnxruntime-node only defers it with setImmediate), so the
// two cannot overlap on one thread. streamFileChunks tokenizes in worker threads
// (chunkWorker.ts) while the caller encodes: files go out in order, each file's chunks come back
// in the chunk index's entry format (checksummed, 4 bytes a token, transferred without a copy)
// and are handed on in file order, so the caller sees exactly what chunkFilesIndexed returns.
// Files are handed out only while the text not yet taken by the caller stays under a budget,
// so memory stays bounded however far the tokenizer runs ahead. Without a usable worker (no
// worker file next to the bundle, a tokenizer not loaded from a file, a worker that fails) the
// files are chunked on this thread, one after another, as chunkFilesIndexed does.

/** One file's chunks, in the order of the files given. */
export interface FileChunks {
  file: SourceFile;
  chunks: Chunk[];
  from: 'memo' | 'index' | 'chunked';
}

export interface StreamChunksOptions {
  index: ChunkIndex | null;
  /** Stops handing out files when it fires (the caller checks it and reports the cancellation). */
  signal?: AbortSignal;
  /** Tokenizer threads; 0 chunks on this thread. Default 1 (the caller's thread runs the encoder). */
  workers?: number;
  /** Keep the chunks in this process's memo (chunkFileIndexed's `remember`). Default false. */
  remember?: boolean;
  /** Characters of file text handed to the workers and not yet taken by the caller. */
  maxBufferedChars?: number;
  /** Why the workers were not used or stopped (the sequential path is then taken). */
  log?: (line: string) => void;
}

/** Text handed out ahead of the caller: a few slices of chunks (a slice of 1024 is about 0.6M chars of code). */
export const DEFAULT_MAX_BUFFERED_CHARS = 4 * 1024 * 1024;
/** How long a stopped worker may take to finish its file before it is terminated. */
const WORKER_STOP_MS = 2000;
/** The key the worker frames its results with (they never reach the disk under it). */
export const TRANSFER_KEY = '0'.repeat(64);

/** The bundled worker next to this code (dist/chunkWorker.js), or the TypeScript source under tsx. */
export function chunkWorkerScript(): string | null {
  for (const name of ['chunkWorker.js', 'chunkWorker.ts']) {
    const f = path.join(__dirname, name);
    if (existsSync(f)) return f;
  }
  return null;
}

/** Worker threads started by streamFileChunks that have not exited yet (tests check it drops to 0). */
let liveWorkers = 0;
export function liveChunkWorkers(): number {
  return liveWorkers;
}

/** What the worker is started with (workerData). */
export interface ChunkWorkerData {
  tokenizerPath: string;
  opts: ChunkOptions;
  index: { cacheDir: string; identity: string; maxBytes: number } | null;
  /** Int32Array over it: [0] set to 1 asks the worker to stop before its next file. */
  stop: SharedArrayBuffer;
}
/** Main -> worker. */
export type ToChunkWorker = { type: 'file'; seq: number; path: string; text: string; startLine: number } | { type: 'end' } | { type: 'stop' };
/** Worker -> main. */
export type FromChunkWorker =
  | { type: 'file'; seq: number; from: 'index' | 'chunked'; entry: Uint8Array }
  | { type: 'error'; seq: number; message: string; code?: string }
  | { type: 'failed'; message: string }
  | { type: 'log'; line: string }
  | { type: 'done' };

/**
 * Each file's chunks in file order, tokenized by worker threads when possible (see above). The
 * chunks, token ids and chunk index entries are those of chunkFilesIndexed. Returns early, without
 * throwing, when the signal fires; index entries of files a worker finished are kept.
 */
export async function* streamFileChunks(files: SourceFile[], tokenizer: TextTokenizer, opts: ChunkOptions, s: StreamChunksOptions): AsyncGenerator<FileChunks, void> {
  const workers = Math.max(0, Math.floor(s.workers ?? 1));
  const script = workers > 0 ? chunkWorkerScript() : null;
  let why: string | null = null;
  if (workers === 0 || files.length === 0) why = null;
  else if (!(tokenizer instanceof HfTokenizer)) why = 'the tokenizer is not loaded from a file';
  else if (!script) why = `no chunkWorker.js next to ${__dirname}`;
  if (workers === 0 || files.length === 0 || why !== null || !script) {
    if (why) s.log?.(`tokenizing on the main thread: ${why}`);
    yield* chunkSequentially(files, tokenizer, opts, s);
    return;
  }
  const pool = new ChunkWorkerPool(script, files, tokenizer as HfTokenizer, opts, s, Math.min(workers, files.length));
  s.log?.(`tokenizing in ${pool.size} worker thread${pool.size === 1 ? '' : 's'} while encoding`);
  try {
    yield* pool.run();
  } finally {
    await pool.close();
  }
}

async function* chunkSequentially(files: SourceFile[], tokenizer: TextTokenizer, opts: ChunkOptions, s: StreamChunksOptions): AsyncGenerator<FileChunks, void> {
  for (const file of files) {
    if (s.signal?.aborted) break;
    const { chunks, from } = await chunkFileIndexed(file, tokenizer, opts, s.index, s.remember ?? false);
    yield { file, chunks, from };
  }
  if (s.index) await s.index.evictIfGrown();
}

interface WorkerSlot {
  worker: Worker;
  alive: boolean;
  /** Resolves when the thread has exited. */
  exited: Promise<void>;
  /** Told that no more files come. */
  endSent: boolean;
  /** Said it answered every file and is exiting. */
  ended: boolean;
}

type Ready = { chunks: Chunk[]; from: FileChunks['from'] } | { entry: Uint8Array; from: 'index' | 'chunked' } | { error: Error };

class ChunkWorkerPool {
  private readonly slots: WorkerSlot[] = [];
  private readonly stopFlag = new SharedArrayBuffer(4);
  /** Results that came back, by file position, until the caller takes them. */
  private readonly ready = new Map<number, Ready>();
  /** Which worker each handed-out file went to. */
  private readonly owner = new Map<number, WorkerSlot>();
  private wake: (() => void) | null = null;
  private next = 0;
  private taken = 0;
  private buffered = 0;
  private readonly maxBuffered: number;
  get size(): number {
    return this.slots.length;
  }

  constructor(
    script: string,
    private readonly files: SourceFile[],
    private readonly tokenizer: HfTokenizer,
    private readonly opts: ChunkOptions,
    private readonly s: StreamChunksOptions,
    count: number,
  ) {
    this.maxBuffered = Math.max(1, s.maxBufferedChars ?? DEFAULT_MAX_BUFFERED_CHARS);
    const data: ChunkWorkerData = {
      tokenizerPath: tokenizer.path,
      opts: { maxTokens: opts.maxTokens, header: opts.header },
      index: s.index ? { cacheDir: s.index.cacheDir, identity: s.index.identity, maxBytes: s.index.maxBytes } : null,
      stop: this.stopFlag,
    };
    for (let i = 0; i < count; i++) {
      let worker: Worker;
      try {
        worker = startWorker(script, data);
      } catch (e) {
        s.log?.(`tokenizer worker could not start (${(e as Error).message}); tokenizing on the main thread`);
        break;
      }
      liveWorkers++;
      const slot: WorkerSlot = { worker, alive: true, endSent: false, ended: false, exited: Promise.resolve() };
      slot.exited = new Promise<void>((resolve) => {
        worker.once('exit', () => {
          liveWorkers--;
          this.lost(slot, null);
          resolve();
        });
      });
      worker.on('message', (m: FromChunkWorker) => this.onMessage(slot, m));
      worker.on('error', (e) => this.lost(slot, e.message));
      this.slots.push(slot);
    }
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private onMessage(slot: WorkerSlot, m: FromChunkWorker): void {
    if ((m.type === 'file' || m.type === 'error') && (m.seq < this.taken || this.owner.get(m.seq) !== slot)) return; // already done here
    if (m.type === 'file') this.ready.set(m.seq, { entry: m.entry, from: m.from });
    else if (m.type === 'error') {
      const e = m.code ? new ArcError(m.code as ArcErrorCode, m.message) : new Error(m.message);
      this.ready.set(m.seq, { error: e });
    } else if (m.type === 'log') (this.s.index?.log ?? this.s.log ?? (() => {}))(m.line);
    else if (m.type === 'failed') this.lost(slot, m.message);
    else if (m.type === 'done') slot.ended = true;
    this.notify();
  }

  /** A worker that failed or exited: the files it had not answered are chunked here. */
  private lost(slot: WorkerSlot, why: string | null): void {
    if (!slot.alive) return;
    slot.alive = false;
    if (why !== null || !slot.ended) {
      this.s.log?.(`tokenizer worker stopped (${why ?? 'exited'}); tokenizing its files on the main thread`);
    }
    this.notify();
  }

  private hand(): void {
    const alive = this.slots.filter((x) => x.alive);
    while (this.next < this.files.length && alive.length > 0) {
      const f = this.files[this.next];
      // Always at least one file out past the caller, else only within the budget.
      if (this.next > this.taken && this.buffered + f.text.length > this.maxBuffered) break;
      const seq = this.next++;
      this.buffered += f.text.length;
      const memo = memoLookup(f, this.tokenizer, this.opts);
      if (memo) {
        this.ready.set(seq, { chunks: memo, from: 'memo' });
        continue;
      }
      // Round robin: the files are handed out in order, so each worker's share is a spread.
      const slot = alive[seq % alive.length];
      this.owner.set(seq, slot);
      post(slot.worker, { type: 'file', seq, path: f.path, text: f.text, startLine: f.startLine });
    }
    if (this.next === this.files.length) {
      for (const slot of alive) {
        if (slot.endSent) continue;
        slot.endSent = true;
        post(slot.worker, { type: 'end' });
      }
    }
  }

  async *run(): AsyncGenerator<FileChunks, void> {
    const signal = this.s.signal;
    const onAbort = (): void => this.notify();
    signal?.addEventListener('abort', onAbort);
    try {
      while (this.taken < this.files.length) {
        if (signal?.aborted) return;
        this.hand();
        const seq = this.taken;
        const r = this.ready.get(seq);
        const owner = this.owner.get(seq);
        if (r === undefined && owner?.alive !== false && this.slots.some((x) => x.alive)) {
          await new Promise<void>((resolve) => (this.wake = resolve));
          continue;
        }
        const file = this.files[seq];
        this.ready.delete(seq);
        this.owner.delete(seq);
        let out: FileChunks;
        if (r === undefined) {
          // Its worker is gone: this thread does the file (the worker may have stored it already).
          const { chunks, from } = await chunkFileIndexed(file, this.tokenizer, this.opts, this.s.index, this.s.remember ?? false);
          out = { file, chunks, from };
        } else if ('error' in r) throw r.error;
        else if ('entry' in r) {
          const buf = Buffer.from(r.entry.buffer, r.entry.byteOffset, r.entry.byteLength);
          const chunks = decodeChunkEntry(TRANSFER_KEY, buf, file, this.opts);
          if (typeof chunks === 'string') throw new ArcError('internal', `The tokenizer worker's chunks of ${file.path} do not verify (${chunks}).`);
          if (this.s.remember) memoStore(file, this.tokenizer, this.opts, chunks);
          out = { file, chunks, from: r.from };
        } else out = { file, chunks: r.chunks, from: r.from };
        this.taken++;
        this.buffered -= file.text.length;
        yield out;
      }
      // Files done here after a worker was lost may have written entries the workers do not know of.
      if (this.s.index && !this.slots.every((x) => x.ended)) await this.s.index.evictIfGrown();
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Stops the workers (they finish the file in hand, so its index entry is whole) and waits for them. */
  async close(): Promise<void> {
    const running = this.slots.filter((x) => x.alive);
    if (this.taken < this.files.length) {
      Atomics.store(new Int32Array(this.stopFlag), 0, 1);
      for (const slot of running) post(slot.worker, { type: 'stop' });
    }
    await Promise.all(
      running.map(async (slot) => {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), this.taken < this.files.length ? WORKER_STOP_MS : 60_000)));
        const r = await Promise.race([slot.exited, late]);
        clearTimeout(timer);
        if (r === 'late') {
          this.s.log?.('tokenizer worker did not stop in time; terminated');
          await slot.worker.terminate();
          await slot.exited;
        }
      }),
    );
  }
}

function post(worker: Worker, m: ToChunkWorker): void {
  worker.postMessage(m);
}

/** A worker on the bundled script, or on the TypeScript source through tsx (tests, `tsx src/cli.ts`). */
function startWorker(script: string, data: ChunkWorkerData): Worker {
  if (!script.endsWith('.ts')) return new Worker(script, { workerData: data });
  const tsx = createRequire(__filename).resolve('tsx/cjs');
  return new Worker(`require(${JSON.stringify(tsx)}); require(${JSON.stringify(script)});`, { eval: true, workerData: data });
}
