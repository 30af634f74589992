// Types shared by the core pipeline, the CLI, the extension and the webview protocol.
// No runtime code and no `vscode` import here.

export type AnswerMode = 'arc' | 'full' | 'none';

/** A piece of source text given by the caller (a file on disk, an unsaved editor, a selection). */
export interface SourceInput {
  /** Path shown to the model and in citations: workspace-relative with forward slashes. */
  path: string;
  /** Absolute path on disk when there is one (used to open citations). */
  absPath?: string;
  /** Text to use instead of reading the disk (unsaved editor contents, a selection). */
  text?: string;
  /** 1-based line where `text` starts inside the file (selections). */
  startLine?: number;
  /** Why the caller gave it; explicit/open/selected sources get a ranking boost. */
  origin: 'explicit' | 'open' | 'selection' | 'workspace';
}

export interface AskRequest {
  question: string;
  mode: AnswerMode;
  /** Folders to scan (respecting .gitignore and globs). */
  roots?: string[];
  /** Explicit files, open editors and selections. */
  sources?: SourceInput[];
  include?: string[];
  exclude?: string[];
  maxNewTokens?: number;
  temperature?: number;
  topP?: number;
}

export interface Citation {
  path: string;
  absPath?: string;
  startLine: number; // 1-based, inclusive
  endLine: number; // 1-based, inclusive
}

export interface AskStats {
  mode: AnswerMode;
  provider: string;
  sourceTokens: number;
  compressedVectors: number;
  /** Decoder positions used by the context (vectors + <Cont> in arc mode, tokens in full). */
  contextPositions: number;
  ratio: number; // sourceTokens / compressedVectors (arc), 1 for full, 0 for none
  encodeMs: number;
  prefillMs: number;
  ttftMs: number;
  totalMs: number;
  tokensPerSecond: number;
  generatedTokens: number;
  cacheHits: number;
  cacheMisses: number;
  chunksIncluded: number;
  chunksLeftOut: number;
  /** Source tokens dropped because they did not fit (full mode truncation). */
  truncatedTokens: number;
}

export interface FileCompression {
  path: string;
  tokens: number;
  vectors: number;
  chunks: number;
  included: number; // chunks of this file that reached the decoder
}

export type SkipReason = 'gitignored' | 'excluded' | 'too-large' | 'binary' | 'minified' | 'symlink-outside' | 'unreadable' | 'not-utf8';

export type AskEvent =
  | { type: 'progress'; stage: 'scan' | 'tokenize' | 'encode' | 'select' | 'prefill' | 'generate'; message: string; done?: number; total?: number }
  | { type: 'skipped'; counts: Partial<Record<SkipReason, number>>; examples: { path: string; reason: SkipReason }[] }
  | { type: 'selection'; included: Citation[]; leftOut: Citation[]; files: FileCompression[]; budget: number }
  | { type: 'token'; text: string }
  | { type: 'citations'; citations: Citation[] }
  | { type: 'stats'; stats: AskStats }
  | { type: 'done'; answer: string; stats: AskStats }
  | { type: 'error'; code: ArcErrorCode; message: string };

export type ArcErrorCode =
  | 'model-missing'
  | 'model-corrupt'
  | 'provider-unavailable'
  | 'no-sources'
  | 'empty-question'
  | 'cancelled'
  | 'context-too-large'
  | 'internal';
