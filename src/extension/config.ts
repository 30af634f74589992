// Settings of the extension as one typed value, plus the pure rules that turn VS Code
// configuration into what the core needs. No `vscode` import here so that these rules are unit
// tested with plain objects (the adapter in settings.ts does the reading).
import * as path from 'node:path';
import type { ProviderName } from '../core/api';
import type { DecoderBackendName } from '../core/remote/backend';
import type { EngineConfig } from '../core/remote/engine';
import type { AnswerMode } from '../core/types';

export const CONFIG_SECTION = 'arcContext';
export const DEFAULT_MODEL_FOLDER = path.join('models', 'arc-tiny-code');

export interface ArcSettings {
  /** As configured (user/machine level only); '' means the bundled model. */
  modelPath: string;
  provider: ProviderName | 'auto';
  /** 0 lets ONNX Runtime decide. */
  threads: number;
  /** 0 uses the model's own default. */
  maxNewTokens: number;
  temperature: number;
  include: string[];
  exclude: string[];
  cacheSizeMB: number;
  answerMode: AnswerMode;
  /** Mixed mode's text budget in tokens; 0 uses the model's (its manifest's prompt.mixedTextBudget, else 160). */
  mixedTextBudget: number;
  /** Extractive decoding (the answer is a span of the code read), free decoding, or the model's default (its manifest's prompt.extractive). */
  decoding: 'model' | 'extractive' | 'free';
  /** Which decoder answers: the package's ONNX decoder in-process, or a serving engine (machine scope). */
  decoderBackend: DecoderBackendName;
  /** The engine's address (machine scope); nothing is sent unless backend and URL are set. */
  decoderUrl: string;
  /** vLLM's served model name; '' uses the server's only model (machine scope). */
  servedModel: string;
  /** Watch the folders asked about, so that a question on an unchanged tree skips the file scan. */
  watchFiles: boolean;
}

const PROVIDERS = ['auto', 'cuda', 'webgpu', 'dml', 'coreml', 'cpu'] as const;
const MODES = ['mixed', 'arc', 'full', 'none'] as const;
const BACKENDS = ['onnx', 'vllm', 'sglang'] as const;

function oneOf<T extends string>(v: unknown, values: readonly T[], fallback: T): T {
  return typeof v === 'string' && (values as readonly string[]).includes(v) ? (v as T) : fallback;
}

function clampInt(v: unknown, min: number, max: number, fallback: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) return fallback;
  return Math.min(max, Math.max(min, Math.round(v)));
}

function stringList(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string' && s.trim() !== '') : [];
}

/**
 * Settings from raw values. Hand-edited settings.json can hold anything, so every field is
 * checked and out-of-range values fall back to the defaults declared in package.json.
 */
export function normalizeSettings(get: (key: string) => unknown): ArcSettings {
  const temperature = get('temperature');
  return {
    modelPath: typeof get('modelPath') === 'string' ? (get('modelPath') as string).trim() : '',
    provider: oneOf(get('executionProvider'), PROVIDERS, 'auto'),
    threads: clampInt(get('threads'), 0, 256, 0),
    maxNewTokens: clampInt(get('maxNewTokens'), 0, 4096, 0),
    temperature:
      typeof temperature === 'number' && Number.isFinite(temperature) ? Math.min(2, Math.max(0, temperature)) : 0,
    include: stringList(get('include')),
    exclude: stringList(get('exclude')),
    cacheSizeMB: clampInt(get('cacheSizeMB'), 16, 65536, 512),
    answerMode: oneOf(get('answerMode'), MODES, 'mixed'),
    mixedTextBudget: clampInt(get('mixedTextBudget'), 0, 65536, 0),
    decoding: oneOf(get('decoding'), ['model', 'extractive', 'free'] as const, 'model'),
    decoderBackend: oneOf(get('decoderBackend'), BACKENDS, 'onnx'),
    decoderUrl: typeof get('decoderUrl') === 'string' ? (get('decoderUrl') as string).trim() : '',
    servedModel: typeof get('servedModel') === 'string' ? (get('servedModel') as string).trim() : '',
    watchFiles: get('watchFiles') !== false,
  };
}

/**
 * The serving engine the settings name, or null for the in-process decoder. An engine backend
 * without a URL is an error the user must fix, not a silent fallback to ONNX.
 */
