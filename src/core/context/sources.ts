// Collects the text sources a question is asked about: folder trees (respecting .gitignore,
// include/exclude globs, size and content checks) plus files, open editors and selections
// given by the caller. No editor API here: the caller hands in SourceInput objects.
import { readdirSync, statSync } from 'node:fs';
import { lstat, readFile, realpath, stat } from 'node:fs/promises';
import * as path from 'node:path';
import ignore, { type Ignore } from 'ignore';
import picomatch from 'picomatch';
import { throwIfAborted } from '../errors';
import type { SkipReason, SourceInput } from '../types';
import type { FileStamp } from './treeIndex';

export const DEFAULT_MAX_FILE_BYTES = 1024 * 1024;
/** Examples kept per skip reason: enough to explain a count without flooding the UI. */
const EXAMPLES_PER_REASON = 3;

export interface SourceFile {
  /** Display path: root-relative (or caller-given) with forward slashes. */
  path: string;
  absPath?: string;
  text: string;
  /** 1-based line of the file where `text` starts (selections start mid-file). */
  startLine: number;
  origin: SourceInput['origin'];
  /** Size, times and inode when a folder scan read it (stat before the read). */
  stamp?: FileStamp;
}

/** A file a folder scan found unchanged (CollectOptions.unchanged) and did not read. */
export interface UnreadFile {
  path: string;
  absPath: string;
  stamp: FileStamp;
}

export interface SkipReport {
  counts: Partial<Record<SkipReason, number>>;
  examples: { path: string; reason: SkipReason }[];
}

export interface CollectOptions {
  roots?: string[];
  sources?: SourceInput[];
  include?: string[];
  exclude?: string[];
  maxFileBytes?: number;
  signal?: AbortSignal;
  /** Called now and then with the number of directory entries looked at so far. */
  onProgress?: (scanned: number) => void;
  /**
   * Asked for each file a folder scan finds, with a fresh stat of it: true when the caller knows
   * the file as it is (a tree snapshot), so that it is listed in `unread` instead of being read.
   */
  unchanged?: (shown: string, stamp: FileStamp) => boolean;
  /**
   * Asked, with a fresh stat, for each file `unchanged` does not vouch for: the reason when the
   * caller knows the file was left out for its content as it is now (binary, not UTF-8,
   * minified), so that it is skipped again without being read.
   */
  knownSkip?: (shown: string, stamp: FileStamp) => SkipReason | null;
}

/** Reasons found by reading a file (the others come from its name, size or place). */
export const CONTENT_SKIPS: ReadonlySet<SkipReason> = new Set<SkipReason>(['binary', 'not-utf8', 'minified']);

export interface CollectResult {
  files: SourceFile[];
  /** Scanned files `unchanged` vouched for, not read, sorted by path; none a caller source overrides. */
  unread: UnreadFile[];
  skipped: SkipReport;
  /** Files looked at (kept or skipped). */
  scanned: number;
  /** Folder-scan files left out for their content, with the stamp taken before they were read (or known). */
  contentSkips: { path: string; stamp: FileStamp; reason: SkipReason }[];
  /** Of those, how many were read this time (`knownSkip` did not know them). */
  contentSkipsRead: number;
}

/** Stops the scan with ArcError('cancelled') once the caller's signal fires. */
function checkAborted(signal?: AbortSignal): void {
  throwIfAborted(signal, 'Scanning for source files');
}

type ContentVerdict = { ok: true; text: string } | { ok: false; reason: SkipReason };
type ReadVerdict = ContentVerdict & { stamp?: FileStamp; known?: true };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Minified bundles are one huge line of tokens that no question benefits from. */
const MINIFIED_NAME = /\.min\.(js|mjs|cjs|css)$/i;
const MINIFIED_MIN_CHARS = 2048;
const MINIFIED_AVG_LINE = 300;

export function classifyContent(displayPath: string, buf: Buffer): ContentVerdict {
  if (buf.includes(0)) return { ok: false, reason: 'binary' };
  let text: string;
  try {
    text = utf8.decode(buf);
  } catch {
    return { ok: false, reason: 'not-utf8' };
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (isMinified(displayPath, text)) return { ok: false, reason: 'minified' };
  return { ok: true, text };
}

export function isMinified(displayPath: string, text: string): boolean {
  if (MINIFIED_NAME.test(displayPath)) return true;
  if (text.length < MINIFIED_MIN_CHARS) return false;
  let lines = 1;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) lines++;
  return text.length / lines > MINIFIED_AVG_LINE;
}

