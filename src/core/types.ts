// Types shared by the core pipeline, the CLI, the extension and the webview protocol.
// No runtime code and no `vscode` import here.

/**
 * How the context reaches the decoder: `mixed` reads the best-ranked chunks as text and the rest
 * as compressed vectors (selective expansion), `arc` reads every chunk compressed, `full` reads
 * plain text only, `none` is closed book.
 */
export type AnswerMode = 'mixed' | 'arc' | 'full' | 'none';

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
  /**
   * Files (by display path) that rank as open editors or attached files do (that origin's
   * ranking boost) while their text still comes from the folder scan and its tree snapshot: the
   * extension marks the editors in view this way instead of giving them as sources. Applies to
   * files of origin `workspace` only; the last entry for a path wins.
   */
  rankAs?: { path: string; origin: 'explicit' | 'open' }[];
  include?: string[];
  exclude?: string[];
  maxNewTokens?: number;
  temperature?: number;
  topP?: number;
  /**
   * Mixed mode: decoder tokens of context read as text (the best-ranked chunk is read as text
   * even when it alone is larger). Default: the manifest's prompt.mixedTextBudget, else 160.
   */
  textBudget?: number;
  /**
   * Extractive decoding (the answer must be a span of the context's text, see
   * GenerateOptions.answerFrom): true or false; default: the manifest's prompt.extractive.
   */
  extractive?: boolean;
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
  /** Source tokens of the chunks that reached the decoder, in whichever form (the kept part of a cut chunk). */
  sourceTokens: number;
  /** Of sourceTokens, those read as text. */
  textTokens: number;
  /** Vectors of the compressed chunks (their headers as text, with documentFormat.compressedHeader, are not vectors). */
  compressedVectors: number;
  /**
   * Decoder positions used by the context: per compressed chunk its header tokens (with
   * documentFormat.compressedHeader), vectors and one <Cont>; plus text tokens.
   */
  contextPositions: number;
  /** sourceTokens / contextPositions (0 when there is no context): about x in arc mode, 1 in full. */
  ratio: number;
  encodeMs: number;
  prefillMs: number;
  ttftMs: number;
  totalMs: number;
  tokensPerSecond: number;
  generatedTokens: number;
  cacheHits: number;
  cacheMisses: number;
  chunksIncluded: number;
  /** Of chunksIncluded, those read as text and those read compressed. */
  textChunks: number;
  compressedChunks: number;
  chunksLeftOut: number;
  /** Source tokens dropped because they did not fit (full mode truncation). */
  truncatedTokens: number;
  /** Set when a serving engine decoded, e.g. "vllm @ host:8000" (the provider then ran the encoder only). */
  decoderBackend?: string;
  /** Engine only: request sent -> first answer text (network + the server's prefill). */
  serverTtftMs?: number;
}

export interface FileCompression {
  path: string;
  tokens: number;
  vectors: number;
  chunks: number;
  included: number; // chunks of this file that reached the decoder
  textChunks: number; // of those, chunks read as text (the rest were read compressed)
}

export type SkipReason = 'gitignored' | 'excluded' | 'too-large' | 'binary' | 'minified' | 'symlink-outside' | 'unreadable' | 'not-utf8';

export type AskEvent =
  | { type: 'progress'; stage: 'scan' | 'tokenize' | 'encode' | 'select' | 'prefill' | 'generate'; message: string; done?: number; total?: number }
  | { type: 'skipped'; counts: Partial<Record<SkipReason, number>>; examples: { path: string; reason: SkipReason }[] }
  /**
   * What reaches the decoder. `included` merges every included chunk; `text` and `compressed`
   * merge the chunks read in each form separately (a text chunk and an adjacent compressed
   * chunk of one file stay apart).
   */
  | { type: 'selection'; included: Citation[]; text: Citation[]; compressed: Citation[]; leftOut: Citation[]; files: FileCompression[]; budget: number }
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
  /** The configured decoder server (vLLM / SGLang) failed or refused; the message says how. */
  | 'decoder-server'
  | 'internal';
