// Public surface of the inference core. Callers (context pipeline, CLI, extension) import from
// here; the modules behind it may change shape.
export type {
  ArcDecoder,
  ArcEncoder,
  ArcModel,
  AskFn,
  CompressedChunk,
  GenerateOptions,
  GenerationTimings,
  LoadOptions,
  Manifest,
  PrefixPart,
  ProviderName,
  TextTokenizer,
} from './api';
export { ArcError, errorMessage, isArcError } from './errors';
export { loadModel } from './model';
export { readManifest, validateManifest, MANIFEST_FILE } from './manifest';
export { isProviderName, providerLadder, PROVIDER_NAMES } from './providers';
export { loadTokenizer } from './tokenizer';
export { groupSizes, groupRanges } from './encoder';
export { prefixLength } from './decoder';
export {
  buildPrefix,
  chunkHeader,
  compressedCoster,
  compressedHeaderIds,
  contextBudget,
  DEFAULT_MIXED_TEXT_BUDGET,
  decoderTokenizer,
  fitCompressed,
  mixedTextBudget,
  questionText,
  renderChunk,
  splitDocument,
  truncateTokens,
  type BuiltPrefix,
  type DocumentChunk,
  type MixedContext,
  type PlacedChunk,
  type PlainChunk,
  type TruncationReport,
} from './prompt';
