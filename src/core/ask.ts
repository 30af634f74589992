// The ask() pipeline: sources -> chunks (token counts and search terms, from the lexical index
// when the files are unchanged) -> plan (which chunks, as text or compressed) -> the chosen
// chunks only: (cache) -> compressed vectors / token ids -> decoder prefix -> streamed answer.
// Selection needs no vectors: a chunk's vector count follows from its token count (the group
// rule, encoder.ts groupSizes), so only what the window holds is read or encoded. Each stage is
// a function below; askImpl is the thin loop that runs them and yields their events. It never
// throws: failures end the stream with an `error` event carrying an ArcErrorCode.
import type { AnswerMode, AskFn, AskOptions, ArcModel, CompressedChunk, GenerationTimings } from './api';
import type { ArcErrorCode, AskEvent, AskRequest, AskStats, Citation, FileCompression } from './types';
import { VectorCache } from './context/cache';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { hashText, renderHeader, type Chunk, type ChunkOptions } from './context/chunker';
import { chunkFileIndexed, openChunkIndex, type ChunkIndex } from './context/chunkIndex';
import { compressChunks } from './context/compress';
import { bm25Scores, bodyOf, LexicalIndex, lexicalIndexCap, lexiconsFor, type FileLexicon } from './context/lexicalIndex';
import { planArc, planFull, planInOrder, planMixed, type ContextPlan } from './context/plan';
import { boostScores, questionBoosts, quotedIdentifiers, rankChunks, rankOrder } from './context/select';
import { classifyContent, collectSources, CONTENT_SKIPS, DEFAULT_MAX_FILE_BYTES, type CollectResult, type SkipReport, type SourceFile, type UnreadFile } from './context/sources';
import type { SkipReason } from './types';
import type { TreeWatch, WatchTicket } from './context/treeWatch';
import { buildTreeIndex, chunkColumn, chunkField, chunkHash, chunksWithPrefix, chunksWithTerm, loadTree, storeTree, treeBm25, treeFileIndex, treeKey, TreeIndexCorrupt, unchangedSince, type TreeIndexData, type TreeSource } from './context/treeIndex';
import { groupSizes } from './encoder';
import { ArcError, errorMessage, throwIfAborted } from './errors';
import { buildPrefix, chunkHeader, compressedCoster, contextBudget, contextOrder, decoderTokenizer, mixedTextBudget, quotableChunks, type BuiltPrefix, type PlacedChunk } from './prompt';

export type { AskOptions };

const ERROR_CODES: ReadonlySet<string> = new Set<ArcErrorCode>([
  'model-missing',
  'model-corrupt',
  'provider-unavailable',
  'no-sources',
  'empty-question',
  'cancelled',
  'context-too-large',
  'decoder-server',
  'internal',
]);

/** Maps anything thrown to an error event; core errors (ArcError) carry their own code. */
export function toErrorEvent(e: unknown, signal?: AbortSignal): Extract<AskEvent, { type: 'error' }> {
  if (signal?.aborted || (e instanceof Error && e.name === 'AbortError')) {
    return { type: 'error', code: 'cancelled', message: 'The request was cancelled.' };
  }
  const code = typeof e === 'object' && e !== null ? (e as { code?: unknown }).code : undefined;
  const message = errorMessage(e);
  if (typeof code === 'string' && ERROR_CODES.has(code)) return { type: 'error', code: code as ArcErrorCode, message };
  return { type: 'error', code: 'internal', message: `Internal error: ${message}` };
}

function emptyStats(mode: AskRequest['mode'], provider: string): AskStats {
  return {
    mode,
    provider,
    sourceTokens: 0,
    textTokens: 0,
    compressedVectors: 0,
    contextPositions: 0,
    ratio: 0,
    encodeMs: 0,
    prefillMs: 0,
    ttftMs: 0,
    totalMs: 0,
    tokensPerSecond: 0,
    generatedTokens: 0,
    cacheHits: 0,
    cacheMisses: 0,
    chunksIncluded: 0,
    textChunks: 0,
    compressedChunks: 0,
    chunksLeftOut: 0,
    truncatedTokens: 0,
  };
}

/** Adjacent chunks of one file become one citation (a file split in three reads as one range). */
export function mergeCitations(chunks: readonly Pick<Chunk, 'path' | 'absPath' | 'startLine' | 'endLine'>[]): Citation[] {
  return mergeRanges(chunks.length, (k) => chunks[k]);
}

/** mergeCitations over `n` ranges in document order, read one at a time through `at`. */
function mergeRanges(n: number, at: (k: number) => Pick<Chunk, 'path' | 'absPath' | 'startLine' | 'endLine'>): Citation[] {
  const out: Citation[] = [];
  for (let k = 0; k < n; k++) {
    const c = at(k);
    const last = out[out.length - 1];
    if (last && last.path === c.path && c.startLine <= last.endLine + 1 && c.endLine >= last.startLine) {
      last.endLine = Math.max(last.endLine, c.endLine);
      continue;
    }
    const r: Citation = { path: c.path, startLine: c.startLine, endLine: c.endLine };
    if (c.absPath) r.absPath = c.absPath;
    out.push(r);
  }
  return out;
}

function describeSkips(skipped: SkipReport): string {
  const parts = Object.entries(skipped.counts).map(([reason, n]) => `${n} ${reason}`);
  return parts.length > 0 ? ` (skipped: ${parts.join(', ')})` : '';
}

type ContextMode = Exclude<AnswerMode, 'none'>;

/** A chunk as planning sees it: everything but its token ids, and their count. */
export type ChunkRef = Omit<Chunk, 'tokenIds'> & { tokens: number; file: number };

/**
 * A question's chunks in document order, by index: dense columns of what planning and reporting
 * read over every chunk, and a ChunkRef object only for the chunks asked for (a tree of 10^5
 * chunks makes objects for the few dozen that come near the window, not for every chunk).
 */
