// Content-addressed on-disk store of compressed chunk vectors.
//
// One file per entry, named by sha256(model identity + rendered chunk hash), so a changed chunk
// or a different model simply misses. Entries are written to a temp file and renamed into place
// (atomic on POSIX; readers see an old or a new complete file, never a half-written one), carry
// a checksum, and are deleted and recomputed when they fail to verify. Several processes may
// share one directory: writes never collide (unique temp names), reads tolerate files that
// vanish, and the eviction pass takes a lock so only one process trims at a time.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { renameSync, statSync, writeFileSync } from 'node:fs';
import { endianness } from 'node:os';
import * as path from 'node:path';
import { lock } from 'proper-lockfile';
import type { CompressedChunk } from '../api';

/** Entries are little-endian; on such hosts floats are copied as one block. */
const LITTLE_ENDIAN = endianness() === 'LE';
const MAGIC = 0x56435241; // "ARCV" read as little-endian u32
export const CACHE_FORMAT_VERSION = 1;
const HEADER_BYTES = 80; // magic, version, dim, count, key[32], checksum[32]
const CHECKSUM_OFFSET = 48;
const ENTRY_EXT = '.arcv';
export const DEFAULT_CACHE_MAX_BYTES = 2 * 1024 ** 3;
/** Trim to this fraction of the cap so that the next few writes do not trigger another pass. */
const LOW_WATER = 0.9;
/** Temp files older than this belong to a crashed writer. */
const STALE_TEMP_MS = 10 * 60 * 1000;

export interface VectorCacheOptions {
  maxBytes?: number;
  /** One line per noteworthy event (corrupt entry dropped, eviction, write failure). */
  log?: (line: string) => void;
}

export interface EvictResult {
  entries: number;
  bytes: number;
  removed: number;
  /** false when another process held the eviction lock. */
  ran: boolean;
}

/** Cache key for a chunk under one model. Both inputs are already stable strings. */
export function cacheKey(modelIdentity: string, chunkHash: string): string {
  return createHash('sha256').update(`arc-cache/${CACHE_FORMAT_VERSION}\n${modelIdentity}\n${chunkHash}`).digest('hex');
}

export function encodeEntry(key: string, value: CompressedChunk): Buffer {
  if (!/^[0-9a-f]{64}$/.test(key)) throw new Error(`Invalid cache key ${key}`);
  if (value.vectors.length !== value.count * value.dim) throw new Error('vectors length does not match count * dim');
  if (value.groups.length !== value.count) throw new Error('one group range per vector expected');
  const payloadBytes = value.count * 8 + value.count * value.dim * 4;
  const buf = Buffer.alloc(HEADER_BYTES + payloadBytes);
  buf.writeUInt32LE(MAGIC, 0);
  buf.writeUInt32LE(CACHE_FORMAT_VERSION, 4);
  buf.writeUInt32LE(value.dim, 8);
  buf.writeUInt32LE(value.count, 12);
  buf.write(key, 16, 32, 'hex');
  let o = HEADER_BYTES;
  for (const [a, b] of value.groups) {
    buf.writeUInt32LE(a, o);
    buf.writeUInt32LE(b, o + 4);
    o += 8;
  }
  if (LITTLE_ENDIAN) Buffer.from(value.vectors.buffer, value.vectors.byteOffset, value.vectors.byteLength).copy(buf, o);
  else for (let i = 0; i < value.vectors.length; i++, o += 4) buf.writeFloatLE(value.vectors[i], o);
  checksum(buf).copy(buf, CHECKSUM_OFFSET);
  return buf;
}

/**
 * Every store entry (vector cache, chunk index, lexical index, tree index) starts with the same
 * 80-byte header: u32 magic, u32 version, two u32 fields of its own, key[32], then a sha256
 * over the header before it and the payload after it.
 */
export function entryChecksum(buf: Buffer): Buffer {
  return createHash('sha256').update(buf.subarray(0, CHECKSUM_OFFSET)).update(buf.subarray(HEADER_BYTES)).digest();
}
const checksum = entryChecksum;

/**
 * The header of an entry whose first own field is its payload's byte length (lexical and tree
 * indexes), with the checksum over `parts`, written as consecutive buffers after it.
 */
export function payloadEntryHeader(magic: number, version: number, key: string, parts: readonly Buffer[]): Buffer {
  const head = Buffer.alloc(HEADER_BYTES);
  head.writeUInt32LE(magic, 0);
  head.writeUInt32LE(version, 4);
  head.writeUInt32LE(parts.reduce((n, p) => n + p.length, 0), 8);
  head.write(key, 16, 32, 'hex');
  const h = createHash('sha256').update(head.subarray(0, CHECKSUM_OFFSET));
  for (const p of parts) h.update(p);
  h.digest().copy(head, CHECKSUM_OFFSET);
  return head;
}

