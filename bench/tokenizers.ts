// Tokenizer throughput (MB of source per second) of the tokenizer in use (src/core/tokenizer.ts:
// a piece cache over @huggingface/tokenizers), of that library's own encode (the reference ids),
// and of the alternatives that load the same tokenizer.json: Hugging Face's
// Rust library through N-API (`tokenizers`, `@anush008/tokenizers`) and a WebAssembly build
// (`@mlc-ai/web-tokenizers`). The alternatives are optional: `npm install --prefix bench`
// installs them into bench/node_modules (bench/package.json); missing ones are reported as such.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { SourceFile } from '../src/core/context/sources';
import { errorMessage } from '../src/core/errors';
import { loadTokenizer } from '../src/core/tokenizer';
import type { TokenizerRun, TokenizerSection } from './types';
import { bytesOf, median, round } from './util';

export interface TokenizerOptions {
  tokenizerPath: string;
  reps: number;
  benchDir: string;
  log: (line: string) => void;
}

/** What the N-API builds of Hugging Face tokenizers offer (both packages share this API). */
interface NapiEncoding {
  getIds(): number[];
}
interface NapiTokenizer {
  encode(text: string, pair: null, options: { addSpecialTokens: boolean }): Promise<NapiEncoding>;
  encodeBatch(texts: string[], options: { addSpecialTokens: boolean }): Promise<NapiEncoding[]>;
}
interface NapiModule {
  Tokenizer: { fromFile(file: string): NapiTokenizer };
}

function isNapiModule(m: unknown): m is NapiModule {
  const t = (m as { Tokenizer?: { fromFile?: unknown } } | null)?.Tokenizer;
  return typeof t?.fromFile === 'function';
}

interface Candidate {
  name: string;
  kind: string;
}

const NAPI: Candidate[] = [
  { name: 'tokenizers', kind: 'N-API (Hugging Face tokenizers, Rust)' },
  { name: '@anush008/tokenizers', kind: 'N-API (Hugging Face tokenizers, Rust)' },
];
const WASM: Candidate = { name: '@mlc-ai/web-tokenizers', kind: 'WebAssembly (tokenizers-cpp)' };

/** @mlc-ai/web-tokenizers: Tokenizer.fromJSON(bytes of tokenizer.json), encode(text) -> Int32Array. */
interface WasmModule {
  Tokenizer: { fromJSON(json: ArrayBuffer): Promise<{ encode(text: string): Int32Array }> };
}

function isWasmModule(m: unknown): m is WasmModule {
  const t = (m as { Tokenizer?: { fromJSON?: unknown } } | null)?.Tokenizer;
  return typeof t?.fromJSON === 'function';
}