interface ChunkRefs {
  readonly length: number;
  at(i: number): ChunkRef;
  /** Per chunk: its token count, its document (ChunkRef.file), its line range. */
  readonly tokens: Uint32Array;
  readonly file: Uint32Array;
  readonly startLine: Uint32Array;
  readonly endLine: Uint32Array;
  /** Per document: the display path and absolute path its chunks carry. */
  docPath(k: number): string;
  docAbsPath(k: number): string | undefined;
  /** Tokens of document k's rendered header when a tree snapshot knows them (else undefined, or -1). */
  docHeaderTokens(k: number): number | undefined;
}

/** ChunkRefs over objects made anyway (no tree snapshot). */
class ArrayRefs implements ChunkRefs {
  readonly tokens: Uint32Array;
  readonly file: Uint32Array;
  readonly startLine: Uint32Array;
  readonly endLine: Uint32Array;
  private readonly firstOf = new Map<number, number>();
  constructor(readonly list: ChunkRef[]) {
    this.tokens = Uint32Array.from(list, (r) => r.tokens);
    this.file = Uint32Array.from(list, (r) => r.file);
    this.startLine = Uint32Array.from(list, (r) => r.startLine);
    this.endLine = Uint32Array.from(list, (r) => r.endLine);
    list.forEach((r, i) => {
      if (!this.firstOf.has(r.file)) this.firstOf.set(r.file, i);
    });
  }
  get length(): number {
    return this.list.length;
  }
  at(i: number): ChunkRef {
    return this.list[i];
  }
  docPath(k: number): string {
    return this.list[this.firstOf.get(k) as number].path;
  }
  docAbsPath(k: number): string | undefined {
    return this.list[this.firstOf.get(k) as number].absPath;
  }
  docHeaderTokens(): undefined {
    return undefined; // no tree snapshot: headers are tokenized when costed
  }
}

/** What a tree's chunks share per file. */
interface TreeDoc {
  path: string;
  absPath: string | undefined;
  origin: SourceFile['origin'];
  headerTokens: number;
}

/** ChunkRefs over a tree snapshot's chunk table; TreeRef objects on demand. */
class TreeRefs implements ChunkRefs {
  private readonly made = new Map<number, TreeRef>();
  private readonly headers = new Map<number, string>();
  readonly tokens: Uint32Array;
  readonly file: Uint32Array;
  readonly startLine: Uint32Array;
  readonly endLine: Uint32Array;
  constructor(
    private readonly tree: TreeIndexData,
    private readonly docs: readonly TreeDoc[],
    private readonly texts: DocTexts,
    private readonly header: (path: string) => string,
  ) {
    this.tokens = chunkColumn(tree, 'tokens');
    this.file = chunkColumn(tree, 'file');
    this.startLine = chunkColumn(tree, 'startLine');
    this.endLine = chunkColumn(tree, 'endLine');
  }
  get length(): number {
    return this.tokens.length;
  }
  at(i: number): ChunkRef {
    let r = this.made.get(i);
    if (!r) {
      const k = this.file[i];
      const d = this.docs[k];
      let h = this.headers.get(k);
      if (h === undefined) this.headers.set(k, (h = this.header(d.path)));
      r = new TreeRef(d.path, d.absPath, d.origin, this.startLine[i], this.endLine[i], this.tokens[i], k, i, this.tree, this.texts, h);
      this.made.set(i, r);
    }
    return r;
  }
  docPath(k: number): string {
    return this.docs[k].path;
  }
  docAbsPath(k: number): string | undefined {
    return this.docs[k].absPath;
  }
  docHeaderTokens(k: number): number | undefined {
    return this.docs[k].headerTokens;
  }
}

/** The forms a mode reads the chosen chunks in; entries only for chosen chunks (sparse). */
interface Materialized {
  /** Encoder output (arc, mixed). */
  compressed: CompressedChunk[] | null;
  /** Decoder token ids of each rendered chunk (full, mixed). */
  plainIds: number[][] | null;
  /** Extractive decoding only: the text of every chosen chunk (header and body; a cut chunk's kept part). */
  spanText: string | null;
}

/** What gatherChunks found: chunk refs in document order and what ranking and loading need. */
interface Gathered {
  /** Number of documents (files, selections) the refs point into (ChunkRef.file). */
  docCount: number;
  /** Document `k` with its text (read now when a tree snapshot vouched for it unread). */
  sourceFile: (k: number) => Promise<SourceFile>;
  refs: ChunkRefs;
  /** Every index best first (select.ts rankOrder / rankChunks), computed on first use. */
  ranked: () => Iterable<number>;
  /** All chunks with token ids, when they were made anyway (no cache folder); else loaded on demand. */
  full: Chunk[] | null;
  chunkIndex: ChunkIndex | null;
  chunkOpts: ChunkOptions;
  /** Makes every document's text available to the refs' `body` / `text` (only ranking by text needs them all). */
  loadAllTexts: () => Promise<void>;
}

/** Vectors the encoder makes for a chunk of `tokens` tokens (the group rule; BOS counts when added). */
export function predictedVectors(model: ArcModel, tokens: number): number {
  return groupSizes(tokens + (model.manifest.encoder.addBos ? 1 : 0), model.encoder.poolingFactor).length;
}

/** A document of the question: read now (text known) or vouched for by the tree snapshot (read on demand). */
type Doc = { file: SourceFile } | { unread: UnreadFile; textHash: string };

/**
 * The documents' texts, read on demand for documents the snapshot vouched for: a read text must
 * still hash as the snapshot says (the file may change while the question runs).
 */
