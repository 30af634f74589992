// Splits source files into encoder-sized chunks rendered in the model's document format.
// A chunk never exceeds the encoder's maxChunkTokens counting its own path header, because the
// encoder sees exactly the rendered text and cannot take longer inputs.
import { createHash } from 'node:crypto';
import type { TextTokenizer } from '../api';
import type { SourceInput } from '../types';
import type { SourceFile } from './sources';

export interface Chunk {
  path: string;
  absPath?: string;
  origin: SourceInput['origin'];
  /** 1-based inclusive line range inside the file. */
  startLine: number;
  endLine: number;
  /** Body text; ends with exactly one "\n". */
  body: string;
  /** header + body, the exact text the encoder (or the decoder in full mode) reads. */
  text: string;
  /** Token ids of `text` (no BOS). */
  tokenIds: number[];
  /** sha256 hex of `text`. */
  hash: string;
}

export interface ChunkOptions {
  maxTokens: number;
  /** Header template with {path}, e.g. "### {path}\n". */
  header: string;
}

export function renderHeader(template: string, filePath: string): string {
  return template.split('{path}').join(filePath);
}

export function hashText(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * Lines where a new top-level unit starts: a definition or declaration at column 0. Cutting just
 * before them keeps a function with its body, which is what the questions are about.
 */
const TOP_LEVEL_DEF =
  /^(?:export\s|default\s|async\s|def\s|class\s|function\s|const\s|let\s|var\s|interface\s|type\s|enum\s|struct\s|impl\s|fn\s|pub\s|func\s|module\s|namespace\s|public\s|private\s|protected\s|static\s|@)/;

function isBlank(line: string): boolean {
  return line.trim() === '';
}

interface LineInfo {
  text: string; // without its "\n"
  tokens: number; // estimated token count of text + "\n"
}

/**
 * Splits one file. Line ranges of the returned chunks are contiguous and cover the whole file
 * (blank lines at a cut belong to the chunk before it; the body omits leading/trailing blank
 * lines so it ends with exactly one "\n"). A whitespace-only file gives no chunks.
 */
export function chunkFile(file: SourceFile, tokenizer: TextTokenizer, opts: ChunkOptions): Chunk[] {
  const header = renderHeader(opts.header, file.path);
  const headerTokens = tokenizer.encode(header).length;
  const bodyBudget = opts.maxTokens - headerTokens;
  if (bodyBudget < 1) {
    throw new Error(`The path header for ${file.path} alone needs ${headerTokens} tokens; the model takes ${opts.maxTokens}.`);
  }
  const raw = file.text.split('\n');
  if (raw.length > 0 && raw[raw.length - 1] === '') raw.pop(); // the text's final "\n"
  if (raw.every(isBlank)) return [];
  // Per-line counts are an estimate (BPE may merge across a line end); every chunk is
  // re-tokenized whole and shrunk if the estimate was short.
  const lines: LineInfo[] = raw.map((t) => ({ text: t, tokens: isBlank(t) ? 1 : tokenizer.encode(`${t}\n`).length }));

  const out: Chunk[] = [];
  const make = (first: number, last: number, body: string): Chunk => {
    const text = header + body;
    return {
      path: file.path,
      absPath: file.absPath,
      origin: file.origin,
      startLine: file.startLine + first,
      endLine: file.startLine + last,
      body,
      text,
      tokenIds: tokenizer.encode(text),
      hash: hashText(text),
    };
  };
  const bodyOf = (first: number, last: number): string | null => {
    let a = first;
    let b = last;
    while (a <= b && isBlank(lines[a].text)) a++;
    while (b >= a && isBlank(lines[b].text)) b--;
    if (a > b) return null;
    return lines.slice(a, b + 1).map((l) => l.text).join('\n') + '\n';
  };

  let start = 0;
  while (start < lines.length) {
    // Grow the range while the estimate fits.
    let end = start; // exclusive
    let used = 0;
    while (end < lines.length && used + lines[end].tokens <= bodyBudget) used += lines[end++].tokens;
    if (end === start) {
      // One line longer than the whole budget: hard cut inside it.
      out.push(...splitLongLine(start, lines[start].text));
      start++;
      continue;
    }
    if (end < lines.length) end = chooseCut(lines, start, end, bodyBudget);
    // Shrink until the exact token count fits (rarely more than once).
    let chunk: Chunk | null = null;
    while (end > start) {
      const body = bodyOf(start, end - 1);
      if (body === null) break;
      const c = make(start, end - 1, body);
      if (c.tokenIds.length <= opts.maxTokens) {
        chunk = c;
        break;
      }
      end--;
    }
    if (end === start) {
      out.push(...splitLongLine(start, lines[start].text));
      start++;
      continue;
    }
    // Trailing blank lines past the cut belong here so that ranges stay contiguous.
    while (end < lines.length && isBlank(lines[end].text)) end++;
    if (chunk === null) {
      // Only blank lines: fold them into the previous chunk's range (or drop at file start).
      if (out.length > 0) out[out.length - 1].endLine = file.startLine + end - 1;
    } else {
      chunk.endLine = file.startLine + end - 1;
      out.push(chunk);
    }
    start = end;
  }
  if (out.length > 0 && out[0].startLine !== file.startLine) out[0].startLine = file.startLine;
  return out;

  /** Cuts a line into the longest character prefixes that fit; all pieces share its line number. */
  function splitLongLine(index: number, lineText: string): Chunk[] {
    const pieces: Chunk[] = [];
    let rest = lineText;
    while (rest.length > 0) {
      // Binary search the longest prefix whose rendered chunk fits.
      let lo = 1;
      let hi = rest.length;
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2);
        if (tokenizer.encode(`${header}${rest.slice(0, mid)}\n`).length <= opts.maxTokens) lo = mid;
        else hi = mid - 1;
      }
      // Do not split a surrogate pair: half a character is not valid text.
      let cut = lo;
      const code = rest.charCodeAt(cut - 1);
      if (cut < rest.length && code >= 0xd800 && code <= 0xdbff && cut > 1) cut--;
      pieces.push(make(index, index, `${rest.slice(0, cut)}\n`));
      rest = rest.slice(cut);
    }
    return pieces;
  }
}