export function engineSettings(s: Pick<ArcSettings, 'decoderBackend' | 'decoderUrl' | 'servedModel'>, apiKey: string | undefined): { ok: true; engine: EngineConfig | null } | { ok: false; reason: string } {
  if (s.decoderBackend === 'onnx') return { ok: true, engine: null };
  if (s.decoderUrl === '') {
    return { ok: false, reason: `arcContext.decoderBackend is "${s.decoderBackend}" but arcContext.decoderUrl is empty. Set the server address (e.g. http://127.0.0.1:8000) or set the backend to onnx.` };
  }
  const engine: EngineConfig = { kind: s.decoderBackend, url: s.decoderUrl };
  if (s.servedModel) engine.servedModel = s.servedModel;
  if (apiKey) engine.apiKey = apiKey;
  return { ok: true, engine };
}

export type ModelDirChoice =
  | { ok: true; dir: string; bundled: boolean }
  | { ok: false; reason: string };

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * Which model folder to load. `userValue` must come from user/machine settings only (never a
 * workspace value). In an untrusted workspace a model folder inside the workspace is refused as
 * well: an ONNX file can reference external data by path, so loading one the workspace supplies
 * lets an untrusted repository choose what is read and run.
 */
export function chooseModelDir(opts: {
  userValue: string;
  extensionPath: string;
  trusted: boolean;
  workspaceFolders: string[];
  homeDir?: string;
}): ModelDirChoice {
  const bundled = path.join(opts.extensionPath, DEFAULT_MODEL_FOLDER);
  let value = opts.userValue.trim();
  if (value === '') return { ok: true, dir: bundled, bundled: true };
  if (opts.homeDir && (value === '~' || value.startsWith('~/') || value.startsWith('~\\'))) {
    value = path.join(opts.homeDir, value.slice(1));
  }
  if (!path.isAbsolute(value)) {
    return { ok: false, reason: `arcContext.modelPath must be an absolute folder path (got "${opts.userValue}").` };
  }
  const dir = path.normalize(value);
  if (!opts.trusted && opts.workspaceFolders.some((f) => isInside(dir, f))) {
    return {
      ok: false,
      reason: 'This workspace is not trusted, so a model folder inside it is not loaded. Trust the workspace or choose a model elsewhere.',
    };
  }
  return { ok: true, dir, bundled: false };
}

/**
 * `files.exclude` / `search.exclude` values: `true` excludes the glob, `false` re-includes it,
 * and `{ when: ... }` (a sibling-file condition) cannot be expressed as a plain glob; those are
 * reported so the caller can log them instead of silently dropping them.
 */
export function excludeGlobs(...maps: unknown[]): { globs: string[]; conditional: string[] } {
  const on = new Set<string>();
  const conditional: string[] = [];
  for (const m of maps) {
    if (typeof m !== 'object' || m === null) continue;
    for (const [glob, v] of Object.entries(m as Record<string, unknown>)) {
      if (v === true) on.add(glob);
      else if (v === false) on.delete(glob);
      else if (typeof v === 'object' && v !== null) conditional.push(glob);
    }
  }
  return { globs: [...on], conditional };
}

/** Expands `a/{b,c}/*.{js,ts}` into plain globs, because VS Code's glob syntax has no nested groups. */
export function expandBraces(glob: string): string[] {
  const open = glob.indexOf('{');
  if (open < 0) return [glob];
  let depth = 0;
  const parts: string[] = [];
  let start = open + 1;
  for (let i = open; i < glob.length; i++) {
    const ch = glob[i];
    if (ch === '{') depth++;
    else if (ch === '}' && --depth === 0) {
      parts.push(glob.slice(start, i));
      const head = glob.slice(0, open);
      const tail = glob.slice(i + 1);
      return parts.flatMap((p) => expandBraces(head + p + tail));
    } else if (ch === ',' && depth === 1) {
      parts.push(glob.slice(start, i));
      start = i + 1;
    }
  }
  return [glob]; // unbalanced: leave it to the glob engine to reject
}

/**
 * One glob for `workspace.findFiles`' exclude argument. Passing any exclude there replaces the
 * default files.exclude handling, so files.exclude, search.exclude and our own list are merged
 * here into a single `{a,b,c}` group (members are brace-expanded first: groups cannot nest).
 */
export function combineGlobs(globs: string[]): string | undefined {
  const unique = [...new Set(globs.flatMap((g) => expandBraces(g.trim())).filter((g) => g !== ''))];
  if (unique.length === 0) return undefined;
  if (unique.length === 1) return unique[0];
  return `{${unique.join(',')}}`;
}
