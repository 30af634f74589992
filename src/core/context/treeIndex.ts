// Per-tree snapshot and inverted lexical index, so that a warm question on an unchanged tree
// costs about the same whatever the tree's size: files are checked with `stat` alone (never read
// or hashed again) and ranking reads the postings of the question's terms only.
//
// One entry per (tokenizer identity, chunk options, scanned roots, include/exclude, size limit):
// `cacheDir/trees/v4/<sha256>.arct`. It holds, per file of the tree in document order, what was
// seen when it was read (display path, size, mtimeMs, ctimeMs, ino, sha256 of its text, the token
// count of its rendered chunk header, so that a warm question prices a compressed chunk's header
// without tokenizing it) and its
// chunks (line range, body offsets, token count, hash, body field length); and per body search
// term (sorted, ASCII: codeTerms only yields [a-z0-9_$]) its postings: (chunk, count) pairs over
// the whole tree. Same robustness rules as the other stores (cache.ts): versioned folder and
// header, sha256 checksums, temp file + rename (writeStoreEntry), a bad entry is logged, deleted
// and rebuilt, several processes may share the folder (the last complete write wins; every write
// is a whole, consistent tree).
//
// Layout (v4): the 80-byte store header, whose checksum covers the "head" only (everything but the
// body postings: files, chunk table, hashes, term tables, path postings, and a sha256 per
// POSTINGS_BLOCK_BYTES block of the body), then the body postings (u32 LE), about three quarters
// of a large entry. loadTreeIndex reads and verifies the head alone (positional reads); a
// question's terms then read their postings blocks on demand (synchronous positional reads, so
// that treeBm25 and the others stay synchronous), each block verified the first time it is read
// and kept (LazyPostings: only the blocks read are held, no array the size of all postings until
// all were read). Every reader of postings in this file goes through postingsRange (termPostings,
// allPostings), which reads the range's missing blocks first; a tree built in memory has them all
// in `postings`.
//
// Lazy reads and other processes: no file descriptor is kept open between reads (on Windows an
// open entry could not be replaced by another process's rename for as long as the extension
// keeps the tree, and a descriptor closed when the tree leaves the memo could still be in use by
// a question in flight). Each lazy read opens the entry, reads its 80-byte header and compares
// the checksum with the one the head was loaded with: the checksum covers the head, and so the
// block hashes, so an equal checksum means the same entry and the blocks are read through that
// same descriptor. A different checksum (or no file) means another process replaced (or removed)
// the entry since: the postings of the tree in hand are gone, and that is never taken for
// corruption (the new entry is left alone); nor is an I/O error. A block that fails its hash in
// the very entry the head came from is corruption: the entry is logged and deleted (after
// checking that the path still names the file that was read). In every case the tree is dropped
// from this process's memo and the reading function (treeBm25, chunksWithTerm, chunksWithPrefix,
// buildTreeIndex merging the tree, encodeTreeIndex) throws TreeIndexCorrupt (`deleted` tells
// which), so that the caller asks the question again without that tree (loadTree then reads the
// new entry, or finds none and rebuilds).
//
// A file counts as unchanged when size, mtime, ctime and inode equal the snapshot's and its mtime
// is older than the snapshot's time minus RACY_MS: a file written within the filesystem's
// timestamp granularity of the scan could change again without its mtime moving ("racily clean",
// as git calls it), so such files are read and hashed again.
//
// Scoring (treeBm25) reproduces lexicalIndex.ts's bm25Scores (and so MiniSearch) operation for
// operation: test/unit/pipeline-tree.test.ts checks that.
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync, statSync, unlinkSync, type BigIntStats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import * as path from 'node:path';
import { ENTRY_CHECKSUM_OFFSET, ENTRY_HEADER_BYTES, checkPayloadEntry, isErrno, payloadEntryHeader, writeStoreEntry } from './cache';
import type { FileLexicon } from './lexicalIndex';
import { BM25_PATH_BOOST as PATH_BOOST, bm25Idf, bm25InvDocFreq, codeTerms } from './select';

export const TREE_INDEX_FORMAT_VERSION = 4;
const MAGIC = 0x54435241; // "ARCT" read as little-endian u32
const HEADER_BYTES = ENTRY_HEADER_BYTES; // magic, version, head bytes, reserved, key[32], checksum[32] (over the header and the head)
const CHECKSUM_OFFSET = ENTRY_CHECKSUM_OFFSET;
/** The body postings are verified (and read on demand) in blocks of this many bytes. */
export const POSTINGS_BLOCK_BYTES = 64 * 1024;
/** The head's counts: chunks, terms, term blob bytes, postings, path terms, path blob bytes, path postings, block bytes. */
const COUNTS_BYTES = 32;
const ENTRY_EXT = '.arct';
/** Fields per chunk in the chunk table. */
const CF = 7; // startLine, endLine, bodyStart, bodyEnd, tokens, bodyLength, file
/** Coarsest file timestamp granularity allowed for (FAT: 2 s; ext4, APFS, NTFS are finer). */
export const RACY_MS = 2000;
const LITTLE_ENDIAN = endianness() === 'LE';

/** What a file looked like when it was read. */
export interface FileStamp {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
}

export interface TreeFile extends FileStamp {
  /** Display path (the chunks' `path`). */
  path: string;
  /** sha256 hex of the text (hashText). */
  textHash: string;
  firstChunk: number;
  chunkCount: number;
  /** Tokens of the file's rendered chunk header with the tree's tokenizer; -1 when not known. */
  headerTokens: number;
}

/** A file the scan read and left out for its content (binary, not UTF-8, minified), as it was then. */
export interface SkippedFile extends FileStamp {
  path: string;
  reason: string;
}