class DocTexts {
  private readonly texts = new Map<number, string>();
  constructor(readonly docs: readonly Doc[]) {}
  async load(ks: Iterable<number>): Promise<void> {
    const want = [...new Set(ks)].filter((k) => !this.texts.has(k) && 'unread' in this.docs[k]);
    for (let at = 0; at < want.length; at += 32) {
      await Promise.all(
        want.slice(at, at + 32).map(async (k) => {
          const d = this.docs[k] as Extract<Doc, { unread: UnreadFile }>;
          const buf = await readFile(d.unread.absPath).catch(() => null);
          const v = buf === null ? null : classifyContent(d.unread.path, buf);
          if (!v || !v.ok || hashText(v.text) !== d.textHash) throw new Error(`${d.unread.path} changed while the question was being answered; ask again.`);
          this.texts.set(k, v.text);
        }),
      );
    }
  }
  text(k: number): string {
    const d = this.docs[k];
    if ('file' in d) return d.file.text;
    const t = this.texts.get(k);
    if (t === undefined) throw new Error(`internal: the text of ${d.unread.path} was not loaded`);
    return t;
  }
  async sourceFile(k: number): Promise<SourceFile> {
    const d = this.docs[k];
    if ('file' in d) return d.file;
    await this.load([k]);
    return { path: d.unread.path, absPath: d.unread.absPath, text: this.text(k), startLine: 1, origin: 'workspace' };
  }
}

/** A chunk of the tree index; its hash, body and text are read from the index and the file only when asked for. */
class TreeRef {
  constructor(
    readonly path: string,
    readonly absPath: string | undefined,
    readonly origin: SourceFile['origin'],
    readonly startLine: number,
    readonly endLine: number,
    readonly tokens: number,
    readonly file: number,
    private readonly chunk: number,
    private readonly tree: TreeIndexData,
    private readonly texts: DocTexts,
    private readonly header: string,
  ) {}
  get hash(): string {
    return chunkHash(this.tree, this.chunk);
  }
  get body(): string {
    const text = this.texts.text(this.file);
    return `${text.slice(chunkField(this.tree, this.chunk, 'bodyStart'), chunkField(this.tree, this.chunk, 'bodyEnd'))}\n`;
  }
  get text(): string {
    return this.header + this.body;
  }
}

/**
 * Chunks that can match the identifier boosts of `question` (select.ts boostScores): every whole
 * word of a quoted identifier must be among the chunk body's search terms (the mention and
 * definition patterns need the identifier bounded by non-identifier characters). The one
 * exception: the definition pattern ends at a regex word boundary (\b), which `$` does not stop,
 * so the last word may also be the start of a body word that goes on with `$`. null: any chunk
 * may (an identifier without word characters).
 */
export function boostCandidates(tree: TreeIndexData, question: string): Set<number> | null {
  const out = new Set<number>();
  for (const ident of quotedIdentifiers(question)) {
    const words = (ident.match(/[A-Za-z0-9_$]+/g) ?? []).map((w) => w.toLowerCase());
    if (words.length === 0) return null;
    let common: number[] | null = null;
    for (const [n, w] of words.entries()) {
      const list = n === words.length - 1 ? [...new Set([...chunksWithTerm(tree, w), ...chunksWithPrefix(tree, `${w}$`)])] : chunksWithTerm(tree, w);
      if (common === null) common = list;
      else {
        const has = new Set(list);
        common = common.filter((c) => has.has(c));
      }
    }
    for (const c of common ?? []) out.add(c);
  }
  return out;
}

/** What a long-lived host's TreeWatch keeps of a scan that found the stored tree unchanged. */
interface ScanMemo {
  old: TreeIndexData;
  collected: CollectResult;
}

/** AskRequest.rankAs as a lookup: a file of origin `workspace` ranks with the origin named for its path (the last entry for a path wins). */
function rankedOrigin(request: AskRequest): (shown: string, origin: SourceFile['origin']) => SourceFile['origin'] {
  const as = new Map((request.rankAs ?? []).map((r) => [r.path, r.origin]));
  return (shown, origin) => (origin === 'workspace' ? (as.get(shown) ?? origin) : origin);
}

/**
 * Stages 1-2: sources, then chunks sized for the encoder (every mode uses them, so citations
 * agree). With a cache folder, a tree snapshot (treeIndex.ts) vouches for unchanged files by
 * their stat alone (they are not read), changed files come from the lexical index or are chunked
 * through the chunk index and indexed, and ranking reads the postings of the question's terms.
 */
