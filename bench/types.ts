// The JSON that one `arc-context bench` run writes (bench/results/*.json) and that
// bench/report.ts turns into BENCHMARKS.md. Times are milliseconds unless a name says otherwise.

export const BENCH_SCHEMA = 'arc-bench/1';

/** A section that did not run, and why (a missing tool, a model without a decoder, quick mode). */
export interface Skipped {
  skipped: string;
}

export interface Machine {
  cpu: string;
  cores: number;
  ramGiB: number;
  os: string;
  node: string;
  onnxruntime: string;
  provider: string;
  threads: number;
  /** 1-minute load average when the run started: other processes share these cores. */
  loadAverage: number[];
}

export interface ModelInfo {
  dir: string;
  name: string;
  identity: string;
  /** Last commit that touched the package folder, when it is in a git repository. */
  commit: string | null;
  commitSubject: string | null;
  /** Tracked files of the package differ from that commit. */
  commitDirty: boolean;
  encoder: { poolingFactor: number; maxChunkTokens: number; hiddenSize: number; outputSize: number };
  decoder: { hiddenSize: number; numLayers: number; vocabSize: number; contextLength: number } | null;
}

/** Median and every sample of one measured quantity. */
export interface Sampled {
  median: number;
  samples: number[];
}

/** One mode at one context size: medians over the repetitions. */
export interface ModeRun {
  ttftMs: Sampled;
  totalMs: Sampled;
  encodeMs: number;
  prefillMs: number;
  generatedTokens: number;
  /** Source tokens of the chunks that reached the decoder, and the decoder positions they took. */
  sourceTokensIncluded: number;
  contextPositions: number;
  chunksIncluded: number;
  chunksLeftOut: number;
  cacheHits: number;
}

export interface NotFit {
  fits: false;
  /** Decoder tokens of the whole context against the positions left for it. */
  contextTokens: number;
  budget: number;
}

/**
 * Full text fits the window but was not measured: the context has more source tokens than
 * `--full-max-tokens` (plain-text prefill that long takes too long on the machine, or too much
 * memory). No figure stands in for it, measured or extrapolated.
 */
export interface FullNotMeasured {
  measured: false;
  reason: 'above --full-max-tokens';
  fullMaxTokens: number;
  /** Decoder tokens of the whole context (at most budget: it would fit). */
  contextTokens: number;
  budget: number;
}

export interface LatencySize {
  targetTokens: number;
  sourceTokens: number;
  files: number;
  chunks: number;
  /** Chunking + tokenizing this context the first time (a fresh tokenizer; later questions reuse it). */
  tokenizeMs: Sampled;
  arcWarm: ModeRun;
  arcCold: ModeRun;
  /** Mixed mode (best chunks as text, the rest compressed), warm cache. Absent in older results. */
  mixedWarm?: ModeRun;
  full: ModeRun | NotFit | FullNotMeasured;
  /**
   * The context is the whole source tree, short of targetTokens: the tree (--source) holds fewer
   * source tokens than this size asks for. Absent when the context reached its size.
   */
  wholeTree?: true;
  /** full / arc of the median time to first token and total time, where full was measured. */
  ratios: { ttftFullOverArcWarm: number; ttftFullOverArcCold: number; totalFullOverArcWarm: number; totalFullOverArcCold: number } | null;
}

export interface LatencySection {
  source: string;
  question: string;
  maxNewTokens: number;
  budget: number;
  reps: number;
  /** --full-max-tokens: sizes with more source tokens measure arc and mixed only. Absent: no limit. */
  fullMaxTokens?: number;
  sizes: LatencySize[];
  /**
   * Requested sizes that were not measured, and why (the source tree ran out at a smaller size:
   * its context would repeat that one). Absent when every size was measured.
   */
  notMeasured?: { targetTokens: number; reason: string }[];
}

export interface EncoderRun {
  calls: number;
  secondsMedian: number;
  samples: number[];
  tokensPerSecond: number;
  /** Achieved GFLOP/s from the analytic FLOP count (null when no count is available). */
  gflops: number | null;
}

