// Per-tree snapshot and inverted lexical index, so that a warm question on an unchanged tree
// costs about the same whatever the tree's size: files are checked with `stat` alone (never read
// or hashed again) and ranking reads the postings of the question's terms only.
//
// One entry per (tokenizer identity, chunk options, scanned roots, include/exclude, size limit):
// `cacheDir/trees/v1/<sha256>.arct`. It holds, per file of the tree in document order, what was
// seen when it was read (display path, size, mtimeMs, ctimeMs, ino, sha256 of its text, the token
// count of its rendered chunk header, so that a warm question prices a compressed chunk's header
// without tokenizing it) and its
// chunks (line range, body offsets, token count, hash, body field length); and per body search
// term (sorted, ASCII: codeTerms only yields [a-z0-9_$]) its postings: (chunk, count) pairs over
// the whole tree. Same robustness rules as the other stores (cache.ts): versioned folder and
// header, sha256 checksum of the payload, temp file + rename (writeStoreEntry), a bad entry is
// logged, deleted and rebuilt, several processes may share the folder (the last complete write
// wins; every write is a whole, consistent tree).
//
// A file counts as unchanged when size, mtime, ctime and inode equal the snapshot's and its mtime
// is older than the snapshot's time minus RACY_MS: a file written within the filesystem's
// timestamp granularity of the scan could change again without its mtime moving ("racily clean",
// as git calls it), so such files are read and hashed again.
//
// Scoring (treeBm25) reproduces lexicalIndex.ts's bm25Scores (and so MiniSearch) operation for
// operation: test/unit/pipeline-tree.test.ts checks that.
import { createHash } from 'node:crypto';
import { readFile, unlink } from 'node:fs/promises';
import { endianness } from 'node:os';
import * as path from 'node:path';
import { ENTRY_HEADER_BYTES, checkPayloadEntry, isErrno, payloadEntryHeader, writeStoreEntry } from './cache';
import type { FileLexicon } from './lexicalIndex';
import { BM25_PATH_BOOST as PATH_BOOST, bm25, codeTerms } from './select';

export const TREE_INDEX_FORMAT_VERSION = 3;
const MAGIC = 0x54435241; // "ARCT" read as little-endian u32
const HEADER_BYTES = ENTRY_HEADER_BYTES; // magic, version, payload bytes, reserved, key[32], checksum[32]
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