class SkipCounter {
  readonly counts: Partial<Record<SkipReason, number>> = {};
  readonly examples: { path: string; reason: SkipReason }[] = [];
  add(p: string, reason: SkipReason): void {
    const n = (this.counts[reason] ?? 0) + 1;
    this.counts[reason] = n;
    if (n <= EXAMPLES_PER_REASON) this.examples.push({ path: p, reason });
  }
  report(): SkipReport {
    return { counts: { ...this.counts }, examples: [...this.examples] };
  }
}

/** A .gitignore together with the root-relative directory it lives in. */
interface IgnoreLayer {
  dir: string; // '' for the root, else 'a/b'
  ig: Ignore;
}

function isInside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function toPosix(p: string): string {
  return p.split(path.sep).join('/');
}

/** Applies gitignore layers outermost first so that deeper files can re-include (`!x`). */
function gitIgnored(layers: IgnoreLayer[], rel: string, isDir: boolean): boolean {
  let ignored = false;
  for (const layer of layers) {
    const sub = layer.dir === '' ? rel : rel.slice(layer.dir.length + 1);
    const r = layer.ig.test(isDir ? `${sub}/` : sub);
    if (r.ignored) ignored = true;
    else if (r.unignored) ignored = false;
  }
  return ignored;
}

async function loadGitignore(absDir: string, relDir: string): Promise<IgnoreLayer | null> {
  let content: string;
  try {
    content = await readFile(path.join(absDir, '.gitignore'), 'utf8');
  } catch {
    return null; // most directories have none
  }
  return { dir: relDir, ig: ignore().add(content) };
}

/**
 * The repository's own exclude file (`.git/info/exclude`) when `rootAbs` is a repository root:
 * git applies it below every .gitignore, with patterns relative to the root, so it is the
 * outermost layer. (A scan root inside a repository does not look above itself.)
 */
async function loadInfoExclude(rootAbs: string): Promise<IgnoreLayer[]> {
  let content: string;
  try {
    content = await readFile(path.join(rootAbs, '.git', 'info', 'exclude'), 'utf8');
  } catch {
    return []; // not a repository root, or no exclude file
  }
  return [{ dir: '', ig: ignore().add(content) }];
}

export interface GitignoreFilterResult {
  /** The paths no .gitignore excludes, as given and in the given order. */
  kept: string[];
  /** The paths a .gitignore (or a .git folder) excludes, as given and in the given order. */
  ignored: string[];
}

/**
 * Applies the folder scan's .gitignore rules to a list of root-relative file paths found some
 * other way (the editor's file search): the .gitignore of `root` and of every folder between it
 * and the file, outermost first, with a file inside an ignored folder ignored as git does, and
 * anything inside a `.git` folder ignored. Paths use '/' or the platform separator; paths
 * outside `root` are kept (no .gitignore under root speaks for them).
 */
export async function filterGitignored(root: string, relPaths: readonly string[], signal?: AbortSignal): Promise<GitignoreFilterResult> {
  const rootAbs = path.resolve(root);
  // Active layers for a folder, or null when the folder itself is ignored.
  const folders = new Map<string, Promise<IgnoreLayer[] | null>>();
  const layersFor = (relDir: string): Promise<IgnoreLayer[] | null> => {
    let p = folders.get(relDir);
    if (!p) {
      p = (async () => {
        let outer: IgnoreLayer[];
        if (relDir === '') outer = await loadInfoExclude(rootAbs);
        else {
          const cut = relDir.lastIndexOf('/');
          const parent = await layersFor(cut < 0 ? '' : relDir.slice(0, cut));
          if (parent === null) return null;
          if (relDir.slice(cut + 1) === '.git' || gitIgnored(parent, relDir, true)) return null;
          outer = parent;
        }
        const own = await loadGitignore(path.join(rootAbs, ...relDir.split('/')), relDir);
        return own ? [...outer, own] : outer;
      })();
      folders.set(relDir, p);
    }
    return p;
  };
  const kept: string[] = [];
  const ignored: string[] = [];
  for (const given of relPaths) {
    checkAborted(signal);
    const rel = path.posix.normalize(toPosix(given)).replace(/\/+$/, '');
    if (rel === '' || rel === '.' || rel === '..' || rel.startsWith('../') || path.posix.isAbsolute(rel) || path.isAbsolute(given)) {
      kept.push(given);
      continue;
    }
    const cut = rel.lastIndexOf('/');
    const layers = await layersFor(cut < 0 ? '' : rel.slice(0, cut));
    if (layers === null || gitIgnored(layers, rel, false)) ignored.push(given);
    else kept.push(given);
  }
  return { kept, ignored };
}