/** Verifies such an entry's header and checksum; returns the reason it must not be served, or null. */
export function checkPayloadEntry(buf: Buffer, key: string, magic: number, version: number): string | null {
  if (buf.length < HEADER_BYTES) return `truncated (${buf.length} bytes)`;
  if (buf.readUInt32LE(0) !== magic) return 'bad magic';
  const v = buf.readUInt32LE(4);
  if (v !== version) return `version ${v}, expected ${version}`;
  const want = HEADER_BYTES + buf.readUInt32LE(8);
  if (buf.length !== want) return `size ${buf.length}, expected ${want}`;
  if (buf.toString('hex', 16, 48) !== key) return 'key mismatch';
  if (!checksum(buf).equals(buf.subarray(CHECKSUM_OFFSET, HEADER_BYTES))) return 'checksum mismatch';
  return null;
}

export const ENTRY_HEADER_BYTES = HEADER_BYTES;
export const ENTRY_CHECKSUM_OFFSET = CHECKSUM_OFFSET;

/** Parses and verifies an entry; returns the reason when it must not be served. */
export function decodeEntry(key: string, buf: Buffer, expectDim?: number): CompressedChunk | string {
  if (buf.length < HEADER_BYTES) return `truncated (${buf.length} bytes)`;
  if (buf.readUInt32LE(0) !== MAGIC) return 'bad magic';
  const version = buf.readUInt32LE(4);
  if (version !== CACHE_FORMAT_VERSION) return `version ${version}, expected ${CACHE_FORMAT_VERSION}`;
  const dim = buf.readUInt32LE(8);
  const count = buf.readUInt32LE(12);
  if (buf.toString('hex', 16, 48) !== key) return 'key mismatch';
  if (expectDim !== undefined && dim !== expectDim) return `dim ${dim}, expected ${expectDim}`;
  const want = HEADER_BYTES + count * 8 + count * dim * 4;
  if (buf.length !== want) return `size ${buf.length}, expected ${want}`;
  if (!checksum(buf).equals(buf.subarray(CHECKSUM_OFFSET, HEADER_BYTES))) return 'checksum mismatch';
  const groups: [number, number][] = [];
  let o = HEADER_BYTES;
  for (let i = 0; i < count; i++, o += 8) groups.push([buf.readUInt32LE(o), buf.readUInt32LE(o + 4)]);
  const vectors = new Float32Array(count * dim);
  if (LITTLE_ENDIAN) buf.copy(Buffer.from(vectors.buffer), 0, o);
  else for (let i = 0; i < vectors.length; i++, o += 4) vectors[i] = buf.readFloatLE(o);
  return { vectors, count, dim, groups };
}

export function isErrno(e: unknown, ...codes: string[]): boolean {
  return typeof e === 'object' && e !== null && codes.includes(String((e as { code?: unknown }).code));
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class VectorCache {
  readonly root: string;
  readonly maxBytes: number;
  private readonly log: (line: string) => void;
  /** Bytes this instance wrote since its last eviction check. */
  private written = 0;

  constructor(dir: string, opts: VectorCacheOptions = {}) {
    // Versioned subfolder: a future format lives beside this one instead of misreading it.
    this.root = path.join(dir, `v${CACHE_FORMAT_VERSION}`);
    this.maxBytes = opts.maxBytes ?? DEFAULT_CACHE_MAX_BYTES;
    this.log = opts.log ?? (() => {});
  }

  entryPath(key: string): string {
    return path.join(this.root, key.slice(0, 2), key + ENTRY_EXT);
  }

  /** Returns the stored vectors, or null on a miss or a bad entry (which is then deleted). */
  async get(key: string, expectDim?: number): Promise<CompressedChunk | null> {
    const file = this.entryPath(key);
    let buf: Buffer;
    try {
      buf = await readFile(file);
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'ENOTDIR')) return null;
      this.log(`cache: cannot read ${file}: ${(e as Error).message}; recomputing`);
      return null;
    }
    const v = decodeEntry(key, buf, expectDim);
    if (typeof v === 'string') {
      this.log(`cache: corrupt entry ${file} (${v}); deleted, will recompute`);
      await unlink(file).catch(() => {}); // a concurrent writer may already have replaced it
      return null;
    }
    // Touch so that eviction (oldest mtime first) treats it as recently used.
    const now = new Date();
    await utimes(file, now, now).catch(() => {});
    return v;
  }

  async put(key: string, value: CompressedChunk): Promise<void> {
    const file = this.entryPath(key);
    const buf = encodeEntry(key, value);
    try {
      await writeStoreEntry(file, buf);
      this.written += buf.length;
    } catch (e) {
      // The cache only saves time: a failed write must not fail the question.
      this.log(`cache: could not store ${file}: ${(e as Error).message}`);
    }
  }

  /** Runs the eviction pass only when this instance's writes may have taken the cache over its cap (see evictStoreIfGrown). */
  async evictIfGrown(): Promise<EvictResult | null> {
    const written = this.written;
    this.written = 0;
    return evictStoreIfGrown(this.root, ENTRY_EXT, this.maxBytes, written, (line) => this.log(`cache: ${line}`));
  }

  /**
   * Deletes least recently used entries until the store is under LOW_WATER * maxBytes.
   * Holds a lock file so that concurrent processes do not trim the same directory at once.
   */
  evict(): Promise<EvictResult> {
    return evictStore(this.root, ENTRY_EXT, this.maxBytes, (line) => this.log(`cache: ${line}`));
  }

  /** Lists entries (and removes temp files left by crashed writers). */
  listEntries(): Promise<StoreEntry[]> {
    return listStoreEntries(this.root, ENTRY_EXT);
  }
}