export interface TorchEncoder {
  torch: string;
  threads: number;
  blas: string;
  weights: string;
  config: Record<string, number>;
  batched: EncoderRun;
  single: EncoderRun;
  parity: null | { chunk: number; maxAbsDiff?: number; maxAbs?: number; error?: string };
  sgemm: { n: number; reps: number; gflops_best: number; gflops_median: number };
}

export interface EncoderSection {
  source: string;
  chunks: number;
  tokens: number;
  meanChunkTokens: number;
  threads: number;
  /** Matrix-multiply FLOPs per source token (from the config, counted by bench/torch_encoder.py). */
  flopsPerToken: number | null;
  onnx: { batched: EncoderRun; single: EncoderRun };
  torch: TorchEncoder | Skipped;
  /** Achieved FLOP/s over the measured sgemm peak (best of its repetitions). */
  ofPeak: { onnxBatched: number; torchBatched: number } | null;
}

export interface TokenizerRun {
  name: string;
  version: string | null;
  kind: string;
  inUse: boolean;
  status: 'measured' | 'not installed' | 'failed';
  note?: string;
  /** MB (10^6 bytes) of source per second, one file per call, in order. */
  mbPerSec?: number;
  /** The library's batch call (its own thread pool), where it has one. */
  batchMbPerSec?: number;
  /** Files whose ids equal the reference library's. */
  agreeingFiles?: number;
}

export interface TokenizerSection {
  corpus: { root: string; files: number; bytes: number };
  reps: number;
  libraries: TokenizerRun[];
  notes: string[];
}

export interface WorkspaceRun {
  scanMs: number;
  chunkMs: number;
  compressMs: number;
  totalMs: number;
  cacheHits: number;
  encoded: number;
  /** Files whose chunks came from the on-disk chunk index (not tokenized again). */
  filesFromIndex: number;
  /** Peak resident set size sampled during the run (MiB). */
  peakRssMiB: number;
  peakHeapMiB: number;
}

export interface WorkspaceSection {
  tree: string;
  files: number;
  bytes: number;
  chunks: number;
  sourceTokens: number;
  vectors: number;
  edited: string;
  /** Fresh tokenizer each run, as a new process (the CLI) sees it. */
  cold: WorkspaceRun;
  warm: WorkspaceRun;
  afterEdit: WorkspaceRun;
  /** Same tokenizer again: the chunk memo of a long-lived process (the extension). */
  warmSameProcess: WorkspaceRun;
  baselineRssMiB: number;
  /** process.resourceUsage().maxRSS at the end of the section: the whole process so far. */
  processMaxRssMiB: number;
}

export interface QualityExample {
  id: string;
  kind: string;
  question: string;
  expected: string;
  prediction: string;
  correct: boolean;
  error?: string;
}

export interface QualityModeFigures {
  n: number;
  exactMatch: number;
  perKind: Record<string, { n: number; exactMatch: number }>;
  /** Rows whose question ended in a pipeline error (scored as wrong). */
  errors: number;
  /** The first rows' predictions. */
  examples: QualityExample[];
}

export interface CurveFigures {
  exactMatch: number;
  answerIncluded: number;
  meanSourceTokens: number;
  meanIncludedTokens: number;
}

export interface CurvePoint {
  distractors: number;
  rows: number;
  arc: CurveFigures;
  full: CurveFigures;
  /** Absent in results written before mixed mode existed. */
  mixed?: CurveFigures;
}

/** One mode on the whole-package held-out set (rows asked like `ask --root FOLDER`). */
export interface RepoModeFigures {
  n: number;
  exactMatch: number;
  perKind: Record<string, { n: number; exactMatch: number }>;
  /** Share of rows whose answer chunk reached the decoder as text / compressed / not at all. */
  answerChunk: { text: number; compressed: number; absent: number };
  meanSourceTokens: number;
  meanContextPositions: number;
  medianTtftMs: number;
  errors: number;
}

export interface RepoQuality {
  data: string;
  rows: number;
  modes: Partial<Record<'mixed' | 'arc' | 'full' | 'none', RepoModeFigures>>;
  seconds: number;
}