async function* gatherChunks(model: ArcModel, request: AskRequest, options: AskOptions, question: string): AsyncGenerator<AskEvent, Gathered> {
  const { signal } = options;
  const indexLog: string[] = [];
  const log = (line: string) => {
    indexLog.push(line);
    options.log?.(line);
  };
  const chunkIndex = await openChunkIndex(model, options.cacheDir, { cacheMaxBytes: options.cacheMaxBytes, log });
  const chunkOpts: ChunkOptions = { maxTokens: model.encoder.maxChunkTokens, header: model.manifest.documentFormat.header };
  const useTree = chunkIndex !== null && !!options.cacheDir;
  const roots = request.roots ?? [];
  const originOf = rankedOrigin(request);
  const maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  // The snapshot is of the scanned roots; files given by the caller are never stored in it.
  const key = useTree && roots.length > 0 ? treeKey((chunkIndex as ChunkIndex).identity, chunkOpts, { roots: roots.map((r) => path.resolve(r)), include: request.include, exclude: request.exclude, maxFileBytes }) : null;
  const old = key ? await loadTree(options.cacheDir as string, key, log) : null;
  const oldAt = old ? treeFileIndex(old) : null;
  const oldSkips = old?.skipped?.length ? new Map(old.skipped.map((f) => [f.path, f])) : null;
  const scanStart = Date.now();
  // A long-lived host's watcher may vouch that nothing under the roots changed since the last
  // question's scan found the stored tree unchanged: that scan is reused (treeWatch.ts).
  const watch = key !== null && old && !(request.sources?.length) ? (options.watch as TreeWatch<ScanMemo> | undefined) : undefined;
  const memo = watch?.recall(key as string);
  let collected: CollectResult;
  let ticket: WatchTicket | null = null;
  if (memo && memo.old === old) {
    collected = memo.collected;
    yield { type: 'progress', stage: 'scan', message: 'Nothing changed under the folders since the last question (watched): the last scan is reused' };
  } else {
    ticket = watch?.ticket(roots) ?? null;
    yield { type: 'progress', stage: 'scan', message: 'Looking for source files' };
    collected = await collectSources({
      roots: request.roots,
      sources: request.sources,
      include: request.include,
      exclude: request.exclude,
      maxFileBytes: options.maxFileBytes,
      signal,
      unchanged:
        old && oldAt
          ? (shown, stamp) => {
              const i = oldAt.get(shown);
              return i !== undefined && unchangedSince(old.files[i], stamp, old.takenAtMs);
            }
          : undefined,
      knownSkip:
        old && oldSkips
          ? (shown, stamp) => {
              const f = oldSkips.get(shown);
              return f !== undefined && CONTENT_SKIPS.has(f.reason as SkipReason) && unchangedSince(f, stamp, old.takenAtMs) ? (f.reason as SkipReason) : null;
            }
          : undefined,
    });
  }
  const found = collected.files.length + collected.unread.length;
  yield { type: 'progress', stage: 'scan', message: `Scanned ${collected.scanned} files, ${found} usable${collected.unread.length > 0 ? ` (${collected.unread.length} unchanged, not read)` : ''}`, done: collected.scanned, total: collected.scanned };
  if (Object.keys(collected.skipped.counts).length > 0) yield { type: 'skipped', ...collected.skipped };
  const where = roots.length > 0 ? ` in ${roots.join(', ')}` : '';
  if (found === 0) {
    throw new ArcError('no-sources', `No readable text files to answer from${where}${describeSkips(collected.skipped)}. Open a folder with source code or add files to the question.`);
  }
  let refs: ChunkRefs;
  let ranked: () => Iterable<number>;
  let full: Chunk[] | null = null;
  let message: string;
  let docs: Doc[];
  let texts: DocTexts;
  if (useTree && key !== null) {
    // Documents in path order (then start line), as collectSources orders its files.
    docs = [];
    {
      const a = collected.files;
      const b = collected.unread;
      let i = 0;
      let j = 0;
      while (i < a.length || j < b.length) {
        if (j >= b.length || (i < a.length && (a[i].path < b[j].path || (a[i].path === b[j].path && a[i].startLine <= 1)))) docs.push({ file: a[i++] });
        else {
          const u = b[j++];
          docs.push({ unread: u, textHash: (old as TreeIndexData).files[(oldAt as Map<string, number>).get(u.path) as number].textHash });
        }
      }
    }
    texts = new DocTexts(docs);
    const lexical = new LexicalIndex(options.cacheDir as string, (chunkIndex as ChunkIndex).identity, { maxBytes: options.cacheMaxBytes !== undefined ? lexicalIndexCap(options.cacheMaxBytes) : undefined, log });
    let tree: TreeIndexData;
    let fromIndex = collected.unread.length;
    if (old && collected.files.length === 0 && collected.unread.length === old.files.length && collected.contentSkipsRead === 0) {
      tree = old; // nothing changed, added or removed (and no left-out file was read): the stored tree as it is
      // Taken before the scan began: if no event follows, the next question may skip the scan.
      if (watch && ticket) watch.remember(key, ticket, { old, collected });
    } else {
      watch?.forget(key);
      const r = await lexiconsFor(collected.files, model.tokenizer, chunkOpts, chunkIndex, lexical, signal);
      throwIfAborted(signal, 'Indexing files');
      fromIndex += r.fromIndex;
      const lexOf = new Map(collected.files.map((f, k) => [f, r.files[k].lexicon]));
      const NO_STAMP = { size: 0, mtimeMs: 0, ctimeMs: 0, ino: 0 };
      // Header tokens with the tree's (encoder) tokenizer, stored so warm questions need not tokenize them.
      const headerTokens = (p: string) => model.tokenizer.encode(chunkHeader(model.manifest.documentFormat, p)).length;
      const sources: TreeSource[] = [];
      let storable = true;
      for (const d of docs) {
        if ('unread' in d) sources.push({ path: d.unread.path, stamp: d.unread.stamp, textHash: d.textHash, from: old as TreeIndexData, fileIdx: (oldAt as Map<string, number>).get(d.unread.path) as number });
        else {
          const f = d.file;
          const own = f.stamp !== undefined && f.origin === 'workspace' && f.startLine === 1;
          if (!own) storable = false;
          sources.push({ path: f.path, stamp: f.stamp ?? NO_STAMP, textHash: hashText(f.text), lexicon: lexOf.get(f) as FileLexicon, headerTokens: headerTokens(f.path) });
        }
      }
      const skipped = collected.contentSkips.map((f) => ({ path: f.path, ...f.stamp, reason: f.reason }));
      tree = buildTreeIndex(sources, scanStart, skipped);
      // Only what the scan read from disk goes into the snapshot; caller-given texts do not.
      const stored = storable ? tree : buildTreeIndex(sources.filter((_, k) => { const d = docs[k]; return 'unread' in d || (d.file.stamp !== undefined && d.file.origin === 'workspace' && d.file.startLine === 1); }), scanStart, skipped);
      await storeTree(options.cacheDir as string, key, stored, log);
    }
    // One small object per file of the tree, every question: no copies of the scan's records.
    const treeDocs: TreeDoc[] = tree.files.map((tf, k) => {
      const d = docs[k];
      const f = 'file' in d ? d.file : d.unread;
      return { path: f.path, absPath: f.absPath, origin: originOf(f.path, 'file' in d ? d.file.origin : 'workspace'), headerTokens: tf.headerTokens };
    });
    const treeRefs = new TreeRefs(tree, treeDocs, texts, (p) => renderHeader(chunkOpts.header, p));
    refs = treeRefs;
    const bm25 = treeBm25(tree, question);
    // The identifier boosts read chunk bodies; only chunks that can match are read.
    const candidates = quotedIdentifiers(question).length > 0 ? boostCandidates(tree, question) : new Set<number>();
    if (candidates === null) await texts.load(docs.keys());
    else await texts.load([...candidates].map((c) => chunkField(tree, c, 'file')));
    // boostScores' numbers, without an object per chunk: a chunk that cannot match an identifier
    // is scored as having no body (its path may still match).
    const boosts = questionBoosts(question);
    const sc = new Float64Array(refs.length);
    tree.files.forEach((tf, k) => {
      const d = treeDocs[k];
      const plain = boosts.withoutBody(d.path, d.origin);
      for (let c = tf.firstChunk; c < tf.firstChunk + tf.chunkCount; c++) {
        sc[c] = candidates === null || candidates.has(c) ? boosts.score(bm25[c], d.path, d.origin, treeRefs.at(c).body) : plain(bm25[c]);
      }
    });
    ranked = () => rankOrder(sc);
    message = `${refs.length} chunks from ${docs.length} files${fromIndex > 0 ? ` (${fromIndex} unchanged, read from the index)` : ''}`;
  } else if (useTree) {
    // Caller-given files only (the extension lists the workspace itself): no tree to snapshot;
    // per-file lexical entries for unchanged files, BM25 over them.
    const files = collected.files;
    docs = files.map((file) => ({ file }));
    texts = new DocTexts(docs);
    const lexical = new LexicalIndex(options.cacheDir as string, (chunkIndex as ChunkIndex).identity, { maxBytes: options.cacheMaxBytes !== undefined ? lexicalIndexCap(options.cacheMaxBytes) : undefined, log });
    const r = await lexiconsFor(files, model.tokenizer, chunkOpts, chunkIndex, lexical, signal);
    throwIfAborted(signal, 'Indexing files');
    const list: ChunkRef[] = r.files.flatMap((lf, k) => {
      const f = files[k];
      const header = renderHeader(chunkOpts.header, f.path);
      return lf.lexicon.chunks.map((m) => {
        const body = bodyOf(f, m);
        return { path: f.path, absPath: f.absPath, origin: originOf(f.path, f.origin), startLine: m.startLine, endLine: m.endLine, body, text: header + body, hash: m.hash, tokens: m.tokens, file: k };
      });
    });
    refs = new ArrayRefs(list);
    const sc = Float64Array.from(boostScores(list, bm25Scores(r.files, question), question));
    ranked = () => rankOrder(sc);
    message = `${refs.length} chunks from ${files.length} files${r.fromIndex > 0 ? ` (${r.fromIndex} unchanged, read from the index)` : ''}`;
  } else {
    // No lexical index (no cache folder, or a tokenizer not loaded from a file): every chunk
    // is made here anyway, so keep them; ranking builds its search index from the bodies.
    const files = collected.files;
    docs = files.map((file) => ({ file }));
    texts = new DocTexts(docs);
    full = [];
    const list: ChunkRef[] = [];
    let unchanged = 0;
    for (let k = 0; k < files.length && !signal?.aborted; k++) {
      const { chunks, from } = await chunkFileIndexed(files[k], model.tokenizer, chunkOpts, chunkIndex);
      if (from !== 'chunked') unchanged++;
      for (const c of chunks) {
        const { tokenIds, ...rest } = c;
        full.push(c);
        list.push({ ...rest, origin: originOf(rest.path, rest.origin), tokens: tokenIds.length, file: k });
      }
    }
    if (chunkIndex) await chunkIndex.evictIfGrown();
    throwIfAborted(signal, 'Splitting files into chunks');
    refs = new ArrayRefs(list);
    // Ranking builds its search index from the bodies, and only when a plan ranks.
    ranked = () => rankChunks(list, question);
    message = `${refs.length} chunks from ${files.length} files${unchanged > 0 ? ` (${unchanged} unchanged, not tokenized again)` : ''}`;
  }
  for (const line of indexLog) yield { type: 'progress', stage: 'tokenize', message: line };
  yield { type: 'progress', stage: 'tokenize', message, done: docs.length, total: docs.length };
  if (refs.length === 0) {
    throw new ArcError('no-sources', `The files found${where} contain only whitespace${describeSkips(collected.skipped)}. Open a folder with source code or add files to the question.`);
  }
  const t = texts;
  return { docCount: docs.length, sourceFile: (k) => t.sourceFile(k), refs, ranked, full, chunkIndex, chunkOpts, loadAllTexts: () => t.load(docs.keys()) };
}