/** Temp file names: this process's pid, a random tag drawn once, and a counter. */
const TMP_TAG = randomBytes(4).toString('hex');
let tmpSeq = 0;

/**
 * False when a store entry certainly does not exist (a synchronous stat says so: microseconds,
 * where a failed read through libuv's pool costs a round trip); true when it may (read it).
 */
export function entryMayExist(file: string): boolean {
  try {
    return statSync(file, { throwIfNoEntry: false }) !== undefined;
  } catch {
    return true; // let the read report what is wrong
  }
}

/**
 * Entries up to this size are written and renamed with synchronous calls: a small file's
 * open/write/close/rename take microseconds each, where every step through libuv's pool is a
 * round trip (a cold tree writes thousands of small entries; a worker thread's writes waited on
 * each other). Larger entries, and entries in parts, go through the pool.
 */
const SYNC_WRITE_MAX = 1 << 20;

/**
 * Writes a store entry (one buffer, or parts written in order) so that readers never see a
 * partial file: a uniquely named temp file beside it, then a rename over it (the temp file is
 * removed when that fails).
 */
export async function writeStoreEntry(file: string, buf: Buffer | Buffer[]): Promise<void> {
  const tmp = `${file}.${process.pid}.${TMP_TAG}${(tmpSeq++).toString(36)}.tmp`;
  const small = Buffer.isBuffer(buf) && buf.length <= SYNC_WRITE_MAX;
  const writeTmp = async (): Promise<void> => {
    if (Buffer.isBuffer(buf)) {
      if (small) writeFileSync(tmp, buf, { flag: 'wx' });
      else await writeFile(tmp, buf, { flag: 'wx' });
    } else {
      // Parts one after another (a large entry is not joined into one more buffer first).
      const fh = await open(tmp, 'wx');
      try {
        for (const part of buf) {
          for (let at = 0; at < part.length; ) at += (await fh.write(part, at, part.length - at)).bytesWritten;
        }
      } finally {
        await fh.close();
      }
    }
  };
  try {
    // The shard folder almost always exists: create it only when the write says it is missing
    // (a cold tree writes two entries per file; a mkdir before each was a twentieth of its time).
    try {
      await writeTmp();
    } catch (e) {
      if (!isErrno(e, 'ENOENT')) throw e;
      await mkdir(path.dirname(file), { recursive: true });
      await writeTmp();
    }
    if (small) {
      try {
        renameSync(tmp, file);
      } catch {
        await renameWithRetry(tmp, file); // the target briefly held open (Windows): retried
      }
    } else await renameWithRetry(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

/**
 * Store reads and writes left running while the caller goes on, at most `limit` at once: `add`
 * waits only when that many are running. A task that rejects is dropped and its error kept
 * (`failure`, the first one); `settled` waits for every task, whatever its outcome.
 */
export class InFlight {
  private readonly tasks = new Set<Promise<void>>();
  failure: unknown = null;
  constructor(private readonly limit: number) {}
  async add(task: Promise<void>): Promise<void> {
    const t: Promise<void> = task.then(
      () => void this.tasks.delete(t),
      (e: unknown) => {
        this.tasks.delete(t);
        this.failure ??= e;
      },
    );
    this.tasks.add(t);
    if (this.tasks.size >= this.limit) await Promise.race(this.tasks);
  }
  async settled(): Promise<void> {
    await Promise.all(this.tasks);
  }
}

export interface StoreEntry {
  file: string;
  size: number;
  mtimeMs: number;
}

/**
 * The `ext` entries of a store laid out as `root/<2 hex digits>/<name>` (the vector cache, the
 * chunk index), in path order; temp files left by crashed writers are removed on the way.
 */
export async function listStoreEntries(root: string, ext: string): Promise<StoreEntry[]> {
  const out: StoreEntry[] = [];
  let subdirs: string[];
  try {
    subdirs = await readdir(root);
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return out;
    throw e;
  }
  const now = Date.now();
  for (const sub of subdirs.sort()) {
    if (!/^[0-9a-f]{2}$/.test(sub)) continue;
    const dir = path.join(root, sub);
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names.sort()) {
      const file = path.join(dir, name);
      const s = await stat(file).catch(() => null);
      if (s === null) continue; // removed meanwhile by another process
      if (name.endsWith('.tmp')) {
        if (now - s.mtimeMs > STALE_TEMP_MS) await unlink(file).catch(() => {});
        continue;
      }
      if (name.endsWith(ext)) out.push({ file, size: s.size, mtimeMs: s.mtimeMs });
    }
  }
  return out;
}

/**
 * Deletes a store's least recently used (oldest mtime) `ext` entries until it is under
 * LOW_WATER * maxBytes, holding a lock file so that concurrent processes do not trim the same
 * directory at once; `ran` is false when another process held the lock.
 */
export async function evictStore(root: string, ext: string, maxBytes: number, log: (line: string) => void): Promise<EvictResult> {
  await mkdir(root, { recursive: true });
  let release: (() => Promise<void>) | null = null;
  try {
    release = await lock(root, { lockfilePath: path.join(root, '.evict.lock'), stale: 30_000, retries: 0 });
  } catch (e) {
    if (isErrno(e, 'ELOCKED')) return { entries: 0, bytes: 0, removed: 0, ran: false };
    throw e;
  }
  try {
    const entries = await listStoreEntries(root, ext);
    let bytes = entries.reduce((s, e) => s + e.size, 0);
    let removed = 0;
    if (bytes > maxBytes) {
      entries.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.file < b.file ? -1 : 1));
      const target = maxBytes * LOW_WATER;
      for (const e of entries) {
        if (bytes <= target) break;
        try {
          await unlink(e.file);
        } catch (err) {
          if (!isErrno(err, 'ENOENT')) throw err;
        }
        bytes -= e.size;
        removed++;
      }
      log(`evicted ${removed} least recently used entries; ${Math.round(bytes / 1024)} KiB kept`);
    }
    await writeUsageHint(root, { bytes, scannedAtMs: Date.now() });
    return { entries: entries.length - removed, bytes, removed, ran: true };
  } finally {
    await release().catch(() => {});
  }
}