/** A tree's snapshot and inverted index, held in typed arrays (no object per chunk or posting). */
export interface TreeIndexData {
  /** Date.now() when the scan that produced the newest stamps started. */
  takenAtMs: number;
  files: TreeFile[];
  /** CF u32 per chunk (see CF). */
  chunks: Uint32Array;
  /** 32 bytes (sha256 of the rendered chunk) per chunk. */
  hashes: Buffer;
  /** Sorted terms, concatenated (latin1); term i is termBlob[termOff[i], termOff[i+1]). */
  termBlob: Buffer;
  termOff: Uint32Array;
  /** Postings of term i: postings[postOff[i] .. postOff[i+1]) as (chunk, count) pairs. */
  postOff: Uint32Array;
  postings: Uint32Array;
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
export function chunkField(t: TreeIndexData, chunk: number, field: 'startLine' | 'endLine' | 'bodyStart' | 'bodyEnd' | 'tokens' | 'bodyLength' | 'file'): number {
  const at = { startLine: 0, endLine: 1, bodyStart: 2, bodyEnd: 3, tokens: 4, bodyLength: 5, file: 6 }[field];
  return t.chunks[chunk * CF + at];
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
export function buildTreeIndex(sources: readonly TreeSource[], takenAtMs: number): TreeIndexData {
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
        sizes[ids[j]] += lex.postings[j].length;
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
    for (let j = 0; j < nTerms; j++) {
      let kept = 0;
      for (let q = old.postOff[j]; q < old.postOff[j + 1]; q += 2) if (map[old.postings[q]] >= 0) kept += 2;
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
      const p = lex.postings[j];
      for (let q = 0; q < p.length; q += 2) {
        postings[cursor[r]++] = first + p[q];
        postings[cursor[r]++] = p[q + 1];
      }
    }
  }
  for (const [old, map] of oldTrees) {
    const ids = oldIds.get(old) as Int32Array;
    for (let j = 0; j < ids.length; j++) {
      if (ids[j] < 0) continue;
      const r = rankOf[ids[j]];
      for (let q = old.postOff[j]; q < old.postOff[j + 1]; q += 2) {
        const to = map[old.postings[q]];
        if (to < 0) continue;
        postings[cursor[r]++] = to;
        postings[cursor[r]++] = old.postings[q + 1];
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

export function encodeTreeIndex(key: string, t: TreeIndexData): Buffer {
  return Buffer.concat(encodeTreeIndexParts(key, t));
}

/** The entry as consecutive parts (header first), so that a large tree is written without one more copy of it. */
export function encodeTreeIndexParts(key: string, t: TreeIndexData): Buffer[] {
  if (!/^[0-9a-f]{64}$/.test(key)) throw new Error(`Invalid tree index key ${key}`);
  const json = Buffer.from(JSON.stringify({ takenAtMs: t.takenAtMs, files: t.files.map((f) => [f.path, f.size, f.mtimeMs, f.ctimeMs, f.ino, f.textHash, f.firstChunk, f.chunkCount, f.headerTokens]) }), 'utf8');
  const nChunks = chunkCount(t);
  const nTerms = t.termOff.length - 1;
  const parts: Buffer[] = [];
  const u32 = (a: Uint32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const jsonLen = Buffer.alloc(4);
  jsonLen.writeUInt32LE(json.length, 0);
  parts.push(jsonLen, json, Buffer.alloc(align4(json.length) - json.length));
  const counts = Buffer.alloc(28);
  counts.writeUInt32LE(nChunks, 0);
  counts.writeUInt32LE(nTerms, 4);
  counts.writeUInt32LE(t.termBlob.length, 8);
  counts.writeUInt32LE(t.postings.length, 12);
  counts.writeUInt32LE(t.pathTermOff.length - 1, 16);
  counts.writeUInt32LE(t.pathTermBlob.length, 20);
  counts.writeUInt32LE(t.pathPostings.length, 24);
  parts.push(counts, u32(t.chunks), t.hashes, u32(t.termOff), u32(t.postOff), u32(t.postings), u32(t.pathLength), u32(t.pathTermOff), u32(t.pathPostOff), u32(t.pathPostings));
  parts.push(t.termBlob, t.pathTermBlob);
  return [payloadEntryHeader(MAGIC, TREE_INDEX_FORMAT_VERSION, key, parts), ...parts];
}

const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/** Parses and verifies an entry; returns the reason when it must not be served. */
export function decodeTreeIndex(key: string, buf: Buffer): TreeIndexData | string {
  const bad = checkPayloadEntry(buf, key, MAGIC, TREE_INDEX_FORMAT_VERSION);
  if (bad !== null) return bad;
  // Typed-array views need 4-byte alignment; copy the payload when the buffer does not have it.
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
    const raw = JSON.parse(payload.toString('utf8', o, o + jsonLen)) as { takenAtMs?: unknown; files?: unknown };
    o = align4(o + jsonLen);
    need(28);
    const [nChunks, nTerms, blobLen, nPost, nPathTerms, pathBlobLen, nPathPost] = [0, 4, 8, 12, 16, 20, 24].map((d) => payload.readUInt32LE(o + d));
    o += 28;
    const view = (n: number) => {
      need(n * 4);
      const a = new Uint32Array(payload.buffer, payload.byteOffset + o, n);
      o += n * 4;
      return a;
    };
    const chunks = view(nChunks * CF);
    need(nChunks * 32);
    const hashes = payload.subarray(o, o + nChunks * 32);
    o += nChunks * 32;
    const termOff = view(nTerms + 1);
    const postOff = view(nTerms + 1);
    const postings = view(nPost);
    const files0 = Array.isArray(raw.files) ? raw.files.length : 0;
    const pathLength = view(files0);
    const pathTermOff = view(nPathTerms + 1);
    const pathPostOff = view(nPathTerms + 1);
    const pathPostings = view(nPathPost);
    need(blobLen + pathBlobLen);
    const termBlob = payload.subarray(o, o + blobLen);
    o += blobLen;
    const pathTermBlob = payload.subarray(o, o + pathBlobLen);
    o += pathBlobLen;
    if (o !== payload.length) return 'trailing bytes';
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
    if (termOff[nTerms] !== blobLen || postOff[nTerms] !== nPost || nPost % 2 !== 0) return 'term tables mismatch';
    if (pathTermOff[nPathTerms] !== pathBlobLen || pathPostOff[nPathTerms] !== nPathPost || nPathPost % 2 !== 0) return 'path term tables mismatch';
    return { takenAtMs: raw.takenAtMs, files, chunks, hashes, termBlob, termOff, postOff, postings, pathLength, pathTermBlob, pathTermOff, pathPostOff, pathPostings };
  } catch (e) {
    return `unreadable payload (${(e as Error).message})`;
  }
}

/** The stored tree, or null when there is none or it is bad (then logged and deleted). */
export async function loadTreeIndex(cacheDir: string, key: string, log: (line: string) => void): Promise<TreeIndexData | null> {
  if (!LITTLE_ENDIAN) return null; // the tables are stored little-endian and viewed in place
  const file = treeEntryPath(cacheDir, key);
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (e) {
    if (!isErrno(e, 'ENOENT', 'ENOTDIR')) log(`tree index: cannot read ${file}: ${(e as Error).message}; rebuilding`);
    return null;
  }
  const t = decodeTreeIndex(key, buf);
  if (typeof t === 'string') {
    log(`tree index: corrupt entry ${file} (${t}); deleted, will rebuild`);
    await unlink(file).catch(() => {}); // a concurrent writer may already have replaced it
    return null;
  }
  return t;
}

export async function storeTreeIndex(cacheDir: string, key: string, t: TreeIndexData, log: (line: string) => void): Promise<void> {
  if (!LITTLE_ENDIAN) return;
  const file = treeEntryPath(cacheDir, key);
  try {
    await writeStoreEntry(file, encodeTreeIndexParts(key, t));
  } catch (e) {
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
    if (t.termBlob.compare(want, 0, want.length, t.termOff[mid], t.termOff[mid + 1]) > 0) hi = mid;
    else lo = mid + 1;
  }
  const out = new Set<number>();
  for (let j = lo; j < t.termOff.length - 1; j++) {
    const len = t.termOff[j + 1] - t.termOff[j];
    if (len < want.length || t.termBlob.compare(want, 0, want.length, t.termOff[j], t.termOff[j] + want.length) !== 0) break;
    for (let q = t.postOff[j]; q < t.postOff[j + 1]; q += 2) out.add(t.postings[q]);
  }
  return [...out].sort((a, b) => a - b);
}

/** Chunks whose body has `term`, ascending. */
export function chunksWithTerm(t: TreeIndexData, term: string): number[] {
  const j = findTreeTerm(t, term);
  if (j < 0) return [];
  const out: number[] = [];
  for (let q = t.postOff[j]; q < t.postOff[j + 1]; q += 2) out.push(t.postings[q]);
  return out.sort((a, b) => a - b);
}

/**
 * BM25 of every chunk of the tree for the question, normalised so that the best is 1: the
 * numbers bm25Scores gives over the same files' lexicons (and MiniSearch over their chunks).
 * Reads the postings of the question's terms only.
 */
export function treeBm25(t: TreeIndexData, question: string): Float64Array {
  const total = chunkCount(t);
  const out = new Float64Array(total);
  const query = codeTerms(question);
  if (total === 0 || query.length === 0) return out;
  // Running averages in document order, as bm25Scores (and MiniSearch) compute them.
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
  // Typed arrays instead of bm25Scores' maps (a common word has postings in most chunks); the
  // arithmetic per chunk is the same, in the same order.
  const score = new Float64Array(total);
  const termScore = new Float64Array(total);
  const inTerm = new Uint8Array(total);
  const touched = new Uint32Array(total);
  const matchedTerms = new Uint16Array(total);
  const seen = new Map<string, Uint8Array>(); // per distinct query term: chunks it matched
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
      // Files in document order, as bm25Scores visits them.
      for (let q = from; q < to; q += 2) {
        const k = t.pathPostings[q];
        const f = t.files[k];
        const s = PATH_BOOST * bm25(t.pathPostings[q + 1], pathCount, total, t.pathLength[k], avgPath);
        for (let i = 0; i < f.chunkCount; i++) touch(f.firstChunk + i, s);
      }
    }
    const j = findTreeTerm(t, term);
    if (j >= 0) {
      const from = t.postOff[j];
      const to = t.postOff[j + 1];
      const docs = (to - from) / 2;
      for (let q = from; q < to; q += 2) {
        const doc = t.postings[q];
        touch(doc, bm25(t.postings[q + 1], docs, total, t.chunks[doc * CF + 5], avgBody));
      }
    }
    let had = seen.get(term);
    if (!had) seen.set(term, (had = new Uint8Array(total)));
    for (let x = 0; x < n; x++) {
      const doc = touched[x];
      inTerm[doc] = 0;
      if (matchedTerms[doc] === 0) score[doc] = termScore[doc];
      else score[doc] += termScore[doc];
      if (had[doc] === 0) {
        had[doc] = 1;
        matchedTerms[doc]++;
      }
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
 * process wrote since); it is still right, as every file is checked against its stamps.
 */
const memo = new Map<string, TreeIndexData>();
const MEMO_TREES = 2;

function rememberTree(key: string, t: TreeIndexData): void {
  memo.delete(key);
  memo.set(key, t);
  for (const k of memo.keys()) if (memo.size > MEMO_TREES) memo.delete(k);
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