/** Times a question starts over when its stored tree index turns out unreadable part-way. */
const TREE_RETRIES = 3;

/**
 * gatherChunks, started over when the tree snapshot's postings turn out corrupt (the entry was
 * deleted) or replaced by another process after they were loaded (treeIndex.ts TreeIndexCorrupt):
 * the next try loads what is stored now, or rebuilds the index.
 */
async function* gatherWithRetry(model: ArcModel, request: AskRequest, options: AskOptions, question: string): AsyncGenerator<AskEvent, Gathered> {
  for (let attempt = 1; ; attempt++) {
    try {
      return yield* gatherChunks(model, request, options, question);
    } catch (e) {
      if (!(e instanceof TreeIndexCorrupt) || attempt >= TREE_RETRIES) throw e;
      const line = `tree index: ${e.reason}${e.deleted ? ' (deleted; rebuilding)' : ''}; starting over`;
      options.log?.(line);
      yield { type: 'progress', stage: 'tokenize', message: line };
    }
  }
}

/** The chosen chunks with their token ids: from the full list, else their files' chunks (memo, chunk index or tokenizer). */
async function loadChunks(model: ArcModel, g: Gathered, chosen: readonly number[]): Promise<Map<number, Chunk>> {
  const out = new Map<number, Chunk>();
  if (g.full) {
    for (const i of chosen) out.set(i, g.full[i]);
    return out;
  }
  const byFile = new Map<number, number[]>();
  for (const i of chosen) {
    const k = g.refs.at(i).file;
    const list = byFile.get(k);
    if (list) list.push(i);
    else byFile.set(k, [i]);
  }
  for (const [k, list] of byFile) {
    const { chunks } = await chunkFileIndexed(await g.sourceFile(k), model.tokenizer, g.chunkOpts, g.chunkIndex);
    const byStart = new Map(chunks.map((c) => [`${c.startLine}:${c.hash}`, c]));
    for (const i of list) {
      const r = g.refs.at(i);
      const c = byStart.get(`${r.startLine}:${r.hash}`);
      if (!c) throw new Error(`${r.path}:${r.startLine} is not among the file's chunks (the index and the chunker disagree)`);
      out.set(i, c);
    }
  }
  if (g.chunkIndex) await g.chunkIndex.evictIfGrown();
  return out;
}

