// Which decoder answers: the package's own ONNX decoder (in-process) or a serving engine. The
// engine replaces only generate(); the encoder, the tokenizers, the prompt and the prefix stay
// local and identical, so ask() and the CLI need not know which decoder runs.
import type { ArcModel } from '../api';
import { ArcError } from '../errors';
import { EngineDecoder, ENGINE_KINDS, type EngineConfig, type EngineKind, type PrefixEmbedder } from './engine';

export type DecoderBackendName = 'onnx' | EngineKind;
export const DECODER_BACKENDS: readonly DecoderBackendName[] = ['onnx', ...ENGINE_KINDS];

export function isEngineKind(v: string): v is EngineKind {
  return (ENGINE_KINDS as readonly string[]).includes(v);
}

function hasPrefixEmbeddings(d: unknown): d is PrefixEmbedder {
  return typeof (d as { prefixEmbeddings?: unknown } | null)?.prefixEmbeddings === 'function';
}

/**
 * The model with its decoder's generate() on the engine. The package must have the decoder's
 * embed.onnx and tokenizer (they embed the question tokens and read the answer) and a manifest
 * decoder section (hidden size, window, BOS/EOS): the engine must serve that decoder.
 */
export function withEngineDecoder(model: ArcModel, engine: EngineConfig, fetchFn?: typeof fetch): ArcModel {
  const cfg = model.manifest.decoder;
  const local = model.decoder;
  if (!cfg || !local || !hasPrefixEmbeddings(local)) {
    throw new ArcError('model-missing', `The model package ${model.dir} has no decoder section and embed.onnx, so its prefix cannot be built for a ${engine.kind} server. Choose a package made for the served decoder (tools/import_decoder.py).`);
  }
  const decoder = new EngineDecoder(local, cfg, local.tokenizer ?? model.tokenizer, engine, fetchFn);
  return {
    dir: model.dir,
    manifest: model.manifest,
    provider: model.provider,
    identity: model.identity,
    tokenizer: model.tokenizer,
    encoder: model.encoder,
    decoder,
    dispose: () => model.dispose(),
  };
}