/** A tree's snapshot and inverted index, held in typed arrays (no object per chunk or posting). */
export interface TreeIndexData {
  /** Date.now() when the scan that produced the newest stamps started. */
  takenAtMs: number;
  files: TreeFile[];
  /**
   * Files left out for their content, so that a warm question does not read them again while
   * their stamps say unchanged (a tree with many images or bundles would read them all for every
   * question). Absent: none recorded.
   */
  skipped?: SkippedFile[];
  /** CF u32 per chunk (see CF). */
  chunks: Uint32Array;
  /** 32 bytes (sha256 of the rendered chunk) per chunk. */
  hashes: Buffer;
  /** Sorted terms, concatenated (latin1); term i is termBlob[termOff[i], termOff[i+1]). */
  termBlob: Buffer;
  termOff: Uint32Array;
  /**
   * Postings of term i: postings[postOff[i] .. postOff[i+1]) as (chunk, count) pairs. Read them
   * through termPostings, postingsRange or allPostings only: a tree loaded from the store has
   * none in `postings` (empty) until all were read, and reads them on demand (`lazy`).
   */
  postOff: Uint32Array;
  postings: Uint32Array;
  /** A tree loaded from the store: reads and verifies its body postings blocks on demand. Absent once all are in `postings`. */
  lazy?: LazyPostings;
  /** Per file: distinct search terms of its path (the `path` field length). */
  pathLength: Uint32Array;
  /** The same for path terms: sorted terms, and (file, count) pairs per term. */
  pathTermBlob: Buffer;
  pathTermOff: Uint32Array;
  pathPostOff: Uint32Array;
  pathPostings: Uint32Array;
}

export function chunkCount(t: TreeIndexData): number {
  return t.chunks.length / CF;
}

/** The chunk's fields (see CF). */
/** Offsets of the chunk table's fields (see CF). */
const FIELD = { startLine: 0, endLine: 1, bodyStart: 2, bodyEnd: 3, tokens: 4, bodyLength: 5, file: 6 } as const;

const columns = new WeakMap<TreeIndexData, Map<keyof typeof FIELD, Uint32Array>>();

/**
 * One field of every chunk, as a dense array (one strided pass over the chunk table, made once per
 * tree and field while the tree is held: a long-lived host asks many questions of one tree).
 * Shared: the caller must not write into it.
 */
export function chunkColumn(t: TreeIndexData, field: keyof typeof FIELD): Uint32Array {
  let byField = columns.get(t);
  if (!byField) columns.set(t, (byField = new Map()));
  let out = byField.get(field);
  if (!out) {
    const n = chunkCount(t);
    out = new Uint32Array(n);
    const c = t.chunks;
    for (let i = 0, at = FIELD[field]; i < n; i++, at += CF) out[i] = c[at];
    byField.set(field, out);
  }
  return out;
}

/** The chunk's fields (see CF); cheap enough to call for every chunk of a large tree. */
export function chunkField(t: TreeIndexData, chunk: number, field: keyof typeof FIELD): number {
  return t.chunks[chunk * CF + FIELD[field]];
}

export function chunkHash(t: TreeIndexData, chunk: number): string {
  return t.hashes.toString('hex', chunk * 32, chunk * 32 + 32);
}

/** True when `now` (a fresh stat) shows the file as the snapshot saw it, and the snapshot's view is not racy. */
export function unchangedSince(rec: FileStamp, now: FileStamp, takenAtMs: number): boolean {
  if (rec.size !== now.size || rec.mtimeMs !== now.mtimeMs || rec.ctimeMs !== now.ctimeMs || rec.ino !== now.ino) return false;
  return rec.mtimeMs < takenAtMs - RACY_MS && rec.ctimeMs < takenAtMs - RACY_MS;
}

/** Where a tree's entry lives and what it is keyed on. */
export function treeKey(identity: string, opts: { header: string; maxTokens: number }, scan: { roots: string[]; include?: string[]; exclude?: string[]; maxFileBytes: number }): string {
  const fields = [TREE_INDEX_FORMAT_VERSION, identity, opts.header, opts.maxTokens, scan.roots, scan.include ?? [], scan.exclude ?? [], scan.maxFileBytes];
  return createHash('sha256').update(`arc-tree\n${JSON.stringify(fields)}`).digest('hex');
}

export function treeEntryPath(cacheDir: string, key: string): string {
  return path.join(cacheDir, 'trees', `v${TREE_INDEX_FORMAT_VERSION}`, key + ENTRY_EXT);
}

// ---- building ----

/** One file of a tree being built: taken from an older tree's index, or from its lexicon. */
export type TreeSource = { path: string; stamp: FileStamp; textHash: string } & ({ from: TreeIndexData; fileIdx: number } | { lexicon: FileLexicon; headerTokens?: number });

