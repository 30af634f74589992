// Persistent lexical index beside the vector cache and the chunk index: per source file, what
// ranking needs of its chunks (line ranges, body offsets, token counts, hashes, and the body's
// search terms with their counts), so that a warm question ranks the whole tree without
// tokenizing it, without reading any token ids or vectors, and without rebuilding a search index.
//
// Entries are keyed like the chunk index (tokenizer identity, header template, maxChunkTokens,
// display path, start line, sha256 of the text): an edited file misses and is indexed again,
// the others are read as they are. Same robustness rules as cache.ts / chunkIndex.ts: versioned
// folder and header, checksum, temp file + rename (writeStoreEntry), bad entries logged, deleted
// and rebuilt, several processes may share the folder, LRU eviction under a lock (evictStore).
//
// Scoring (bm25Scores) reproduces what select.ts gets from MiniSearch (BM25+, fields path x2 and
// body, codeTerms, OR, score x matched query terms) operation for operation, so both give the
// same numbers; test/unit/pipeline-lexical.test.ts checks that on real files.
import { createHash } from 'node:crypto';
import { readFile, unlink, utimes } from 'node:fs/promises';
import * as path from 'node:path';
import type { TextTokenizer } from '../api';
import { ENTRY_HEADER_BYTES, checkPayloadEntry, entryMayExist, evictStore, InFlight, evictStoreIfGrown, isErrno, listStoreEntries, payloadEntryHeader, writeStoreEntry, type EvictResult, type StoreEntry } from './cache';
import { hashText, type Chunk, type ChunkOptions } from './chunker';
import { streamFileChunks, type ChunkIndex } from './chunkIndex';
import { BM25_PATH_BOOST as PATH_BOOST, bm25, codeTerms } from './select';
import type { SourceFile } from './sources';
import { clearTreeMemo } from './treeIndex';

export const LEXICAL_INDEX_FORMAT_VERSION = 1;
const MAGIC = 0x4c435241; // "ARCL" read as little-endian u32
const HEADER_BYTES = ENTRY_HEADER_BYTES; // magic, version, payload bytes, reserved, key[32], checksum[32]
const ENTRY_EXT = '.arcl';

/** What the index keeps of one chunk. */
export interface ChunkMeta {
  startLine: number;
  endLine: number;
  /** [bodyStart, bodyEnd) in the file text: the body without its final "\n". */
  bodyStart: number;
  bodyEnd: number;
  /** Encoder tokens of the rendered chunk (header + body). */
  tokens: number;
  /** sha256 hex of the rendered chunk (the vector cache's key part). */
  hash: string;
  /** Distinct search terms of the body: its field length for BM25. */
  bodyLength: number;
}

/**
 * One file's entry: its chunks and, per distinct body term (sorted), its postings as (chunk,
 * count) pairs: term i's are postings[postOff[i] .. postOff[i + 1]). Two typed arrays per file,
 * not an array per term: a cold 50 MB tree holds the lexicons of all its files at once while its
 * tree index is built, and a JS array per term was most of that heap.
 */
export interface FileLexicon {
  chunks: ChunkMeta[];
  terms: string[];
  postOff: Uint32Array;
  postings: Uint32Array;
}

/** Flattens per-term (chunk, count) lists, in `terms` order, into a lexicon's two arrays. */
function flatPostings(lists: readonly (readonly number[])[]): { postOff: Uint32Array; postings: Uint32Array } {
  const postOff = new Uint32Array(lists.length + 1);
  for (let i = 0; i < lists.length; i++) postOff[i + 1] = postOff[i] + lists[i].length;
  const postings = new Uint32Array(postOff[lists.length]);
  lists.forEach((l, i) => postings.set(l, postOff[i]));
  return { postOff, postings };
}

/** The index's cap beside a vector cache capped at `cacheMaxBytes`: a sixteenth of it. */
export function lexicalIndexCap(cacheMaxBytes: number): number {
  return Math.max(1024 ** 2, Math.floor(cacheMaxBytes / 16));
}