/** A store's size as its last full scan counted it, plus what writers reported since. */
interface UsageHint {
  bytes: number;
  scannedAtMs: number;
}
const USAGE_FILE = '.usage.json';
/** A hint older than this is not trusted: the next writer scans (and so corrects lost updates). */
export const USAGE_HINT_TTL_MS = 6 * 3600_000;

async function readUsageHint(root: string): Promise<UsageHint | null> {
  try {
    const h = JSON.parse(await readFile(path.join(root, USAGE_FILE), 'utf8')) as Partial<UsageHint>;
    const ok = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
    return ok(h.bytes) && ok(h.scannedAtMs) ? { bytes: h.bytes, scannedAtMs: h.scannedAtMs } : null;
  } catch {
    return null; // missing or unreadable: scan
  }
}

async function writeUsageHint(root: string, hint: UsageHint): Promise<void> {
  await writeStoreEntry(path.join(root, USAGE_FILE), Buffer.from(JSON.stringify(hint))).catch(() => {});
}

/**
 * After a writer added `written` bytes: evicts (a full scan of the store, evictStore) only when
 * the store may now be over `maxBytes`, judged from the usage hint the last scan left in the
 * store's folder plus what writers added since. Without it, every question that stored one entry
 * listed and stat'ed every entry: about 2 s on a cache holding a 50 MB tree (10^5 entries).
 * Concurrent writers can lose each other's additions (the hint is read, added to and replaced
 * without a lock), so the hint may only undercount by what they wrote at the same moment; it is
 * trusted for USAGE_HINT_TTL_MS, after which the next writer scans again.
 */
export async function evictStoreIfGrown(root: string, ext: string, maxBytes: number, written: number, log: (line: string) => void): Promise<EvictResult | null> {
  if (written === 0) return null;
  const hint = await readUsageHint(root);
  if (hint && Date.now() - hint.scannedAtMs < USAGE_HINT_TTL_MS && hint.bytes + written <= maxBytes) {
    await writeUsageHint(root, { bytes: hint.bytes + written, scannedAtMs: hint.scannedAtMs });
    return null;
  }
  return evictStore(root, ext, maxBytes, log);
}

/** Windows refuses to rename over a file another process has open; that clears quickly. */
export async function renameWithRetry(from: string, to: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await rename(from, to);
      return;
    } catch (e) {
      if (attempt >= 5 || !isErrno(e, 'EPERM', 'EBUSY', 'EACCES')) throw e;
      await sleep(20 * (attempt + 1));
    }
  }
}