/** The installed version; packages whose "exports" hide package.json are found from their entry point. */
function versionOf(req: NodeJS.Require, name: string): string | null {
  const read = (file: string): { name?: string; version?: string } => JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
  try {
    return read(req.resolve(`${name}/package.json`)).version ?? null;
  } catch {
    // Hidden by "exports": walk up from the entry point.
  }
  try {
    let dir = path.dirname(req.resolve(name));
    for (let i = 0; i < 6; i++, dir = path.dirname(dir)) {
      const pj = path.join(dir, 'package.json');
      if (existsSync(pj) && read(pj).name === name) return read(pj).version ?? null;
    }
  } catch {
    // Not installed.
  }
  return null;
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

type Base = Pick<TokenizerRun, 'name' | 'version' | 'kind' | 'inUse'>;

/** A library that loaded: one file per call (returns the ids), and its batch call if it has one. */
interface Driver {
  base: Base;
  /** Run before each timed repetition, outside the time (a fresh tokenizer: empty caches). */
  prepare?: () => Promise<void>;
  encodeEach: () => Promise<number[][]>;
  encodeBatch?: () => Promise<void>;
}

function napiDriver(req: NodeJS.Require, c: Candidate, tokenizerPath: string, texts: string[]): Driver | TokenizerRun {
  const base: Base = { name: c.name, version: versionOf(req, c.name), kind: c.kind, inUse: false };
  let mod: unknown;
  try {
    mod = req(c.name);
  } catch (e) {
    const missing = (e as { code?: unknown }).code === 'MODULE_NOT_FOUND';
    return { ...base, status: missing ? 'not installed' : 'failed', note: missing ? 'npm install --prefix bench' : errorMessage(e) };
  }
  try {
    if (!isNapiModule(mod)) throw new Error('no Tokenizer.fromFile export');
    const tok = mod.Tokenizer.fromFile(tokenizerPath);
    const opt = { addSpecialTokens: false };
    return {
      base,
      encodeEach: async () => {
        const ids: number[][] = [];
        for (const t of texts) ids.push((await tok.encode(t, null, opt)).getIds());
        return ids;
      },
      encodeBatch: async () => {
        await tok.encodeBatch(texts, opt);
      },
    };
  } catch (e) {
    return { ...base, status: 'failed', note: errorMessage(e) };
  }
}

async function wasmDriver(req: NodeJS.Require, tokenizerPath: string, texts: string[]): Promise<Driver | TokenizerRun> {
  const base: Base = { name: WASM.name, version: versionOf(req, WASM.name), kind: WASM.kind, inUse: false };
  if (base.version === null) return { ...base, status: 'not installed', note: 'npm install --prefix bench' };
  let mod: unknown;
  try {
    // An ES module package: import() by file URL.
    mod = await import(pathToFileURL(req.resolve(WASM.name)).href);
  } catch (e) {
    return { ...base, status: 'failed', note: `does not load in Node ${process.version}: ${errorMessage(e).slice(0, 120)}` };
  }
  try {
    const m = (mod as { default?: unknown }).default ?? mod;
    if (!isWasmModule(m)) throw new Error('no Tokenizer.fromJSON export');
    const bytes = readFileSync(tokenizerPath);
    const tok = await m.Tokenizer.fromJSON(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    return { base, encodeEach: async () => texts.map((t) => Array.from(tok.encode(t))) };
  } catch (e) {
    return { ...base, status: 'failed', note: errorMessage(e) };
  }
}

async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

export async function runTokenizers(root: string, corpus: readonly SourceFile[], opts: TokenizerOptions): Promise<TokenizerSection> {
  const texts = corpus.map((f) => f.text);
  const mb = bytesOf(corpus) / 1e6;
  // Resolved from bench/ first (optional installs), then the project's own node_modules.
  const req = createRequire(path.join(opts.benchDir, 'package.json'));
  const hf = await loadTokenizer(opts.tokenizerPath);
  const library: Driver = {
    base: { name: '@huggingface/tokenizers', version: versionOf(req, '@huggingface/tokenizers'), kind: 'pure JavaScript, its own encode (the reference ids)', inUse: false },
    encodeEach: () => Promise.resolve(texts.map((t) => hf.encodeReference(t))),
  };
  // The tokenizer in use starts each repetition fresh, as a new process does: its piece cache
  // (and the library's BPE cache under it) empty, so the figure includes learning the pieces.
  let fresh = await loadTokenizer(opts.tokenizerPath);
  const inUse: Driver = {
    base: { name: 'piece cache over @huggingface/tokenizers', version: null, kind: `pure JavaScript (src/core/tokenizer.ts${fresh.fastPath ? '' : '; this tokenizer.json is outside the fast path shape'}), fresh tokenizer per repetition`, inUse: true },
    prepare: async () => {
      fresh = await loadTokenizer(opts.tokenizerPath);
    },
    encodeEach: () => Promise.resolve(texts.map((t) => fresh.encode(t))),
  };
  const loaded = [inUse, library, ...NAPI.map((c) => napiDriver(req, c, opts.tokenizerPath, texts)), await wasmDriver(req, opts.tokenizerPath, texts)];
  const drivers = loaded.filter((d): d is Driver => 'encodeEach' in d);

  // Warm-up (JIT, caches, thread pools), which also gives the ids to compare.
  const reference = await library.encodeEach();
  const agreeing = new Map<Driver, number>();
  for (const d of drivers) {
    const ids = d === library ? reference : await d.encodeEach();
    agreeing.set(d, ids.filter((x, i) => sameIds(x, reference[i]!)).length);
    await d.encodeBatch?.();
  }
  // Repetitions interleaved across the libraries, so a change in the machine's load hits all.
  const each = new Map<Driver, number[]>(drivers.map((d) => [d, []]));
  const batch = new Map<Driver, number[]>(drivers.map((d) => [d, []]));
  for (let r = 0; r < opts.reps; r++) {
    for (const d of drivers) {
      await d.prepare?.();
      each.get(d)!.push(await seconds(d.encodeEach));
      if (d.encodeBatch) batch.get(d)!.push(await seconds(d.encodeBatch));
    }
  }
  const libraries: TokenizerRun[] = loaded.map((d) => {
    if (!('encodeEach' in d)) return d;
    const run: TokenizerRun = { ...d.base, status: 'measured', mbPerSec: round(mb / median(each.get(d)!), 3), agreeingFiles: agreeing.get(d) ?? 0 };
    if (d.encodeBatch) run.batchMbPerSec = round(mb / median(batch.get(d)!), 3);
    opts.log(`tokenizers: ${run.name} ${run.mbPerSec} MB/s${run.batchMbPerSec !== undefined ? ` (batch ${run.batchMbPerSec} MB/s)` : ''} on ${round(mb, 2)} MB`);
    return run;
  });
  return {
    corpus: { root, files: corpus.length, bytes: bytesOf(corpus) },
    reps: opts.reps,
    libraries,
    notes: [
      '"same ids" compares with @huggingface/tokenizers\' own encode; test/unit/core-tokenizer.test.ts checks the piece cache against it on real files and edge cases.',
      'One file per call, in order; "batch" is the library\'s own batch call, which spreads files over its thread pool (RAYON_NUM_THREADS, default: all cores).',
      'Each library is warmed up once (the tokenizer in use then starts every repetition with a new, empty tokenizer); the repetitions are interleaved across libraries.',
      'tiktoken / js-tiktoken / gpt-tokenizer (WASM, pure JS) are faster BPE engines but read tiktoken rank files with their own split rules, not a Hugging Face tokenizer.json; they cannot run this tokenizer without a conversion, so they are not measured.',
    ],
  };
}
