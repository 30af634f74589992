// Shared helpers for the pipeline tests: temp folders and a real Hugging Face tokenizer.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { after } from 'node:test';
import type { ArcEncoder, ArcModel, TextTokenizer } from '../../src/core/api';
import { loadModel } from '../../src/core/model';
import { loadTokenizer, type HfTokenizer } from '../../src/core/tokenizer';

export const TINY_ARC = path.resolve(__dirname, '../fixtures/tiny-arc');
export const hasTinyArc = (): boolean =>
  ['arc-model.json', 'encoder.onnx', 'embed.onnx', 'decoder.onnx', 'tokenizer.json'].every((f) => existsSync(path.join(TINY_ARC, f)));

/**
 * The real tiny-arc package for a test file: loaded on first use (CPU, one thread) and disposed
 * after the file's tests. `skip` says why when the fixture is missing.
 */
export function useTinyArc(): { skip: string | false; model: () => Promise<ArcModel> } {
  const skip = hasTinyArc() ? false : 'test/fixtures/tiny-arc is missing (made by tools/make_fixtures.py)';
  let loading: Promise<ArcModel> | undefined;
  after(async () => {
    await (await loading)?.dispose();
  });
  return { skip, model: () => (loading ??= loadModel(TINY_ARC, { provider: 'cpu', threads: 1 })) };
}

/** Runs a TypeScript file in a new Node process under tsx and collects its exit code and output. */
export function runTs(file: string, args: (string | number)[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file, ...args.map(String)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, out, err }));
  });
}

/** Runs a child script of this folder (runTs); resolves with the JSON it prints, rejects unless it exits 0. */
export async function runTsChild<T>(script: string, args: (string | number)[]): Promise<T> {
  const r = await runTs(path.join(__dirname, script), args);
  if (r.code !== 0) throw new Error(`child exited ${r.code}: ${r.err}`);
  return JSON.parse(r.out) as T;
}

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), `arc-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** GPT-2's byte -> printable character table used by byte-level BPE vocabularies. */
function bytesToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const table = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) table[b] = keep.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++);
  return table;
}

/**
 * A real byte-level BPE tokenizer.json (256 byte tokens plus a few merges, including "\n\n"
 * and runs of spaces, so that tokens do cross line boundaries as in real vocabularies).
 */
export function byteLevelTokenizerJson(): object {
  const chars = bytesToUnicode();
  const vocab: Record<string, number> = {};
  chars.forEach((c, i) => (vocab[c] = i));
  const merges: string[] = [];
  const add = (a: string, b: string) => {
    merges.push(`${a} ${b}`);
    vocab[a + b] = Object.keys(vocab).length;
  };
  const nl = chars[10];
  const sp = chars[32];
  add(nl, nl);
  add(sp, sp);
  add(sp + sp, sp + sp);
  add('d', 'e');
  add('de', 'f');
  add('r', 'e');
  add('re', 't');
  add('u', 'r');
  add('ret', 'ur');
  add('retur', 'n');
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges },
  };
}

function wrap(tok: Tokenizer): TextTokenizer {
  return {
    encode: (text) => (text === '' ? [] : tok.encode(text, { add_special_tokens: false }).ids),
    decode: (ids) => (ids.length === 0 ? '' : tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false })),
  };
}

export function byteLevelTokenizer(): TextTokenizer {
  return wrap(new Tokenizer(byteLevelTokenizerJson(), {}));
}

/** The tiny-arc fixture's tokenizer when it exists (a trained BPE), else null. */
export function fixtureTokenizer(): TextTokenizer | null {
  const file = path.join(TINY_ARC, 'tokenizer.json');
  if (!existsSync(file)) return null;
  return wrap(new Tokenizer(JSON.parse(readFileSync(file, 'utf8')), {}));
}

/** The model with `onEncode` called on every batch its encoder encodes (the real encoder does the work). */
export function withEncodeHook(model: ArcModel, onEncode: (chunks: number[][]) => void): ArcModel {
  const inner = model.encoder;
  const encoder: ArcEncoder = {
    poolingFactor: inner.poolingFactor,
    maxChunkTokens: inner.maxChunkTokens,
    dim: inner.dim,
    cont: inner.cont,
    encode: (chunks, signal) => {
      onEncode(chunks);
      return inner.encode(chunks, signal);
    },
  };
  return { ...model, encoder } as ArcModel;
}

/** The model with an encoder that counts the chunks it encodes. */
export function counting(model: ArcModel): { model: ArcModel; encoded: () => number } {
  let n = 0;
  return { model: withEncodeHook(model, (chunks) => (n += chunks.length)), encoded: () => n };
}

/** Every store entry file under a cache folder whose name matches `ext` (e.g. /\.arc[vil]$/): relative path -> sha256, sorted. */
export function entryHashes(dir: string, ext: RegExp): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (ext.test(e.name)) out.set(path.relative(dir, p), createHash('sha256').update(readFileSync(p)).digest('hex'));
    }
  };
  walk(dir);
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : 1)));
}

/**
 * Another instance of the model's tokenizer: the per-process chunk memo is per tokenizer object,
 * so chunking with the model's own would let a later pass take every file from the memo (no
 * tokenizer worker, no chunk index entries written) instead of chunking it.
 */
export function separateTokenizer(model: ArcModel): Promise<HfTokenizer> {
  return loadTokenizer((model.tokenizer as HfTokenizer).path);
}