/** A tree's index from its files in document order. */
export function buildTreeIndex(sources: readonly TreeSource[], takenAtMs: number, skipped: readonly SkippedFile[] = []): TreeIndexData {
  let total = 0;
  for (const s of sources) total += 'lexicon' in s ? s.lexicon.chunks.length : s.from.files[s.fileIdx].chunkCount;
  const chunks = new Uint32Array(total * CF);
  const hashes = Buffer.alloc(total * 32);
  const files: TreeFile[] = [];
  // Body postings in two passes, sizes first, then straight into one typed array (a large tree
  // has millions of postings: no JS array per term).
  const termId = new Map<string, number>();
  const sizes: number[] = [];
  const idOf = (term: string): number => {
    let id = termId.get(term);
    if (id === undefined) {
      id = sizes.length;
      termId.set(term, id);
      sizes.push(0);
    }
    return id;
  };
  const fromLexicons: { lex: FileLexicon; first: number; ids: Int32Array }[] = [];
  // Chunk renumbering per older tree.
  const oldTrees = new Map<TreeIndexData, Int32Array>();
  let c = 0;
  sources.forEach((s, k) => {
    const first = c;
    if ('lexicon' in s) {
      const lex = s.lexicon;
      lex.chunks.forEach((m, i) => {
        chunks.set([m.startLine, m.endLine, m.bodyStart, m.bodyEnd, m.tokens, m.bodyLength, k], (first + i) * CF);
        hashes.write(m.hash, (first + i) * 32, 32, 'hex');
      });
      const ids = new Int32Array(lex.terms.length);
      lex.terms.forEach((t, j) => {
        ids[j] = idOf(t);
        sizes[ids[j]] += lex.postOff[j + 1] - lex.postOff[j];
      });
      fromLexicons.push({ lex, first, ids });
      c += lex.chunks.length;
    } else {
      const old = s.from;
      const f = old.files[s.fileIdx];
      let map = oldTrees.get(old);
      if (!map) oldTrees.set(old, (map = new Int32Array(chunkCount(old)).fill(-1)));
      for (let i = 0; i < f.chunkCount; i++) {
        const o = f.firstChunk + i;
        map[o] = first + i;
        chunks.set(old.chunks.subarray(o * CF, o * CF + CF), (first + i) * CF);
        chunks[(first + i) * CF + 6] = k;
        old.hashes.copy(hashes, (first + i) * 32, o * 32, o * 32 + 32);
      }
      c += f.chunkCount;
    }
    const headerTokens = 'lexicon' in s ? (s.headerTokens ?? -1) : s.from.files[s.fileIdx].headerTokens;
    files.push({ path: s.path, ...pickStamp(s.stamp), textHash: s.textHash, firstChunk: first, chunkCount: c - first, headerTokens });
  });
  const oldIds = new Map<TreeIndexData, Int32Array>();
  for (const [old, map] of oldTrees) {
    const nTerms = old.termOff.length - 1;
    const ids = new Int32Array(nTerms).fill(-1);
    const op = allPostings(old); // a stored tree reads them all now (may throw TreeIndexCorrupt)
    for (let j = 0; j < nTerms; j++) {
      let kept = 0;
      for (let q = old.postOff[j]; q < old.postOff[j + 1]; q += 2) if (map[op[q]] >= 0) kept += 2;
      if (kept === 0) continue;
      ids[j] = idOf(old.termBlob.toString('latin1', old.termOff[j], old.termOff[j + 1]));
      sizes[ids[j]] += kept;
    }
    oldIds.set(old, ids);
  }
  const terms = [...termId.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const rankOf = new Int32Array(terms.length);
  const termOff = new Uint32Array(terms.length + 1);
  const postOff = new Uint32Array(terms.length + 1);
  let blobLen = 0;
  let postLen = 0;
  terms.forEach((t, r) => {
    const id = termId.get(t) as number;
    rankOf[id] = r;
    termOff[r] = blobLen;
    postOff[r] = postLen;
    blobLen += t.length;
    postLen += sizes[id];
  });
  termOff[terms.length] = blobLen;
  postOff[terms.length] = postLen;
  const termBlob = Buffer.alloc(blobLen);
  terms.forEach((t, r) => termBlob.write(t, termOff[r], 'latin1'));
  const postings = new Uint32Array(postLen);
  const cursor = postOff.slice(0, terms.length);
  for (const { lex, first, ids } of fromLexicons) {
    for (let j = 0; j < ids.length; j++) {
      const r = rankOf[ids[j]];
      const p = lex.postings;
      for (let q = lex.postOff[j]; q < lex.postOff[j + 1]; q += 2) {
        postings[cursor[r]++] = first + p[q];
        postings[cursor[r]++] = p[q + 1];
      }
    }
  }
  for (const [old, map] of oldTrees) {
    const ids = oldIds.get(old) as Int32Array;
    const op = allPostings(old);
    for (let j = 0; j < ids.length; j++) {
      if (ids[j] < 0) continue;
      const r = rankOf[ids[j]];
      for (let q = old.postOff[j]; q < old.postOff[j + 1]; q += 2) {
        const to = map[op[q]];
        if (to < 0) continue;
        postings[cursor[r]++] = to;
        postings[cursor[r]++] = op[q + 1];
      }
    }
  }
  const body = { blob: termBlob, termOff, postOff, postings };
  // Path terms, as MiniSearch indexes the `path` field: counts per file, field length = distinct terms.
  const pathPostingsOf = new Map<string, number[]>();
  const pathLength = new Uint32Array(files.length);
  files.forEach((f, k) => {
    const counts = new Map<string, number>();
    for (const w of codeTerms(f.path)) counts.set(w, (counts.get(w) ?? 0) + 1);
    pathLength[k] = counts.size;
    for (const [w, n] of counts) {
      const list = pathPostingsOf.get(w);
      if (list) list.push(k, n);
      else pathPostingsOf.set(w, [k, n]);
    }
  });
  const paths = termTables(pathPostingsOf);
  return {
    takenAtMs,
    files,
    skipped: skipped.map((f) => ({ path: f.path, ...pickStamp(f), reason: f.reason })),
    chunks,
    hashes,
    termBlob: body.blob,
    termOff: body.termOff,
    postOff: body.postOff,
    postings: body.postings,
    pathLength,
    pathTermBlob: paths.blob,
    pathTermOff: paths.termOff,
    pathPostOff: paths.postOff,
    pathPostings: paths.postings,
  };
}

/** Sorted term table and postings from term -> pairs. */
function termTables(postingsOf: Map<string, number[]>): { blob: Buffer; termOff: Uint32Array; postOff: Uint32Array; postings: Uint32Array } {
  const terms = [...postingsOf.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const termOff = new Uint32Array(terms.length + 1);
  const postOff = new Uint32Array(terms.length + 1);
  let blobLen = 0;
  let postLen = 0;
  terms.forEach((t, j) => {
    termOff[j] = blobLen;
    postOff[j] = postLen;
    blobLen += t.length;
    postLen += (postingsOf.get(t) as number[]).length;
  });
  termOff[terms.length] = blobLen;
  postOff[terms.length] = postLen;
  const blob = Buffer.alloc(blobLen);
  const postings = new Uint32Array(postLen);
  terms.forEach((t, j) => {
    blob.write(t, termOff[j], 'latin1');
    postings.set(postingsOf.get(t) as number[], postOff[j]);
  });
  return { blob, termOff, postOff, postings };
}

function pickStamp(s: FileStamp): FileStamp {
  return { size: s.size, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs, ino: s.ino };
}

// ---- storing ----

function align4(n: number): number {
  return (n + 3) & ~3;
}

const u32 = (a: Uint32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

export function encodeTreeIndex(key: string, t: TreeIndexData, blockBytes = POSTINGS_BLOCK_BYTES): Buffer {
  return Buffer.concat(encodeTreeIndexParts(key, t, blockBytes));
}

/**
 * The entry as consecutive parts (header first, the body postings last), so that a large tree is
 * written without one more copy of it. A stored tree's postings are all read first (and may throw
 * TreeIndexCorrupt).
 */
export function encodeTreeIndexParts(key: string, t: TreeIndexData, blockBytes = POSTINGS_BLOCK_BYTES): Buffer[] {
  if (!/^[0-9a-f]{64}$/.test(key)) throw new Error(`Invalid tree index key ${key}`);
  if (!Number.isInteger(blockBytes) || blockBytes <= 0 || blockBytes % 4 !== 0) throw new Error(`Invalid postings block size ${blockBytes}`);
  const all = allPostings(t);
  const body = u32(all);
  const json = Buffer.from(
    JSON.stringify({
      takenAtMs: t.takenAtMs,
      files: t.files.map((f) => [f.path, f.size, f.mtimeMs, f.ctimeMs, f.ino, f.textHash, f.firstChunk, f.chunkCount, f.headerTokens]),
      skipped: (t.skipped ?? []).map((f) => [f.path, f.size, f.mtimeMs, f.ctimeMs, f.ino, f.reason]),
    }),
    'utf8',
  );
  const nChunks = chunkCount(t);
  const nTerms = t.termOff.length - 1;
  const head: Buffer[] = [];
  const jsonLen = Buffer.alloc(4);
  jsonLen.writeUInt32LE(json.length, 0);
  head.push(jsonLen, json, Buffer.alloc(align4(json.length) - json.length));
  const counts = Buffer.alloc(COUNTS_BYTES);
  [nChunks, nTerms, t.termBlob.length, all.length, t.pathTermOff.length - 1, t.pathTermBlob.length, t.pathPostings.length, blockBytes].forEach((n, i) => counts.writeUInt32LE(n, i * 4));
  const nBlocks = Math.ceil(body.length / blockBytes);
  const blockHashes = Buffer.alloc(nBlocks * 32);
  for (let b = 0; b < nBlocks; b++) createHash('sha256').update(body.subarray(b * blockBytes, Math.min(body.length, (b + 1) * blockBytes))).digest().copy(blockHashes, b * 32);
  head.push(counts, u32(t.chunks), t.hashes, u32(t.termOff), u32(t.postOff), u32(t.pathLength), u32(t.pathTermOff), u32(t.pathPostOff), u32(t.pathPostings), blockHashes);
  const blobs = t.termBlob.length + t.pathTermBlob.length;
  head.push(t.termBlob, t.pathTermBlob, Buffer.alloc(align4(blobs) - blobs));
  return [payloadEntryHeader(MAGIC, TREE_INDEX_FORMAT_VERSION, key, head), ...head, body];
}

const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/** A verified head: the tree but its body postings, and how to check those. */
interface Head {
  tree: Omit<TreeIndexData, 'postings' | 'lazy'>;
  nPost: number;
  blockBytes: number;
  blockHashes: Buffer;
}

/**
 * Parses and verifies `buf`: the store header and the head, exactly (the header's checksum covers
 * both); returns the reason when it must not be served.
 */
function decodeHead(key: string, buf: Buffer): Head | string {
  const bad = checkPayloadEntry(buf, key, MAGIC, TREE_INDEX_FORMAT_VERSION);
  if (bad !== null) return bad;
  // Typed-array views need 4-byte alignment; copy the head when the buffer does not have it.
  const payload = (buf.byteOffset + HEADER_BYTES) % 4 === 0 ? buf.subarray(HEADER_BYTES) : Buffer.from(buf.subarray(HEADER_BYTES));
  let o = 0;
  const need = (n: number) => {
    if (o + n > payload.length) throw new RangeError('section past the end');
  };
  try {
    need(4);
    const jsonLen = payload.readUInt32LE(0);
    o = 4;
    need(jsonLen);
    const raw = JSON.parse(payload.toString('utf8', o, o + jsonLen)) as { takenAtMs?: unknown; files?: unknown; skipped?: unknown };
    o = align4(o + jsonLen);
    need(COUNTS_BYTES);
    const [nChunks, nTerms, blobLen, nPost, nPathTerms, pathBlobLen, nPathPost, blockBytes] = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => payload.readUInt32LE(o + i * 4));
    o += COUNTS_BYTES;
    if (blockBytes === 0 || blockBytes % 4 !== 0) return 'bad postings block size';
    const view = (n: number) => {
      need(n * 4);
      const a = new Uint32Array(payload.buffer, payload.byteOffset + o, n);
      o += n * 4;
      return a;
    };
    const bytes = (n: number) => {
      need(n);
      o += n;
      return payload.subarray(o - n, o);
    };
    const chunks = view(nChunks * CF);
    const hashes = bytes(nChunks * 32);
    const termOff = view(nTerms + 1);
    const postOff = view(nTerms + 1);
    const files0 = Array.isArray(raw.files) ? raw.files.length : 0;
    const pathLength = view(files0);
    const pathTermOff = view(nPathTerms + 1);
    const pathPostOff = view(nPathTerms + 1);
    const pathPostings = view(nPathPost);
    const blockHashes = bytes(Math.ceil((nPost * 4) / blockBytes) * 32);
    const termBlob = bytes(blobLen);
    const pathTermBlob = bytes(pathBlobLen);
    if (align4(o) !== payload.length) return 'trailing bytes';
    if (!isUint(raw.takenAtMs) || !Array.isArray(raw.files)) return 'malformed payload';
    const files: TreeFile[] = [];
    let next = 0;
    for (const r of raw.files as unknown[]) {
      if (!Array.isArray(r) || r.length !== 9) return 'malformed file';
      const [p, size, mtimeMs, ctimeMs, ino, textHash, firstChunk, count, headerTokens] = r as unknown[];
      if (typeof headerTokens !== 'number' || !Number.isInteger(headerTokens) || headerTokens < -1) return 'malformed file';
      if (typeof p !== 'string' || ![size, firstChunk, count, ino].every(isUint) || typeof mtimeMs !== 'number' || typeof ctimeMs !== 'number' || typeof textHash !== 'string' || !/^[0-9a-f]{64}$/.test(textHash)) return 'malformed file';
      if (firstChunk !== next) return 'chunk ranges out of order';
      next += count as number;
      files.push({ path: p, size, mtimeMs, ctimeMs, ino, textHash, firstChunk, chunkCount: count, headerTokens } as TreeFile);
    }
    if (next !== nChunks) return 'chunk count mismatch';
    const skipped: SkippedFile[] = [];
    if (raw.skipped !== undefined) {
      if (!Array.isArray(raw.skipped)) return 'malformed skipped files';
      for (const r of raw.skipped as unknown[]) {
        if (!Array.isArray(r) || r.length !== 6) return 'malformed skipped file';
        const [p, size, mtimeMs, ctimeMs, ino, reason] = r as unknown[];
        if (typeof p !== 'string' || typeof reason !== 'string' || ![size, ino].every(isUint) || typeof mtimeMs !== 'number' || typeof ctimeMs !== 'number') return 'malformed skipped file';
        skipped.push({ path: p, size: size as number, mtimeMs, ctimeMs, ino: ino as number, reason });
      }
    }
    if (termOff[nTerms] !== blobLen || postOff[nTerms] !== nPost || nPost % 2 !== 0) return 'term tables mismatch';
    if (pathTermOff[nPathTerms] !== pathBlobLen || pathPostOff[nPathTerms] !== nPathPost || nPathPost % 2 !== 0) return 'path term tables mismatch';
    const tree = { takenAtMs: raw.takenAtMs, files, skipped, chunks, hashes, termBlob, termOff, postOff, pathLength, pathTermBlob, pathTermOff, pathPostOff, pathPostings };
    return { tree, nPost, blockBytes, blockHashes };
  } catch (e) {
    return `unreadable payload (${(e as Error).message})`;
  }
}

/** Index of the first body block that fails its hash, or -1. */
function badBlock(body: Buffer, first: number, blockBytes: number, blockHashes: Buffer): number {
  for (let at = 0, b = first; at < body.length; at += blockBytes, b++) {
    const h = createHash('sha256').update(body.subarray(at, Math.min(body.length, at + blockBytes))).digest();
    if (!h.equals(blockHashes.subarray(b * 32, b * 32 + 32))) return b;
  }
  return -1;
}

/** Parses and verifies a whole entry (head and every postings block); returns the reason when it must not be served. */
export function decodeTreeIndex(key: string, buf: Buffer): TreeIndexData | string {
  if (buf.length < HEADER_BYTES) return `truncated (${buf.length} bytes)`;
  const headEnd = HEADER_BYTES + buf.readUInt32LE(8);
  if (headEnd > buf.length) return `size ${buf.length}, expected more than ${headEnd}`;
  const h = decodeHead(key, buf.subarray(0, headEnd));
  if (typeof h === 'string') return h;
  const want = headEnd + h.nPost * 4;
  if (buf.length !== want) return `size ${buf.length}, expected ${want}`;
  const body = buf.subarray(headEnd);
  const b = badBlock(body, 0, h.blockBytes, h.blockHashes);
  if (b >= 0) return `postings block ${b} checksum mismatch`;
  const postings = body.byteOffset % 4 === 0 ? new Uint32Array(body.buffer, body.byteOffset, h.nPost) : new Uint32Array(Uint8Array.from(body).buffer);
  return { ...h.tree, postings };
}

/**
 * Why a stored tree's postings could not be read (TreeIndexCorrupt): thrown by whatever read them
 * (treeBm25, chunksWithTerm, chunksWithPrefix, buildTreeIndex merging that tree,
 * encodeTreeIndex). The tree has been dropped from this process's memo; ask the question again
 * without it (loadTree then reads the current entry, or finds none and the tree is rebuilt).
 */
export class TreeIndexCorrupt extends Error {
  override readonly name = 'TreeIndexCorrupt';
  constructor(
    /** The entry file. */
    readonly file: string,
    readonly reason: string,
    /**
     * true: the entry the tree was loaded from is corrupt, and was deleted. false: another
     * process replaced or removed it after the tree was loaded, or it could not be read (EACCES,
     * EIO, ...); whatever is there now is left alone.
     */
    readonly deleted: boolean,
  ) {
    super(`The stored tree index ${file} cannot be read (${reason}); ask again`);
  }
}

/** Reads fully at `pos`; returns the bytes read (fewer at the end of the file). */
function readAt(fd: number, into: Uint8Array, pos: number): number {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, pos + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

async function readAtAsync(fh: FileHandle, into: Uint8Array, pos: number): Promise<number> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await fh.read(into, done, into.length - done, pos + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

const sameFile = (a: BigIntStats, b: BigIntStats) => a.ino === b.ino && a.dev === b.dev;

/**
 * Deletes a corrupt entry only when its path still names the file that was read (`read`: that
 * file's stat), not a new entry another process just renamed there; true when deleted.
 */
function deleteIfStillRead(file: string, read: BigIntStats | null): boolean {
  try {
    if (read && sameFile(read, statSync(file, { bigint: true }))) {
      unlinkSync(file);
      return true;
    }
  } catch {
    // already gone or replaced
  }
  return false;
}

/**
 * The body postings of a tree loaded from the store, read on demand: block by block, each
 * verified against the head's hash the first time it is read (see the top comment for how another
 * process's replacing the entry is told from corruption).
 */
export class LazyPostings {
  /** Per block: its postings once read and verified (views into the buffer of the run of blocks read together). */
  private readonly blocks: (Uint32Array | undefined)[];
  private failure: TreeIndexCorrupt | null = null;
  /** Bytes and blocks read so far (tests, benchmarks). */
  readBytes = 0;
  readBlocks = 0;

  constructor(
    readonly file: string,
    /** The entry header's checksum the head was verified with (covers the head, so the block hashes). */
    private readonly checksum: Buffer,
    private readonly bodyAt: number,
    private readonly bodyBytes: number,
    private readonly blockBytes: number,
    private readonly blockHashes: Buffer,
    private readonly log: (line: string) => void,
  ) {
    this.blocks = new Array<Uint32Array | undefined>(Math.ceil(bodyBytes / blockBytes));
  }

  /**
   * Postings [from, to) (u32 units, 0 <= from <= to <= all), indexed from 0: a view when they
   * lie in blocks read together, else a copy. Throws TreeIndexCorrupt when they cannot be read.
   */
  range(t: TreeIndexData, from: number, to: number): Uint32Array {
    if (to <= from) return new Uint32Array(0);
    this.ensure(t, from, to);
    const W = this.blockBytes / 4;
    const b0 = Math.floor(from / W);
    const b1 = Math.floor((to - 1) / W);
    const first = this.blocks[b0] as Uint32Array;
    const last = this.blocks[b1] as Uint32Array;
    let out: Uint32Array;
    if (first.buffer === last.buffer && last.byteOffset - first.byteOffset === (b1 - b0) * this.blockBytes) {
      out = new Uint32Array(first.buffer, first.byteOffset + (from - b0 * W) * 4, to - from);
    } else {
      out = new Uint32Array(to - from);
      for (let b = b0; b <= b1; b++) {
        const blk = this.blocks[b] as Uint32Array;
        const lo = Math.max(from, b * W);
        const hi = Math.min(to, b * W + blk.length);
        out.set(blk.subarray(lo - b * W, hi - b * W), lo - from);
      }
    }
    if (from === 0 && to * 4 === this.bodyBytes) {
      // All of them (a merge, a store): the tree keeps them as one array, as a built tree does.
      t.postings = out;
      t.lazy = undefined;
    }
    return out;
  }

  /** Reads and verifies the blocks of postings [from, to) not read yet; throws TreeIndexCorrupt when it cannot. */
  private ensure(t: TreeIndexData, from: number, to: number): void {
    const B = this.blockBytes;
    const first = Math.floor((from * 4) / B);
    const last = Math.floor((to * 4 - 1) / B);
    let b = first;
    while (b <= last && this.blocks[b]) b++;
    if (b > last) return;
    if (this.failure) throw this.failure;
    let fd = -1;
    let fdStat: BigIntStats | null = null;
    let bad: string | null = null;
    try {
      fd = openSync(this.file, 'r');
      const header = Buffer.alloc(HEADER_BYTES);
      if (readAt(fd, header, 0) !== HEADER_BYTES || !header.subarray(CHECKSUM_OFFSET, HEADER_BYTES).equals(this.checksum)) {
        closeSync(fd);
        fd = -1;
        this.log(`tree index: ${this.file} was replaced by another process since it was loaded; this tree's postings are gone, ask again`);
        this.fail(t, 'replaced by another process since it was loaded', false);
      }
      while (b <= last && bad === null) {
        let end = b; // a run of missing blocks [b, end], read together
        while (end + 1 <= last && !this.blocks[end + 1]) end++;
        const at = b * B;
        // Unpooled (byteOffset 0): viewed as u32.
        const run = Buffer.allocUnsafeSlow(Math.min(this.bodyBytes, (end + 1) * B) - at);
        const got = readAt(fd, run, this.bodyAt + at);
        this.readBytes += got;
        if (got !== run.length) bad = `truncated: postings end at byte ${this.bodyAt + at + got}, expected ${this.bodyAt + this.bodyBytes}`;
        else {
          const wrong = badBlock(run, b, B, this.blockHashes);
          for (let k = b; k <= (wrong >= 0 ? wrong - 1 : end); k++) {
            const o = (k - b) * B;
            this.blocks[k] = new Uint32Array(run.buffer, o, (Math.min(run.length, o + B) - o) / 4);
            this.readBlocks++;
          }
          if (wrong >= 0) bad = `postings block ${wrong} checksum mismatch`;
        }
        b = end + 1;
        while (b <= last && this.blocks[b]) b++;
      }
      if (bad !== null) fdStat = fstatSync(fd, { bigint: true });
    } catch (e) {
      if (e instanceof TreeIndexCorrupt) throw e;
      if (fd >= 0) closeSync(fd);
      fd = -1;
      if (isErrno(e, 'ENOENT', 'ENOTDIR')) {
        this.log(`tree index: ${this.file} was removed by another process since it was loaded; this tree's postings are gone, ask again`);
        this.fail(t, 'removed by another process since it was loaded', false);
      }
      // Unreadable (EACCES, EMFILE, EIO, ...): the entry is not known to be bad; it is left alone.
      this.log(`tree index: cannot read ${this.file}: ${(e as Error).message}; ask again`);
      this.fail(t, `cannot read (${(e as Error).message})`, false);
    } finally {
      if (fd >= 0) closeSync(fd);
    }
    if (bad !== null) {
      const deleted = deleteIfStillRead(this.file, fdStat);
      this.log(`tree index: corrupt entry ${this.file} (${bad}); ${deleted ? 'deleted, will rebuild' : 'already replaced by another process'}`);
      this.fail(t, bad, deleted);
    }
  }

  private fail(t: TreeIndexData, reason: string, deleted: boolean): never {
    forgetTree(t);
    this.failure = new TreeIndexCorrupt(this.file, reason, deleted);
    throw this.failure;
  }
}

/**
 * Body postings [from, to) (u32 units), indexed from 0: a stored tree reads the blocks they lie
 * in now (LazyPostings). Throws TreeIndexCorrupt when they cannot be read.
 */
export function postingsRange(t: TreeIndexData, from: number, to: number): Uint32Array {
  return t.lazy ? t.lazy.range(t, from, to) : t.postings.subarray(from, to);
}

/** Term j's body postings, (chunk, count) pairs; throws TreeIndexCorrupt when they cannot be read. */
export function termPostings(t: TreeIndexData, j: number): Uint32Array {
  return postingsRange(t, t.postOff[j], t.postOff[j + 1]);
}

/** Every body posting of the tree (a stored tree reads all its blocks now); throws TreeIndexCorrupt when they cannot be read. */
export function allPostings(t: TreeIndexData): Uint32Array {
  return postingsRange(t, 0, t.postOff[t.postOff.length - 1]);
}

/**
 * The stored tree, or null when there is none or it is bad (then logged and deleted). Reads and
 * verifies the head only; the body postings are read on demand (LazyPostings).
 */
export async function loadTreeIndex(cacheDir: string, key: string, log: (line: string) => void): Promise<TreeIndexData | null> {
  if (!LITTLE_ENDIAN) return null; // the tables are stored little-endian and viewed in place
  const file = treeEntryPath(cacheDir, key);
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    if (!isErrno(e, 'ENOENT', 'ENOTDIR')) log(`tree index: cannot read ${file}: ${(e as Error).message}; rebuilding`);
    return null;
  }
  let bad: string | null = null;
  let fdStat: BigIntStats | null = null;
  try {
    fdStat = await fh.stat({ bigint: true });
    const size = Number(fdStat.size);
    const header = Buffer.alloc(HEADER_BYTES);
    if ((await readAtAsync(fh, header, 0)) !== HEADER_BYTES) bad = `truncated (${size} bytes)`;
    else {
      const headEnd = HEADER_BYTES + header.readUInt32LE(8);
      if (headEnd > size) bad = `size ${size}, expected more than ${headEnd}`;
      else {
        // Unpooled (byteOffset 0): the tables are viewed in place.
        const buf = Buffer.allocUnsafeSlow(headEnd);
        header.copy(buf);
        if ((await readAtAsync(fh, buf.subarray(HEADER_BYTES), HEADER_BYTES)) !== headEnd - HEADER_BYTES) bad = 'truncated while reading';
        else {
          const h = decodeHead(key, buf);
          if (typeof h === 'string') bad = h;
          else if (size !== headEnd + h.nPost * 4) bad = `size ${size}, expected ${headEnd + h.nPost * 4}`;
          else {
            const checksum = Buffer.from(buf.subarray(CHECKSUM_OFFSET, HEADER_BYTES));
            // No postings in hand: LazyPostings reads them (`postings` holds them all once all are read).
            return { ...h.tree, postings: new Uint32Array(0), lazy: h.nPost > 0 ? new LazyPostings(file, checksum, headEnd, h.nPost * 4, h.blockBytes, h.blockHashes, log) : undefined };
          }
        }
      }
    }
  } catch (e) {
    log(`tree index: cannot read ${file}: ${(e as Error).message}; rebuilding`);
    return null;
  } finally {
    await fh.close().catch(() => {});
  }
  const deleted = deleteIfStillRead(file, fdStat);
  log(`tree index: corrupt entry ${file} (${bad}); ${deleted ? 'deleted, will rebuild' : 'already replaced by another process'}`);
  return null;
}

export async function storeTreeIndex(cacheDir: string, key: string, t: TreeIndexData, log: (line: string) => void): Promise<void> {
  if (!LITTLE_ENDIAN) return;
  const file = treeEntryPath(cacheDir, key);
  try {
    await writeStoreEntry(file, encodeTreeIndexParts(key, t));
  } catch (e) {
    if (e instanceof TreeIndexCorrupt) throw e; // the tree itself cannot be read: the caller must know
    // The index only saves time: a failed write must not fail the question.
    log(`tree index: could not store ${file}: ${(e as Error).message}`);
  }
}

// ---- querying ----

/** Index of `term` in the sorted term table, or -1. */
export function findTreeTerm(t: TreeIndexData, term: string): number {
  return findIn(t.termBlob, t.termOff, term);
}

function findIn(blob: Buffer, termOff: Uint32Array, term: string): number {
  const want = Buffer.from(term, 'latin1');
  if (want.toString('latin1') !== term) return -1; // not latin1: no such term is stored
  let lo = 0;
  let hi = termOff.length - 2;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const c = blob.compare(want, 0, want.length, termOff[mid], termOff[mid + 1]);
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Chunks whose body has a term starting with `prefix`, ascending (terms are sorted bytewise). */
export function chunksWithPrefix(t: TreeIndexData, prefix: string): number[] {
  const want = Buffer.from(prefix, 'latin1');
  if (want.toString('latin1') !== prefix) return [];
  let lo = 0;
  let hi = t.termOff.length - 1; // first term >= prefix, in [lo, hi]
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (t.termBlob.compare(want, 0, want.length, t.termOff[mid], t.termOff[mid + 1]) >= 0) hi = mid;
    else lo = mid + 1;
  }
  let end = lo; // terms [lo, end) start with the prefix
  while (end < t.termOff.length - 1) {
    const len = t.termOff[end + 1] - t.termOff[end];
    if (len < want.length || t.termBlob.compare(want, 0, want.length, t.termOff[end], t.termOff[end] + want.length) !== 0) break;
    end++;
  }
  const out = new Set<number>();
  const p = postingsRange(t, t.postOff[lo], t.postOff[end]);
  for (let q = 0; q < p.length; q += 2) out.add(p[q]);
  return [...out].sort((a, b) => a - b);
}

/** Chunks whose body has `term`, ascending. */
export function chunksWithTerm(t: TreeIndexData, term: string): number[] {
  const j = findTreeTerm(t, term);
  if (j < 0) return [];
  const p = termPostings(t, j);
  const out: number[] = [];
  for (let q = 0; q < p.length; q += 2) out.push(p[q]);
  return out.sort((a, b) => a - b);
}

/**
 * BM25 of every chunk of the tree for the question, normalised so that the best is 1: the
 * numbers bm25Scores gives over the same files' lexicons (and MiniSearch over their chunks).
 * Reads the postings of the question's terms only.
 */
const averages = new WeakMap<TreeIndexData, { avgPath: number; avgBody: number }>();

/**
 * The field length averages of BM25, as running averages in document order (as bm25Scores, and
 * MiniSearch, compute them): the same for every question on a tree, so computed once per tree.
 */
function fieldAverages(t: TreeIndexData): { avgPath: number; avgBody: number } {
  let hit = averages.get(t);
  if (!hit) {
    let avgPath = 0;
    let avgBody = 0;
    let count = 0;
    t.files.forEach((f, k) => {
      const pl = t.pathLength[k];
      for (let i = 0; i < f.chunkCount; i++) {
        avgPath = (avgPath * count + pl) / (count + 1);
        avgBody = (avgBody * count + t.chunks[(f.firstChunk + i) * CF + 5]) / (count + 1);
        count++;
      }
    });
    hit = { avgPath, avgBody };
    averages.set(t, hit);
  }
  return hit;
}

/** Each file's index in the tree by its path; one map per tree, kept while the tree is. */
const fileIndexes = new WeakMap<TreeIndexData, Map<string, number>>();
export function treeFileIndex(t: TreeIndexData): Map<string, number> {
  let m = fileIndexes.get(t);
  if (!m) {
    m = new Map(t.files.map((f, i) => [f.path, i]));
    fileIndexes.set(t, m);
  }
  return m;
}

export function treeBm25(t: TreeIndexData, question: string): Float64Array {
  const total = chunkCount(t);
  const out = new Float64Array(total);
  const query = codeTerms(question);
  if (total === 0 || query.length === 0) return out;
  const { avgPath, avgBody } = fieldAverages(t);
  // Typed arrays instead of bm25Scores' maps (a common word has postings in most chunks); the
  // arithmetic per chunk is the same, in the same order.
  const score = new Float64Array(total);
  const termScore = new Float64Array(total);
  const inTerm = new Uint8Array(total);
  const touched = new Uint32Array(total);
  const matchedTerms = new Uint16Array(total);
  // A term asked twice adds its score twice but counts once per chunk: a repeat matches exactly
  // the chunks it matched the first time.
  const seen = new Set<string>();
  for (const term of query) {
    let n = 0;
    const touch = (doc: number, s: number) => {
      if (inTerm[doc] === 0) {
        inTerm[doc] = 1;
        touched[n++] = doc;
        termScore[doc] = s;
      } else termScore[doc] = termScore[doc] + s;
    };
    const pj = findIn(t.pathTermBlob, t.pathTermOff, term);
    if (pj >= 0) {
      const from = t.pathPostOff[pj];
      const to = t.pathPostOff[pj + 1];
      let pathCount = 0;
      for (let q = from; q < to; q += 2) pathCount += t.files[t.pathPostings[q]].chunkCount;
      const pathIdf = bm25InvDocFreq(pathCount, total);
      // Files in document order, as bm25Scores visits them.
      for (let q = from; q < to; q += 2) {
        const k = t.pathPostings[q];
        const f = t.files[k];
        const s = PATH_BOOST * bm25Idf(pathIdf, t.pathPostings[q + 1], t.pathLength[k], avgPath);
        for (let i = 0; i < f.chunkCount; i++) touch(f.firstChunk + i, s);
      }
    }
    const j = findTreeTerm(t, term);
    if (j >= 0) {
      const p = termPostings(t, j);
      const idf = bm25InvDocFreq(p.length / 2, total);
      const chunks = t.chunks;
      for (let q = 0; q < p.length; q += 2) {
        const doc = p[q];
        touch(doc, bm25Idf(idf, p[q + 1], chunks[doc * CF + 5], avgBody));
      }
    }
    const first = !seen.has(term);
    seen.add(term);
    for (let x = 0; x < n; x++) {
      const doc = touched[x];
      inTerm[doc] = 0;
      if (matchedTerms[doc] === 0) score[doc] = termScore[doc];
      else score[doc] += termScore[doc];
      if (first) matchedTerms[doc]++;
    }
  }
  let max = 0;
  for (let doc = 0; doc < total; doc++) {
    if (matchedTerms[doc] === 0) continue;
    score[doc] *= matchedTerms[doc];
    max = Math.max(max, score[doc]);
  }
  if (max > 0) for (let doc = 0; doc < total; doc++) if (matchedTerms[doc] > 0) out[doc] = score[doc] / max;
  return out;
}

// ---- this process's copy ----

/**
 * The trees read or written by this process, by key (the extension asks many questions of one
 * tree): a few, most recent last. A remembered tree may be older than the stored one (another
 * process wrote since); it is still right, as every file is checked against its stamps, as long
 * as the postings it needs were read before (else TreeIndexCorrupt, and it is dropped from here).
 */
const memo = new Map<string, TreeIndexData>();
const MEMO_TREES = 2;

function rememberTree(key: string, t: TreeIndexData): void {
  memo.delete(key);
  memo.set(key, t);
  for (const k of memo.keys()) if (memo.size > MEMO_TREES) memo.delete(k);
}

/** Drops `t` from the memo (its stored postings cannot be read). */
function forgetTree(t: TreeIndexData): void {
  for (const [k, v] of memo) if (v === t) memo.delete(k);
}

/** The tree from this process's memo, else the store (loadTreeIndex). */
export async function loadTree(cacheDir: string, key: string, log: (line: string) => void): Promise<TreeIndexData | null> {
  const hit = memo.get(`${cacheDir}\n${key}`);
  if (hit) return hit;
  const t = await loadTreeIndex(cacheDir, key, log);
  if (t) rememberTree(`${cacheDir}\n${key}`, t);
  return t;
}

/** Stores the tree (storeTreeIndex) and remembers it. */
export async function storeTree(cacheDir: string, key: string, t: TreeIndexData, log: (line: string) => void): Promise<void> {
  rememberTree(`${cacheDir}\n${key}`, t);
  await storeTreeIndex(cacheDir, key, t, log);
}

/** Forgets this process's trees (tests and the benchmark use it to act as a new process). */
export function clearTreeMemo(): void {
  memo.clear();
}