interface PendingRead {
  shown: string;
  abs: string;
  result: Promise<ReadVerdict>;
}

interface WalkState {
  rootReal: string;
  prefix: string; // display prefix for multi-root requests ('' for one root)
  include: ((p: string) => boolean) | null;
  exclude: ((p: string) => boolean) | null;
  maxFileBytes: number;
  skips: SkipCounter;
  out: SourceFile[];
  unread: UnreadFile[];
  /** Reads started and not yet applied, oldest first. */
  pending: PendingRead[];
  unchanged?: (shown: string, stamp: FileStamp) => boolean;
  knownSkip?: (shown: string, stamp: FileStamp) => SkipReason | null;
  contentSkips: CollectResult['contentSkips'];
  contentSkipsRead: number;
  visitedDirs: Set<string>;
  scanned: number;
  signal?: AbortSignal;
  onProgress?: (scanned: number) => void;
}

/** `realDir`: absDir with symbolic links resolved (a folder's identity for the loop check). */
async function walkDir(st: WalkState, absDir: string, relDir: string, layers: IgnoreLayer[], realDir: string): Promise<void> {
  checkAborted(st.signal);
  let entries;
  try {
    // Synchronous on purpose: a folder listing from the page cache takes microseconds, a trip
    // through libuv's pool per folder takes far longer on a busy machine, and folders are walked
    // one after another (a tree of thousands of folders is what a warm question waits on).
    entries = readdirSync(absDir, { withFileTypes: true });
  } catch {
    st.skips.add(st.prefix + (relDir || '.') + '/', 'unreadable');
    return;
  }
  // Only folders that list a .gitignore are asked for one.
  const own = entries.some((e) => e.name === '.gitignore') ? await loadGitignore(absDir, relDir) : null;
  const active = own ? [...layers, own] : layers;
  // Byte order, not locale order: the same tree must give the same chunk order everywhere.
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  // Files are read (or stat-ed) ahead across folders (libuv's pool overlaps them); their results
  // and skips are applied in the order found (st.pending), and the kept files are sorted at the end.
  const reads = st.pending;
  // absDir is already normalized (resolved, then joined with listed names): a name is appended
  // (path.join would normalize every path again, for every file of a large tree).
  const dirPrefix = absDir.endsWith(path.sep) ? absDir : absDir + path.sep;
  for (const ent of entries) {
    const rel = relDir === '' ? ent.name : `${relDir}/${ent.name}`;
    const abs = dirPrefix + ent.name;
    const shown = st.prefix + rel;
    st.scanned++;
    if (st.scanned % 200 === 0) {
      checkAborted(st.signal);
      st.onProgress?.(st.scanned);
    }
    let isDir = ent.isDirectory();
    let isFile = ent.isFile();
    let realAbs = abs;
    if (ent.isSymbolicLink()) {
      try {
        realAbs = await realpath(abs);
      } catch {
        st.skips.add(shown, 'unreadable'); // dangling link
        continue;
      }
      if (!isInside(st.rootReal, realAbs)) {
        st.skips.add(shown, 'symlink-outside');
        continue;
      }
      try {
        const s = await stat(realAbs);
        isDir = s.isDirectory();
        isFile = s.isFile();
      } catch {
        st.skips.add(shown, 'unreadable');
        continue;
      }
    }
    if (ent.name === '.git' && isDir) {
      st.skips.add(shown + '/', 'gitignored'); // git's own store is never source
      continue;
    }
    if (gitIgnored(active, rel, isDir)) {
      st.skips.add(isDir ? `${shown}/` : shown, 'gitignored');
      continue;
    }
    if (isDir) {
      if (st.exclude?.(rel)) {
        st.skips.add(`${shown}/`, 'excluded');
        continue;
      }
      // A link back up the tree would loop forever; a link to a sibling would duplicate it.
      // A folder that is not a link is its real parent's real path plus its name.
      const key = realAbs === abs ? path.join(realDir, ent.name) : realAbs;
      if (st.visitedDirs.has(key)) continue;
      st.visitedDirs.add(key);
      await walkDir(st, abs, rel, active, key);
      continue;
    }
    if (!isFile) continue; // sockets, fifos, devices: not text sources
    if (st.exclude?.(rel) || (st.include && !st.include(rel))) {
      st.skips.add(shown, 'excluded');
      continue;
    }
    // The stat comes first, here (synchronous for the same reason as the folder listing). A file
    // the snapshot vouches for by its stat alone (most of a warm tree) is taken without a read in
    // flight: no promise per file for the thousands that are unchanged.
    const stamp = statStamp(realAbs);
    if (stamp && stamp.size <= st.maxFileBytes) {
      if (st.unchanged?.(shown, stamp)) {
        st.unread.push({ path: shown, absPath: abs, stamp });
        continue;
      }
      const reason = st.knownSkip?.(shown, stamp) ?? null;
      if (reason !== null) {
        // In the queue, so that skips are applied in the order found, as when read.
        reads.push({ shown, abs, result: Promise.resolve({ ok: false, reason, stamp, known: true }) });
        if (reads.length >= READ_AHEAD) await flushReads(st, reads, READ_AHEAD >> 1);
        continue;
      }
    }
    reads.push({ shown, abs, result: readVerdict(shown, realAbs, st.maxFileBytes, stamp) });
    if (reads.length >= READ_AHEAD) await flushReads(st, reads, READ_AHEAD >> 1);
  }
}