/** Decoder positions of each chunk in each form, computed before anything is read or encoded. */
interface Costs {
  /** Decoder tokens of the rendered chunk (full, mixed); with another decoder tokenizer, its ids too. */
  text: ((i: number) => number) | null;
  decoderIds: number[][] | null;
  /** Predicted vectors (arc, mixed). */
  vectors: (i: number) => number;
  /**
   * Positions of chunk i's compressed form: header tokens (documentFormat.compressedHeader) +
   * vectors + <Cont>. Computed on first use: its header is tokenized then, and planning asks only
   * for chunks whose lower bound (vectors + <Cont>) still fits the window.
   */
  compressed: (i: number) => number;
  /**
   * A lower bound of compressed(i), cheap to ask: vectors + <Cont>, plus the header tokens when
   * the tree snapshot knows them (then it is exact).
   */
  lowerCompressed: (i: number) => number;
  /** The fewest text tokens, and the fewest vectors + 1, of any chunk (planning stops below them). */
  minText: number;
  minCompressed: number;
}

function costsFor(model: ArcModel, refs: ChunkRefs, mode: ContextMode): Costs {
  const tok = refs.tokens;
  let minTokens = Infinity;
  let maxTokens = 0;
  for (let i = 0; i < tok.length; i++) {
    minTokens = Math.min(minTokens, tok[i]);
    maxTokens = Math.max(maxTokens, tok[i]);
  }
  // Chunks are at most the encoder's chunk size: one group rule per token count.
  const byTokens = new Uint32Array(tok.length > 0 ? maxTokens + 1 : 0);
  for (let t = 0; t < byTokens.length; t++) byTokens[t] = predictedVectors(model, t);
  const vectors = (i: number): number => byTokens[tok[i]];
  let minVectors = Infinity;
  for (let i = 0; i < tok.length; i++) minVectors = Math.min(minVectors, byTokens[tok[i]]);
  const minCompressed = tok.length > 0 ? minVectors + 1 : 0;
  const coster = compressedCoster(model);
  // A tree snapshot knows each file's header tokens (with the encoder's tokenizer, the decoder's
  // here too): a warm question then tokenizes no header.
  const known = model.manifest.documentFormat.compressedHeader && decoderTokenizer(model) === model.tokenizer;
  const knownHeader = (i: number): number => {
    if (!known) return -1;
    const h = refs.docHeaderTokens(refs.file[i]);
    return h !== undefined && h >= 0 ? h : -1;
  };
  const memo = new Map<number, number>();
  const compressed = (i: number): number => {
    const h = knownHeader(i);
    if (h >= 0) return h + vectors(i) + 1;
    let c = memo.get(i);
    if (c === undefined) memo.set(i, (c = coster(refs.at(i).path, vectors(i))));
    return c;
  };
  const lowerCompressed = (i: number): number => {
    const h = knownHeader(i);
    return (h >= 0 ? h : 0) + vectors(i) + 1;
  };
  if (mode === 'arc') return { text: null, decoderIds: null, vectors, compressed, lowerCompressed, minText: minTokens, minCompressed };
  // The decoder may read text with its own tokenizer; chunks were sized with the encoder's.
  const dtok = decoderTokenizer(model);
  if (dtok === model.tokenizer) return { text: (i) => tok[i], decoderIds: null, vectors, compressed, lowerCompressed, minText: minTokens, minCompressed };
  const decoderIds: number[][] = [];
  let minText = Infinity;
  for (let i = 0; i < refs.length; i++) {
    decoderIds.push(dtok.encode(refs.at(i).text)); // the caller loaded every text (Gathered.loadAllTexts)
    minText = Math.min(minText, decoderIds[i].length);
  }
  return { text: (i) => decoderIds[i].length, decoderIds, vectors, compressed, lowerCompressed, minText, minCompressed };
}

/** Stage 5: compressed vectors (from the cache or the encoder) and/or decoder token ids of the chosen chunks only. */
async function* materialize(model: ArcModel, g: Gathered, p: ContextPlan, costs: Costs, mode: ContextMode, options: AskOptions, stats: AskStats, extractive: boolean): AsyncGenerator<AskEvent, Materialized> {
  const loaded = await loadChunks(model, g, [...p.text, ...p.compressed]);
  const read = (i: number): string => {
    const c = loaded.get(i) as Chunk;
    if (!p.partial || p.partial.index !== i) return c.text;
    return decoderTokenizer(model).decode((costs.decoderIds ? costs.decoderIds[i] : c.tokenIds).slice(0, p.partial.keep));
  };
  const spanText = extractive ? quotableChunks(mode, p, model.manifest.prompt.quoteChunks).map(read).join('\n') : null;
  const out: Materialized = { compressed: null, plainIds: null, spanText };
  if ((mode === 'arc' || mode === 'mixed') && p.compressed.length > 0) {
    const logLines: string[] = [];
    const cache = options.cacheDir
      ? new VectorCache(options.cacheDir, {
          maxBytes: options.cacheMaxBytes,
          log: (line) => {
            logLines.push(line);
            options.log?.(line);
          },
        })
      : null;
    const chunks = p.compressed.map((i) => loaded.get(i) as Chunk);
    const it = compressChunks(chunks, { encoder: model.encoder, modelIdentity: model.identity, cache, signal: options.signal });
    let r = await it.next();
    while (!r.done) {
      for (const line of logLines.splice(0)) yield { type: 'progress', stage: 'encode', message: line };
      const pr = r.value;
      yield { type: 'progress', stage: 'encode', message: `Compressed ${pr.done}/${pr.total} chosen chunks (${pr.cacheHits} from cache, ${pr.encoded} encoded)`, done: pr.done, total: pr.total };
      r = await it.next();
    }
    for (const line of logLines.splice(0)) yield { type: 'progress', stage: 'encode', message: line };
    out.compressed = [];
    r.value.compressed.forEach((c, k) => {
      const i = p.compressed[k];
      // The plan counted on the group rule; an encoder that breaks it would overrun the window.
      if (c.count !== costs.vectors(i)) throw new Error(`The encoder made ${c.count} vectors for ${g.refs.docPath(g.refs.file[i])}:${g.refs.startLine[i]} (${g.refs.tokens[i]} tokens); the group rule gives ${costs.vectors(i)}.`);
      (out.compressed as CompressedChunk[])[i] = c;
    });
    stats.cacheHits = r.value.cacheHits;
    stats.cacheMisses = chunks.length - r.value.cacheHits;
    stats.encodeMs = r.value.encodeMs;
  }
  if (mode === 'full' || mode === 'mixed') {
    out.plainIds = [];
    for (const i of p.text) out.plainIds[i] = costs.decoderIds ? costs.decoderIds[i] : (loaded.get(i) as Chunk).tokenIds;
  }
  return out;
}