/**
 * Picks where to end a full range [start, end): after a blank-line run or before a top-level
 * definition, the latest such place that still keeps the chunk at least a quarter full
 * (smaller chunks waste encoder calls and <Cont> positions); otherwise at the last line end.
 */
function chooseCut(lines: LineInfo[], start: number, end: number, budget: number): number {
  const minTokens = Math.floor(budget / 4);
  let used = 0;
  const prefix: number[] = [];
  for (let i = start; i < end; i++) {
    prefix.push(used);
    used += lines[i].tokens;
  }
  // The line at `end` (the one that did not fit) is itself a candidate cut position.
  for (let cut = end; cut > start; cut--) {
    const before = cut === end ? used : prefix[cut - start];
    if (before < minTokens) break;
    const line = lines[cut]?.text ?? '';
    const prevBlank = isBlank(lines[cut - 1].text);
    if (!isBlank(line) && (prevBlank || TOP_LEVEL_DEF.test(line))) return cut;
  }
  return end;
}

/**
 * Chunks of recently seen files, per tokenizer. Tokenizing is the slowest step on an unchanged
 * folder (the vectors come from the cache), and a long-lived caller such as the extension asks
 * many questions about the same files. Keyed by everything that decides the result.
 */
const memo = new WeakMap<TextTokenizer, Map<string, Chunk[]>>();
const MEMO_MAX_FILES = 20_000;

function memoKey(file: SourceFile, opts: ChunkOptions): string {
  return hashText(`${opts.maxTokens}\0${opts.header}\0${file.path}\0${file.startLine}\0${file.text}`);
}

/** The memoized chunks of `file`, with origin and absPath taken from `file`; undefined on a miss. */
export function memoLookup(file: SourceFile, tokenizer: TextTokenizer, opts: ChunkOptions): Chunk[] | undefined {
  const map = memo.get(tokenizer);
  if (!map) return undefined;
  const key = memoKey(file, opts);
  const chunks = map.get(key);
  if (!chunks) return undefined;
  map.delete(key); // re-inserted: Map order doubles as recency order
  map.set(key, chunks);
  return chunks.map((c) => ({ ...c, origin: file.origin, absPath: file.absPath }));
}

/** Remembers the chunks of `file` for the rest of the process. */
export function memoStore(file: SourceFile, tokenizer: TextTokenizer, opts: ChunkOptions, chunks: Chunk[]): void {
  let map = memo.get(tokenizer);
  if (!map) memo.set(tokenizer, (map = new Map()));
  const key = memoKey(file, opts);
  map.delete(key);
  map.set(key, chunks);
  if (map.size > MEMO_MAX_FILES) map.delete(map.keys().next().value as string);
}

/** chunkFile with the per-process memo; origin and absPath always come from `file`. */
export function chunkFileMemo(file: SourceFile, tokenizer: TextTokenizer, opts: ChunkOptions): Chunk[] {
  const hit = memoLookup(file, tokenizer, opts);
  if (hit) return hit;
  const chunks = chunkFile(file, tokenizer, opts);
  memoStore(file, tokenizer, opts, chunks);
  return chunks.map((c) => ({ ...c, origin: file.origin, absPath: file.absPath }));
}

export function chunkFiles(files: SourceFile[], tokenizer: TextTokenizer, opts: ChunkOptions, signal?: AbortSignal): Chunk[] {
  const out: Chunk[] = [];
  for (const f of files) {
    if (signal?.aborted) break; // the caller checks the signal and reports the cancellation
    out.push(...chunkFileMemo(f, tokenizer, opts));
  }
  return out;
}