/** Files read (or stat-ed) ahead. */
const READ_AHEAD = 64;

/** Applies the oldest pending reads until at most `keep` are left in flight. */
async function flushReads(st: WalkState, reads: PendingRead[], keep = 0): Promise<void> {
  for (const r of reads.splice(0, Math.max(0, reads.length - keep))) {
    const v = await r.result;
    if (v.ok) st.out.push({ path: r.shown, absPath: r.abs, text: v.text, startLine: 1, origin: 'workspace', ...(v.stamp ? { stamp: v.stamp } : {}) });
    else {
      st.skips.add(r.shown, v.reason);
      if (v.stamp && CONTENT_SKIPS.has(v.reason)) {
        st.contentSkips.push({ path: r.shown, stamp: v.stamp, reason: v.reason });
        if (!v.known) st.contentSkipsRead++;
      }
    }
  }
}

/** A file's stamp from a fresh stat; null when it cannot be stat-ed. */
function statStamp(abs: string): FileStamp | null {
  try {
    const s = statSync(abs, { throwIfNoEntry: false });
    return s ? { size: s.size, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs, ino: s.ino } : null;
  } catch {
    return null;
  }
}

/**
 * Reads a file whose stamp (statStamp, null: not stat-able) was just taken and applies the size
 * and content checks. The stamp is taken before the read, so a later change always shows in it.
 */
async function readVerdict(shown: string, abs: string, maxBytes: number, stamp: FileStamp | null): Promise<ReadVerdict> {
  if (stamp === null) return { ok: false, reason: 'unreadable' };
  if (stamp.size > maxBytes) return { ok: false, reason: 'too-large' };
  let buf: Buffer;
  try {
    buf = await readFile(abs);
  } catch {
    return { ok: false, reason: 'unreadable' };
  }
  if (buf.length > maxBytes) return { ok: false, reason: 'too-large' }; // grew between stat and read
  return { ...classifyContent(shown, buf), stamp };
}

/** Reads a file and applies the size and content checks; null when skipped (and counted). */
async function readChecked(shown: string, abs: string, maxBytes: number, skips: SkipCounter): Promise<string | null> {
  let buf: Buffer;
  try {
    const s = await stat(abs);
    if (s.size > maxBytes) {
      skips.add(shown, 'too-large');
      return null;
    }
    buf = await readFile(abs);
  } catch {
    skips.add(shown, 'unreadable');
    return null;
  }
  if (buf.length > maxBytes) {
    skips.add(shown, 'too-large'); // grew between stat and read
    return null;
  }
  const v = classifyContent(shown, buf);
  if (!v.ok) {
    skips.add(shown, v.reason);
    return null;
  }
  return v.text;
}

