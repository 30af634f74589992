// The contract between the inference core (model/tokenizer/encoder/generator), the context
// pipeline (ask()) and its callers (CLI, extension). Implementations live in sibling modules.
import type { TreeWatch } from './context/treeWatch';
import type { AnswerMode, AskEvent, AskRequest } from './types';

export interface Manifest {
  format: 'arc-model/1';
  name: string;
  description?: string;
  license?: string;
  encoder: {
    file: string;
    tokenizer: string;
    poolingFactor: number;
    maxChunkTokens: number;
    hiddenSize: number;
    outputSize: number;
    decoderIndex: number;
    /** Prepend decoder.bosTokenId to every chunk before encoding (needs a decoder). */
    addBos: boolean;
    source?: string;
  };
  decoder: null | {
    file: string;
    embed: string;
    tokenizer: string;
    hiddenSize: number;
    numLayers: number;
    numHeads: number;
    numKvHeads: number;
    headDim: number;
    vocabSize: number;
    contextLength: number;
    bosTokenId: number;
    eosTokenId: number;
  };
  prompt: {
    questionTemplate: string;
    stop: string[];
    maxNewTokens: number;
    /** Mixed mode's text budget in decoder tokens, as measured for this model (optional). */
    mixedTextBudget?: number;
    /**
     * true: extractive decoding by default for this model: the answer must be a span of the text
     * of the context it read (GenerateOptions.answerFrom). For models that answer lookups only.
     */
    extractive?: boolean;
    /**
     * Order of the context chunks in the prefix: "document" (absent: path, then line) or "rank"
     * (best-ranked first; in mixed mode the text chunks, then the compressed ones). docs/DESIGN.md.
     */
    contextOrder?: 'document' | 'rank';
    /**
     * Extractive answers quote at most this many chunks, the best-ranked of those they may quote
     * (prompt.ts quotableChunks); absent: all of them.
     */
    quoteChunks?: number;
  };
  documentFormat: {
    header: string;
    /**
     * true: in arc and mixed mode each compressed chunk is preceded in the prefix by the decoder
     * token ids of its rendered header (docs/DESIGN.md). Absent means false.
     */
    compressedHeader?: boolean;
  };
}

export type ProviderName = 'cuda' | 'webgpu' | 'dml' | 'coreml' | 'cpu';

export interface LoadOptions {
  /** 'auto' walks the ladder cuda -> webgpu -> dml/coreml -> cpu. */
  provider?: ProviderName | 'auto';
  threads?: number;
  /** Called with one line per skipped provider and the one chosen. */
  log?: (line: string) => void;
  /**
   * false: do not open decoder.onnx (it need not exist); the decoder can build prefixes
   * (embed.onnx) but not generate. For decoders served by an engine (src/core/remote).
   */
  decoderGraph?: boolean;
}

export interface TextTokenizer {
  encode(text: string): number[];
  decode(ids: number[]): string;
}

/** Compressed vectors of one chunk: `vectors` rows of `dim` floats, row-major. */
export interface CompressedChunk {
  vectors: Float32Array; // length = count * dim
  count: number;
  dim: number;
  /**
   * Token range [start, end) of the encoder input that each vector covers. The input is the
   * chunk's token ids, preceded by the BOS token when encoder.addBos is set (then the ranges
   * span ids.length + 1 tokens and the first group includes the BOS).
   */
  groups: [number, number][];
}

export interface ArcEncoder {
  readonly poolingFactor: number;
  /** Longest chunk encode() accepts (manifest maxChunkTokens, less 1 when addBos adds a BOS). */
  readonly maxChunkTokens: number;
  readonly dim: number;
  /** The projected <Cont> vector (dim floats). */
  readonly cont: Float32Array;
  /** Encode token sequences (each <= maxChunkTokens); batches where that is faster. */
  encode(chunks: number[][], signal?: AbortSignal): Promise<CompressedChunk[]>;
}

/** One element of the decoder prefix, in order. */
export type PrefixPart =
  | { kind: 'tokens'; ids: number[] }
  | { kind: 'vectors'; data: Float32Array; count: number };

export interface GenerateOptions {
  maxNewTokens: number;
  temperature?: number; // 0 or undefined = greedy
  topP?: number;
  seed?: number;
  stop?: string[];
  signal?: AbortSignal;
  /**
   * Extractive decoding: the answer (its text before any stop string) must be a substring of this
   * text; a token that would take it elsewhere is passed over for the next most likely one, and
   * when none of the likeliest tokens keeps it a substring, the answer ends. Only the in-process
   * decoder applies it; a serving engine picks its own tokens.
   */
  answerFrom?: string;
}

export interface GenerationTimings {
  prefillMs: number;
  ttftMs: number;
  totalMs: number;
  generatedTokens: number;
  tokensPerSecond: number;
  prefixPositions: number;
  /** Set when a serving engine decoded (e.g. "vllm @ host:8000"); absent for the in-process decoder. */
  backend?: string;
  /** Engine only: from sending the request to the first answer text (network + server prefill). */
  serverTtftMs?: number;
}

export interface ArcDecoder {
  readonly contextLength: number;
  /**
   * The decoder's own tokenizer (prompt text in, answer text out) when it differs from
   * ArcModel.tokenizer; absent means the package uses one tokenizer for both.
   */
  readonly tokenizer?: TextTokenizer;
  /** Streams decoded text pieces; the final value carries the timings. */
  generate(prefix: PrefixPart[], opts: GenerateOptions): AsyncGenerator<string, GenerationTimings>;
}

export interface ArcModel {
  readonly dir: string;
  readonly manifest: Manifest;
  /** Provider actually used, e.g. 'cpu'. */
  readonly provider: ProviderName;
  /** Stable identity for cache keys (manifest + encoder file hash). */
  readonly identity: string;
  readonly tokenizer: TextTokenizer;
  readonly encoder: ArcEncoder;
  /** null for encoder-only packages. */
  readonly decoder: ArcDecoder | null;
  dispose(): Promise<void>;
}

/** Options of the pipeline entry point; every field is optional. */
export interface AskOptions {
  /** Aborting ends the stream with an `error` event of code 'cancelled'. */
  signal?: AbortSignal;
  /** Cache directory for compressed vectors; null or undefined runs without a cache. */
  cacheDir?: string | null;
  /** Cache size cap in bytes (default 2 GiB); only used with a cacheDir. */
  cacheMaxBytes?: number;
  /** Per-file size cap in bytes (default 1 MiB); larger files are skipped as 'too-large'. */
  maxFileBytes?: number;
  /** Extra diagnostics (cache repairs); they are also sent as progress events. */
  log?: (line: string) => void;
  /**
   * Change notifications of a long-lived host (context/treeWatch.ts): with a cache folder, a
   * question on roots nothing touched since the last question's scan reuses that scan instead
   * of a stat per file. Questions with caller-given sources always scan.
   */
  watch?: TreeWatch;
}

/** Signature of the pipeline entry point (src/core/ask.ts). */
export type AskFn = (model: ArcModel, request: AskRequest, options?: AskOptions) => AsyncGenerator<AskEvent, void>;

export type { AnswerMode };