export interface QualitySection {
  data: string;
  rows: number;
  /** mixed is absent in results written before mixed mode existed. */
  modes: Record<'arc' | 'full' | 'none', QualityModeFigures> & { mixed?: QualityModeFigures };
  curve: CurvePoint[];
  /** The whole-package set (heldout-repos.jsonl beside the model), when the package has one. */
  repos?: RepoQuality;
  seconds: number;
}

export interface ScalingRun {
  /** ask()'s time to first token (pipeline start to first answer token; model load excluded). */
  ttftMs: number;
  /** The whole CLI process: Node start, model load, the question. */
  wallMs: number;
  /** getrusage maxRSS of the process. */
  maxRssMiB: number;
  encodeMs: number;
  prefillMs: number;
  /** Chosen chunks that went through the encoder, and that came from the cache. */
  encoded: number;
  cacheHits: number;
  chunksIncluded: number;
}

export type ScalingTree =
  | { targetMB: number; skipped: string }
  | {
      targetMB: number;
      files: number;
      bytes: number;
      question: string;
      chunks: number | null;
      sourceTokens: number | null;
      /** First answer on an empty cache. */
      cold: ScalingRun;
      /** `arc-context compress` of the whole tree after that answer. */
      compress: { wallMs: number; maxRssMiB: number; encoded: number | null };
      warmMixed: ScalingRun;
      warmArc: ScalingRun;
      /**
       * The same question asked LONG_LIVED_ASKS times in the bench's own process (mixed mode), as
       * the extension asks in its long-lived host: ask()'s time to first token of each, in order;
       * the first loads the tree index into this process, the others find it there (and their
       * code compiled). Absent in runs made before it was measured.
       */
      longLived?: { ttftMs: number[] };
      /**
       * Then the same in-process question with a TreeWatch (change notifications, as the extension
       * holds one): the first ask after watching began scans and is remembered, the others find
       * nothing changed and reuse its scan. The figure is the median of the asks after the first.
       * Absent in runs made before it was measured or where no watcher loads.
       */
      longLivedWatched?: { ttftMs: number[] };
      /**
       * The CLI's own session (`arc-context ask --interactive --json`, one process): the same
       * question LONG_LIVED_ASKS times on standard input, mixed mode; ask()'s time to first token
       * of each, in order, and the process's peak RSS. The figure is the median of the asks after
       * the first. Absent in runs made before it was measured.
       */
      session?: { ttftMs: number[]; maxRssMiB: number };
    };

export interface ScalingSection {
  from: string;
  threads: number;
  trees: ScalingTree[];
  notes: string[];
}

export interface BenchResult {
  schema: typeof BENCH_SCHEMA;
  startedAt: string;
  finishedAt: string;
  seconds: number;
  command: string;
  quick: boolean;
  git: { commit: string | null; dirty: boolean | null };
  machine: Machine;
  model: ModelInfo;
  latency: LatencySection | Skipped;
  encoder: EncoderSection | Skipped;
  tokenizers: TokenizerSection | Skipped;
  workspace: WorkspaceSection | Skipped;
  quality: QualitySection | Skipped;
  /** Absent in results written before the section existed. */
  scaling?: ScalingSection | Skipped;
}

/**
 * Other runs BENCHMARKS.md shows beside the main one (bench/report-companions.json; paths relative
 * to the package): `realistic` - a latency run on a decoder of realistic shape (section 7);
 * `scaling` - runs whose scaling trees join section 6 (a tree size measured on its own, or after
 * the main run).
 */
export interface Companions {
  realistic?: string;
  scaling?: string[];
}

/** A companion run as read: its file and its result. */
export interface CompanionRun {
  file: string;
  result: BenchResult;
}

/** The full-text run of a latency size, when it was measured. */
export function fullMeasured(full: ModeRun | NotFit | FullNotMeasured): full is ModeRun {
  return 'ttftMs' in full;
}

export function isSkipped<T extends object>(v: T | Skipped): v is Skipped {
  return typeof (v as Skipped).skipped === 'string';
}