function matcher(globs: string[] | undefined): ((p: string) => boolean) | null {
  const list = (globs ?? []).map((g) => g.trim()).filter((g) => g !== '');
  return list.length === 0 ? null : picomatch(list, { dot: true });
}

/**
 * Collects every source for a request. Caller-given sources win over the same path found in a
 * folder scan (an open editor may hold unsaved text); selections are kept as extra sources.
 * The result is sorted by path then start line so the same inputs always give the same order.
 */
export async function collectSources(opts: CollectOptions): Promise<CollectResult> {
  const skips = new SkipCounter();
  const maxFileBytes = opts.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  const roots = opts.roots ?? [];
  const scannedFiles: SourceFile[] = [];
  const contentSkips: CollectResult['contentSkips'] = [];
  let contentSkipsRead = 0;
  const unread: UnreadFile[] = [];
  let scanned = 0;
  const include = matcher(opts.include);
  const exclude = matcher(opts.exclude);
  for (const root of roots) {
    checkAborted(opts.signal);
    const rootAbs = path.resolve(root);
    let rootReal: string;
    try {
      rootReal = await realpath(rootAbs);
      if (!(await lstat(rootReal)).isDirectory()) throw new Error('not a directory');
    } catch {
      skips.add(root, 'unreadable');
      continue;
    }
    // Several roots are told apart by their folder name, as a multi-root workspace shows them.
    const prefix = roots.length > 1 ? `${path.basename(rootAbs)}/` : '';
    const st: WalkState = {
      rootReal,
      prefix,
      include,
      exclude,
      maxFileBytes,
      skips,
      out: scannedFiles,
      unread,
      pending: [],
      unchanged: opts.unchanged,
      knownSkip: opts.knownSkip,
      contentSkips,
      contentSkipsRead: 0,
      visitedDirs: new Set([rootReal]),
      scanned: 0,
      signal: opts.signal,
      onProgress: opts.onProgress ? (n) => opts.onProgress?.(scanned + n) : undefined,
    };
    try {
      await walkDir(st, rootAbs, '', await loadInfoExclude(rootAbs), rootReal);
      await flushReads(st, st.pending);
    } finally {
      // Cancelled: let reads in flight settle (unobserved) before the error goes up.
      for (const r of st.pending.splice(0)) void r.result.catch(() => {});
    }
    scanned += st.scanned;
    contentSkipsRead += st.contentSkipsRead;
  }

  const byPath = new Map<string, SourceFile>();
  for (const f of scannedFiles) byPath.set(f.path, f);
  const extra: SourceFile[] = [];
  const overridden = new Set<string>();
  const unreadAbs = opts.sources?.length ? new Map(unread.map((u) => [u.path, u.absPath])) : null;
  for (const src of opts.sources ?? []) {
    checkAborted(opts.signal);
    scanned++;
    const shown = toPosix(src.path);
    let text: string | null;
    if (src.text !== undefined) {
      text = src.text;
      if (Buffer.byteLength(text, 'utf8') > maxFileBytes) {
        skips.add(shown, 'too-large');
        text = null;
      } else if (text.includes('\0')) {
        skips.add(shown, 'binary');
        text = null;
      } else if (isMinified(shown, text)) {
        skips.add(shown, 'minified');
        text = null;
      }
    } else {
      text = await readChecked(shown, src.absPath ?? path.resolve(src.path), maxFileBytes, skips);
    }
    if (text === null) continue;
    const file: SourceFile = {
      path: shown,
      absPath: src.absPath,
      text,
      startLine: src.startLine ?? 1,
      origin: src.origin,
    };
    if (src.origin === 'selection' || file.startLine !== 1) extra.push(file);
    else {
      byPath.set(shown, { ...file, absPath: file.absPath ?? byPath.get(shown)?.absPath ?? unreadAbs?.get(shown) });
      overridden.add(shown);
    }
  }
  const files = [...byPath.values(), ...extra];
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : a.startLine - b.startLine));
  const kept = unread.filter((u) => !overridden.has(u.path));
  kept.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { files, unread: kept, skipped: skips.report(), scanned, contentSkips, contentSkipsRead };
}