/** Stage 3: which chunks reach the decoder, and in which form (from token counts alone). */
function plan(mode: ContextMode, g: Gathered, costs: Costs, budget: number, textBudget: number): ContextPlan {
  const n = g.refs.length;
  const minCompressed = costs.lowerCompressed;
  const textCost = costs.text as (i: number) => number;
  if (mode === 'arc') return planArc({ length: n, ranked: g.ranked, cost: costs.compressed, minCost: minCompressed, floor: costs.minCompressed }, budget);
  if (mode === 'full') return planFull({ length: n, ranked: g.ranked, cost: textCost, minCost: textCost, floor: costs.minText }, budget);
  // mixed ranks always, even when everything would fit.
  return planMixed(g.ranked(), { length: n, text: textCost, compressed: costs.compressed, minCompressed, floor: Math.min(costs.minText, costs.minCompressed) }, textBudget, budget);
}

/** Source tokens of a chunk that reach the decoder: a cut chunk counts its kept share. */
function keptSourceTokens(refs: ChunkRefs, i: number, p: ContextPlan, costs: Costs): number {
  const tokens = refs.tokens[i];
  if (!p.partial || p.partial.index !== i) return tokens;
  const plain = (costs.text as (i: number) => number)(i);
  return plain > 0 ? Math.round((tokens * p.partial.keep) / plain) : 0;
}

/**
 * mergeCitations over chunk indices in document order, read from the refs' columns (no object
 * per chunk): the whole left-out part of a large tree goes through here on every question, so
 * consecutive chunks of one document are compared by document index before any path.
 */
function mergeRefCitations(refs: ChunkRefs, list: readonly number[]): Citation[] {
  const out: Citation[] = [];
  let last: Citation | undefined;
  let lastDoc = -1;
  for (let n = 0; n < list.length; n++) {
    const i = list[n];
    const k = refs.file[i];
    const start = refs.startLine[i];
    const end = refs.endLine[i];
    if (last && (k === lastDoc || last.path === refs.docPath(k)) && start <= last.endLine + 1 && end >= last.startLine) {
      last.endLine = Math.max(last.endLine, end);
    } else {
      last = { path: refs.docPath(k), startLine: start, endLine: end };
      const abs = refs.docAbsPath(k);
      if (abs) last.absPath = abs;
      out.push(last);
    }
    lastDoc = k;
  }
  return out;
}

/** The selection event: merged citations overall and per form, and per-file figures; `included` is p.text and p.compressed in document order. */
function selectionEvent(refs: ChunkRefs, costs: Costs, mode: ContextMode, p: ContextPlan, included: readonly number[], budget: number): Extract<AskEvent, { type: 'selection' }> {
  const files = new Map<string, FileCompression>();
  const perDoc: FileCompression[] = [];
  const { tokens, file } = refs;
  for (let i = 0; i < tokens.length; i++) {
    const k = file[i];
    let f: FileCompression | undefined = perDoc[k];
    if (f === undefined) {
      const at = refs.docPath(k);
      f = files.get(at) ?? { path: at, tokens: 0, vectors: 0, chunks: 0, included: 0, textChunks: 0 };
      files.set(at, f);
      perDoc[k] = f;
    }
    f.tokens += tokens[i];
    if (mode !== 'full') f.vectors += costs.vectors(i);
    f.chunks++;
  }
  for (const i of p.text) perDoc[file[i]].textChunks++;
  for (const i of included) perDoc[file[i]].included++;
  return {
    type: 'selection',
    included: mergeRefCitations(refs, included),
    text: mergeRefCitations(refs, p.text),
    compressed: mergeRefCitations(refs, p.compressed),
    leftOut: mergeRefCitations(refs, p.leftOut),
    files: [...files.values()],
    budget,
  };
}

/** Stage 6: the decoder prefix the plan describes (layout in prompt.ts and docs/DESIGN.md). */
function layout(model: ArcModel, mode: ContextMode, refs: ChunkRefs, forms: Materialized, p: ContextPlan, question: string): BuiltPrefix {
  // The path comes with the chunk, not from the cache (keyed by content): its header as text needs it.
  const vectorsOf = (i: number): PlacedChunk => ({ ...(forms.compressed as CompressedChunk[])[i], path: refs.docPath(refs.file[i]) });
  const idsOf = (i: number) => {
    const all = (forms.plainIds as number[][])[i];
    return p.partial && p.partial.index === i ? all.slice(0, p.partial.keep) : all;
  };
  const o = planInOrder(p, contextOrder(model.manifest));
  if (mode === 'arc') return buildPrefix(model, 'arc', o.compressed.map(vectorsOf), question);
  if (mode === 'full') return buildPrefix(model, 'full', o.text.map(idsOf), question);
  return buildPrefix(model, 'mixed', { compressed: o.compressed.map(vectorsOf), text: o.text.map(idsOf) }, question);
}