/** Terms and lengths of one chunk's body, as MiniSearch would index its `body` field. */
function bodyTerms(body: string): { counts: Map<string, number>; length: number } {
  const tokens = codeTerms(body);
  const counts = new Map<string, number>();
  for (const t of tokens) counts.set(t, (counts.get(t) ?? 0) + 1);
  // MiniSearch's field length is the number of distinct tokens before processTerm (identity here).
  return { counts, length: counts.size };
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The entry for `file` split into `chunks` (chunkFile's output for it). */
export function buildLexicon(file: SourceFile, chunks: readonly Chunk[]): FileLexicon {
  const postingsOf = new Map<string, number[]>();
  const metas: ChunkMeta[] = [];
  let cursor = 0;
  chunks.forEach((c, i) => {
    const core = c.body.slice(0, -1);
    const at = file.text.indexOf(core, cursor);
    if (at < 0) throw new Error(`chunk ${c.startLine}-${c.endLine} is not a slice of the file text`);
    cursor = at + core.length;
    const { counts, length } = bodyTerms(c.body);
    for (const [t, n] of counts) {
      const list = postingsOf.get(t);
      if (list) list.push(i, n);
      else postingsOf.set(t, [i, n]);
    }
    metas.push({ startLine: c.startLine, endLine: c.endLine, bodyStart: at, bodyEnd: at + core.length, tokens: c.tokenIds.length, hash: c.hash, bodyLength: length });
  });
  const terms = [...postingsOf.keys()].sort(compareStrings);
  return { chunks: metas, terms, ...flatPostings(terms.map((t) => postingsOf.get(t) as number[])) };
}

/** The Chunk objects the lexicon describes, without token ids (the plan needs only counts). */
export function bodyOf(file: SourceFile, meta: ChunkMeta): string {
  return `${file.text.slice(meta.bodyStart, meta.bodyEnd)}\n`;
}

export function encodeLexiconEntry(key: string, lex: FileLexicon): Buffer {
  if (!/^[0-9a-f]{64}$/.test(key)) throw new Error(`Invalid lexical index key ${key}`);
  const chunks = lex.chunks.map((c) => [c.startLine, c.endLine, c.bodyStart, c.bodyEnd, c.tokens, c.hash, c.bodyLength]);
  // On disk each term's pairs stay a JSON array (format 1).
  const postings = lex.terms.map((_, i) => Array.from(lex.postings.subarray(lex.postOff[i], lex.postOff[i + 1])));
  const payload = Buffer.from(JSON.stringify({ chunks, terms: lex.terms, postings }), 'utf8');
  return Buffer.concat([payloadEntryHeader(MAGIC, LEXICAL_INDEX_FORMAT_VERSION, key, [payload]), payload]);
}

const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/** Parses and verifies an entry against the file it names; returns the reason when it must not be served. */
export function decodeLexiconEntry(key: string, buf: Buffer, file: SourceFile): FileLexicon | string {
  const bad = checkPayloadEntry(buf, key, MAGIC, LEXICAL_INDEX_FORMAT_VERSION);
  if (bad !== null) return bad;
  let raw: { chunks?: unknown; terms?: unknown; postings?: unknown };
  try {
    raw = JSON.parse(buf.toString('utf8', HEADER_BYTES)) as typeof raw;
  } catch (e) {
    return `unreadable payload (${(e as Error).message})`;
  }
  if (!Array.isArray(raw.chunks) || !Array.isArray(raw.terms) || !Array.isArray(raw.postings) || raw.terms.length !== raw.postings.length) return 'malformed payload';
  const chunks: ChunkMeta[] = [];
  for (const c of raw.chunks as unknown[]) {
    if (!Array.isArray(c) || c.length !== 7) return 'malformed chunk';
    const [startLine, endLine, bodyStart, bodyEnd, tokens, hash, bodyLength] = c as unknown[];
    if (![startLine, endLine, bodyStart, bodyEnd, tokens, bodyLength].every(isUint) || typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)) return 'malformed chunk';
    if ((bodyStart as number) > (bodyEnd as number) || (bodyEnd as number) > file.text.length) return 'chunk out of range';
    chunks.push({ startLine, endLine, bodyStart, bodyEnd, tokens, hash, bodyLength } as ChunkMeta);
  }
  const lists = raw.postings as unknown[];
  for (const l of lists) {
    if (!Array.isArray(l) || l.length % 2 !== 0) return 'malformed postings';
    for (let j = 0; j < l.length; j += 2) {
      if (!isUint(l[j]) || !isUint(l[j + 1]) || (l[j] as number) >= chunks.length) return 'malformed postings';
    }
  }
  if (!(raw.terms as unknown[]).every((t) => typeof t === 'string')) return 'malformed terms';
  return { chunks, terms: raw.terms as string[], ...flatPostings(lists as number[][]) };
}

export interface LexicalIndexOptions {
  maxBytes?: number;
  log?: (line: string) => void;
}

/**
 * Entries read or built in this process, by key (the extension asks many questions of one tree),
 * with their entry sizes: the memo holds at most MEMO_MAX_BYTES of entries (a 20 MB tree's worth)
 * so that a very large tree does not keep them all in memory.
 */
const memo = new Map<string, { lex: FileLexicon; bytes: number }>();
const MEMO_MAX_BYTES = 24 * 1024 ** 2;
let memoBytes = 0;
/** Entry reads in flight at once. */
const READ_CONCURRENCY = 16;
/**
 * Characters of text to index from which lexiconsFor tokenizes in a worker thread (its start, with
 * its own tokenizer, costs about a tenth of a second; about 1 MB of code takes longer to tokenize).
 */
export const LEXICON_WORKER_FROM_CHARS = 1_000_000;

export class LexicalIndex {
  readonly root: string;
  readonly maxBytes: number;
  private readonly log: (line: string) => void;
  private written = 0;

  /** `cacheDir` is the vector cache's folder; `identity` the chunk index's (chunkIndexIdentity). */
  constructor(cacheDir: string, readonly identity: string, opts: LexicalIndexOptions = {}) {
    this.root = path.join(cacheDir, 'lexical', `v${LEXICAL_INDEX_FORMAT_VERSION}`);
    this.maxBytes = opts.maxBytes ?? lexicalIndexCap(2 * 1024 ** 3);
    this.log = opts.log ?? (() => {});
  }

  /** `textHash` is sha256 hex of file.text (hashText), passed in because the caller has it. */
  key(file: SourceFile, opts: ChunkOptions, textHash: string): string {
    const fields = [LEXICAL_INDEX_FORMAT_VERSION, this.identity, opts.header, opts.maxTokens, file.path, file.startLine, textHash];
    return createHash('sha256').update(`arc-lexicon\n${JSON.stringify(fields)}`).digest('hex');
  }

  entryPath(key: string): string {
    return path.join(this.root, key.slice(0, 2), key + ENTRY_EXT);
  }

  /** The entry, from this process's memo or the disk; null on a miss or a bad entry (deleted). */
  async get(key: string, file: SourceFile): Promise<FileLexicon | null> {
    const hit = memo.get(key);
    if (hit) {
      remember(key, hit.lex, hit.bytes); // most recently used
      return hit.lex;
    }
    const entry = this.entryPath(key);
    // A missing entry (every file of a cold tree) is told by one quick stat, not a read through
    // libuv's pool.
    if (!entryMayExist(entry)) return null;
    let buf: Buffer;
    try {
      buf = await readFile(entry);
    } catch (e) {
      if (!isErrno(e, 'ENOENT', 'ENOTDIR')) this.log(`lexical index: cannot read ${entry}: ${(e as Error).message}; re-indexing`);
      return null;
    }
    const lex = decodeLexiconEntry(key, buf, file);
    if (typeof lex === 'string') {
      this.log(`lexical index: corrupt entry ${entry} for ${file.path} (${lex}); deleted, will re-index`);
      await unlink(entry).catch(() => {}); // a concurrent writer may already have replaced it
      return null;
    }
    // Recency for eviction; nothing waits for it.
    const now = new Date();
    void utimes(entry, now, now).catch(() => {});
    remember(key, lex, buf.length);
    return lex;
  }

  async put(key: string, file: SourceFile, lex: FileLexicon): Promise<void> {
    const entry = this.entryPath(key);
    try {
      const buf = encodeLexiconEntry(key, lex);
      remember(key, lex, buf.length);
      await writeStoreEntry(entry, buf);
      this.written += buf.length;
    } catch (e) {
      // The index only saves time: a failed write must not fail the question.
      this.log(`lexical index: could not store ${entry} for ${file.path}: ${(e as Error).message}`);
    }
  }

  async evictIfGrown(): Promise<void> {
    const written = this.written;
    this.written = 0;
    await evictStoreIfGrown(this.root, ENTRY_EXT, this.maxBytes, written, (line) => this.log(`lexical index: ${line}`));
  }

  evict(): Promise<EvictResult> {
    return evictStore(this.root, ENTRY_EXT, this.maxBytes, (line) => this.log(`lexical index: ${line}`));
  }

  listEntries(): Promise<StoreEntry[]> {
    return listStoreEntries(this.root, ENTRY_EXT);
  }
}

function remember(key: string, lex: FileLexicon, bytes: number): void {
  const old = memo.get(key);
  if (old) {
    memo.delete(key);
    memoBytes -= old.bytes;
  }
  memo.set(key, { lex, bytes });
  memoBytes += bytes;
  // Map order is recency order: drop the least recently used.
  for (const [k, v] of memo) {
    if (memoBytes <= MEMO_MAX_BYTES || k === key) break;
    memo.delete(k);
    memoBytes -= v.bytes;
  }
}

/** Forgets this process's entries (tests and the benchmark use it to act as a new process). */
export function clearLexiconMemo(): void {
  clearTreeMemo();
  memo.clear();
  memoBytes = 0;
}

function findTerm(terms: readonly string[], t: string): number {
  let lo = 0;
  let hi = terms.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const c = compareStrings(terms[mid], t);
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** A file's entry in document order, with its display path (the `path` field of its chunks). */
export interface LexicalFile {
  path: string;
  lexicon: FileLexicon;
}

/**
 * BM25 of every chunk (files in order, chunks in order) for the question, normalised so that
 * the best is 1: the numbers select.ts's scoreChunks gets from MiniSearch over the same chunks.
 */
export function bm25Scores(files: readonly LexicalFile[], question: string): Float64Array {
  const total = files.reduce((n, f) => n + f.lexicon.chunks.length, 0);
  const out = new Float64Array(total);
  const query = codeTerms(question);
  if (total === 0 || query.length === 0) return out;
  // Field lengths and their running averages, in MiniSearch's order (one document at a time).
  const pathTf = files.map((f) => {
    const counts = new Map<string, number>();
    for (const t of codeTerms(f.path)) counts.set(t, (counts.get(t) ?? 0) + 1);
    return counts;
  });
  let avgPath = 0;
  let avgBody = 0;
  let count = 0;
  files.forEach((f, k) => {
    for (const c of f.lexicon.chunks) {
      avgPath = (avgPath * count + pathTf[k].size) / (count + 1);
      avgBody = (avgBody * count + c.bodyLength) / (count + 1);
      count++;
    }
  });
  const score = new Float64Array(total);
  const matched = new Map<number, Set<string>>();
  for (const term of query) {
    // Postings of this term in each field, then MiniSearch's per-term sum (path, then body).
    const pathDocs: number[] = [];
    const bodyDocs: number[] = [];
    const bodyTf: number[] = [];
    let base = 0;
    files.forEach((f, k) => {
      const n = f.lexicon.chunks.length;
      const ptf = pathTf[k].get(term);
      if (ptf !== undefined) for (let i = 0; i < n; i++) pathDocs.push(base + i);
      const at = findTerm(f.lexicon.terms, term);
      if (at >= 0) {
        const p = f.lexicon.postings;
        for (let j = f.lexicon.postOff[at]; j < f.lexicon.postOff[at + 1]; j += 2) {
          bodyDocs.push(base + p[j]);
          bodyTf.push(p[j + 1]);
        }
      }
      base += n;
    });
    const termScore = new Map<number, number>();
    if (pathDocs.length > 0) {
      let b2 = 0;
      let fileIdx = 0;
      for (const doc of pathDocs) {
        while (doc >= b2 + files[fileIdx].lexicon.chunks.length) b2 += files[fileIdx++].lexicon.chunks.length;
        const tf = pathTf[fileIdx].get(term) as number;
        termScore.set(doc, PATH_BOOST * bm25(tf, pathDocs.length, total, pathTf[fileIdx].size, avgPath));
      }
    }
    if (bodyDocs.length > 0) {
      let b2 = 0;
      let fileIdx = 0;
      bodyDocs.forEach((doc, j) => {
        while (doc >= b2 + files[fileIdx].lexicon.chunks.length) b2 += files[fileIdx++].lexicon.chunks.length;
        const s = bm25(bodyTf[j], bodyDocs.length, total, files[fileIdx].lexicon.chunks[doc - b2].bodyLength, avgBody);
        const prev = termScore.get(doc);
        termScore.set(doc, prev === undefined ? s : prev + s);
      });
    }
    for (const [doc, s] of termScore) {
      let terms = matched.get(doc);
      if (!terms) {
        matched.set(doc, (terms = new Set()));
        score[doc] = s;
      } else score[doc] += s;
      terms.add(term);
    }
  }
  let max = 0;
  for (const [doc, terms] of matched) {
    score[doc] *= terms.size;
    max = Math.max(max, score[doc]);
  }
  if (max > 0) for (const doc of matched.keys()) out[doc] = score[doc] / max;
  return out;
}

export interface IndexedLexicons {
  /** One per input file, same order. */
  files: LexicalFile[];
  /** Files served from this process's memo or the on-disk index, or indexed now (chunked as needed). */
  fromIndex: number;
  indexed: number;
}

/**
 * Every file's entry: from the lexical index when the file is unchanged (no tokenizing, no chunk
 * index read), else its chunks (memo, chunk index or tokenizer) are indexed and stored. When the
 * text to index is large (a cold tree) a worker thread tokenizes while this thread builds and
 * writes the entries, and the chunk index is neither read nor written (see below).
 * Stops between files when `signal` fires (the caller checks it and reports the cancellation).
 */
export async function lexiconsFor(
  files: readonly SourceFile[],
  tokenizer: TextTokenizer,
  opts: ChunkOptions,
  chunkIndex: ChunkIndex | null,
  index: LexicalIndex,
  signal?: AbortSignal,
  /** Characters to index from which a worker thread tokenizes (tests lower it). */
  workerFromChars = LEXICON_WORKER_FROM_CHARS,
): Promise<IndexedLexicons> {
  const res: IndexedLexicons = { files: [], fromIndex: 0, indexed: 0 };
  const out = new Array<LexicalFile>(files.length);
  // Most terms recur across files (keywords, common names): one string each while these lexicons
  // are held together, not one per file (a fifth of a cold tree's heap otherwise).
  const canonical = new Map<string, string>();
  const intern = (lex: FileLexicon): void => {
    const terms = lex.terms;
    for (let i = 0; i < terms.length; i++) {
      const c = canonical.get(terms[i]);
      if (c === undefined) canonical.set(terms[i], terms[i]);
      else terms[i] = c;
    }
  };
  // The lexical index first; reads overlap (libuv's pool does the file work).
  const keys = new Array<string>(files.length);
  const missing: number[] = [];
  let next = 0;
  const reader = async (): Promise<void> => {
    while (next < files.length && !signal?.aborted) {
      const k = next++;
      const f = files[k];
      keys[k] = index.key(f, opts, hashText(f.text));
      const lexicon = await index.get(keys[k], f);
      if (!lexicon) {
        missing.push(k);
        continue;
      }
      res.fromIndex++;
      intern(lexicon);
      out[k] = { path: f.path, lexicon };
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, files.length) }, reader));
  // The rest is chunked (chunk index, else the tokenizer), indexed and stored, in file order. A
  // cold tree is tokenized by a worker thread while this one builds and writes the entries
  // (streamFileChunks); a few changed files are not worth starting one.
  missing.sort((x, y) => x - y);
  let chars = 0;
  for (const k of missing) chars += files[k].text.length;
  const large = chars >= workerFromChars;
  const writes = new InFlight(READ_CONCURRENCY);
  let m = 0;
  for await (const fc of streamFileChunks(
    missing.map((k) => files[k]),
    tokenizer,
    opts,
    // A cold tree's chunks are not stored in the chunk index here: its lexicons are what a
    // question needs, and whole-tree compression tokenizes beside the encoder, which it waits on.
    large ? { index: null, signal, workers: 1 } : { index: chunkIndex, signal, workers: 0 },
  )) {
    const k = missing[m++];
    const lexicon = buildLexicon(fc.file, fc.chunks);
    // Entry writes overlap too, a bounded number at a time (put logs a failed write, never throws).
    await writes.add(index.put(keys[k], fc.file, lexicon));
    res.indexed++;
    intern(lexicon);
    out[k] = { path: fc.file.path, lexicon };
  }
  await writes.settled();
  res.files = signal?.aborted ? out.filter((x) => x !== undefined) : out;
  if (chunkIndex) await chunkIndex.evictIfGrown();
  await index.evictIfGrown();
  return res;
}