function contextStats(stats: AskStats, refs: ChunkRefs, costs: Costs, forms: Materialized, p: ContextPlan, prefix: BuiltPrefix): void {
  const kept = (i: number) => keptSourceTokens(refs, i, p, costs);
  stats.textTokens = p.text.reduce((n, i) => n + kept(i), 0);
  stats.sourceTokens = stats.textTokens + p.compressed.reduce((n, i) => n + refs.tokens[i], 0);
  stats.compressedVectors = p.compressed.reduce((n, i) => n + (forms.compressed as CompressedChunk[])[i].count, 0);
  stats.contextPositions = prefix.contextPositions;
  // Over the whole context in every mode: what the decoder would read as plain text, per position it read.
  stats.ratio = prefix.contextPositions > 0 ? stats.sourceTokens / prefix.contextPositions : 0;
  stats.textChunks = p.text.length;
  stats.compressedChunks = p.compressed.length;
  stats.chunksIncluded = p.text.length + p.compressed.length;
  stats.chunksLeftOut = p.leftOut.length;
  let all = 0;
  for (let i = 0; i < refs.length; i++) all += refs.tokens[i];
  stats.truncatedTokens = all - stats.sourceTokens;
}

/** Stage 7: streams the answer; returns it with the timings. */
async function* generate(model: ArcModel, prefix: BuiltPrefix, request: AskRequest, maxNewTokens: number, signal: AbortSignal | undefined, answerFrom: string | undefined): AsyncGenerator<AskEvent, { answer: string; timings: GenerationTimings; firstTokenAt: number | null }> {
  const gen = (model.decoder as NonNullable<ArcModel['decoder']>).generate(prefix.parts, {
    maxNewTokens,
    temperature: request.temperature,
    topP: request.topP,
    stop: model.manifest.prompt.stop,
    signal,
    ...(answerFrom !== undefined ? { answerFrom } : {}),
  });
  let answer = '';
  let firstTokenAt: number | null = null;
  try {
    let r = await gen.next();
    while (!r.done) {
      if (firstTokenAt === null) {
        firstTokenAt = performance.now();
        yield { type: 'progress', stage: 'generate', message: 'Answering' };
      }
      answer += r.value;
      yield { type: 'token', text: r.value };
      r = await gen.next();
    }
    return { answer, timings: r.value, firstTokenAt };
  } finally {
    // The consumer may stop reading early; stop the decoder with it.
    await gen.return(undefined as unknown as GenerationTimings).catch(() => {});
  }
}

async function* askImpl(model: ArcModel, request: AskRequest, options: AskOptions = {}): AsyncGenerator<AskEvent, void> {
  const t0 = performance.now();
  const { signal } = options;
  const mode = request.mode;
  const stats = emptyStats(mode, model.provider);
  try {
    const question = request.question.trim();
    if (question === '') throw new ArcError('empty-question', 'The question is empty. Type a question about the code.');
    const dec = model.manifest.decoder;
    if (!dec || !model.decoder) {
      throw new ArcError('model-missing', `The model package ${model.dir} has no decoder, so it cannot answer questions. Choose a package with a decoder.onnx.`);
    }
    const maxNewTokens = request.maxNewTokens ?? model.manifest.prompt.maxNewTokens;
    const budget = contextBudget(model, question, maxNewTokens);

    let included: ChunkRef[] = [];
    let prefix: BuiltPrefix;
    // Extractive decoding: the answer is a span of what the decoder read (the question included).
    const extractive = request.extractive ?? model.manifest.prompt.extractive ?? false;
    let spanText = '';
    if (mode === 'none') {
      prefix = buildPrefix(model, 'none', [], question);
    } else {
      if (budget <= 0) {
        throw new ArcError('context-too-large', `The question and the answer room (${maxNewTokens} tokens) fill the model's ${dec.contextLength}-position window. Ask a shorter question.`);
      }
      const textBudget = mode === 'mixed' ? mixedTextBudget(model.manifest, request.textBudget) : 0;
      const g = yield* gatherWithRetry(model, request, options, question);
      yield { type: 'progress', stage: 'select', message: `Choosing chunks for ${budget} context positions${mode === 'mixed' ? ` (up to ${textBudget} tokens as text)` : ''}` };
      if (mode !== 'arc' && decoderTokenizer(model) !== model.tokenizer) await g.loadAllTexts();
      const costs = costsFor(model, g.refs, mode);
      const p = plan(mode, g, costs, budget, textBudget);
      const chosen = [...p.text, ...p.compressed].sort((a, b) => a - b);
      included = chosen.map((i) => g.refs.at(i));
      if (included.length === 0) {
        throw new ArcError('context-too-large', `No chunk fits the ${budget} positions left for context. Ask a shorter question or use a model with a larger window.`);
      }
      yield selectionEvent(g.refs, costs, mode, p, chosen, budget);
      const forms = yield* materialize(model, g, p, costs, mode, options, stats, extractive);
      prefix = layout(model, mode, g.refs, forms, p, question);
      spanText = forms.spanText ?? '';
      contextStats(stats, g.refs, costs, forms, p, prefix);
    }

    throwIfAborted(signal, 'The question');
    yield { type: 'progress', stage: 'prefill', message: `Reading ${prefix.positions} positions` };
    const answerFrom = extractive ? `${spanText}\n${question}` : undefined;
    const { answer, timings, firstTokenAt } = yield* generate(model, prefix, request, maxNewTokens, signal, answerFrom);
    throwIfAborted(signal, 'Answering');
    stats.prefillMs = timings.prefillMs;
    stats.tokensPerSecond = timings.tokensPerSecond;
    stats.generatedTokens = timings.generatedTokens;
    if (timings.backend) Object.assign(stats, { decoderBackend: timings.backend, serverTtftMs: timings.serverTtftMs });
    stats.totalMs = performance.now() - t0;
    // Time to first token as the user feels it: scanning, encoding and prefill included.
    stats.ttftMs = (firstTokenAt ?? performance.now()) - t0;
    yield { type: 'citations', citations: mergeCitations(included) };
    yield { type: 'stats', stats };
    yield { type: 'done', answer, stats };
  } catch (e) {
    yield toErrorEvent(e, signal);
  }
}

export const ask = askImpl satisfies AskFn;
