// The decoder backend from the command line: --backend vllm|sglang --decoder-url URL
// [--served-model NAME], or the same from ARC_DECODER_BACKEND / ARC_DECODER_URL /
// ARC_SERVED_MODEL; the API key only from ARC_DECODER_API_KEY (a flag would show it in `ps`).
// Nothing is sent anywhere unless a backend and URL are given.
import type { ArcModel } from '../core/api';
import { isEngineKind, withEngineDecoder } from '../core/remote/backend';
import { normalizeBaseUrl, type EngineConfig } from '../core/remote/engine';
import { UsageError } from './args';

export const ENGINE_OPTIONS = {
  backend: { type: 'string' },
  'decoder-url': { type: 'string' },
  'served-model': { type: 'string' },
} as const;

export const ENGINE_USAGE = `  --backend B        decoder: onnx (default, in-process), vllm or sglang (a serving engine; env ARC_DECODER_BACKEND)
  --decoder-url URL  the engine's address, e.g. http://127.0.0.1:8000 (env ARC_DECODER_URL); the prefix
                     (compressed vectors + question embeddings) is sent there, nothing else
  --served-model M   vLLM's served model name (env ARC_SERVED_MODEL; default: the server's only model)
                     API key: env ARC_DECODER_API_KEY`;

type Env = Record<string, string | undefined>;

/** The engine to decode on, or null for the in-process ONNX decoder. */
export function engineFrom(values: { backend?: string; 'decoder-url'?: string; 'served-model'?: string }, env: Env = process.env): EngineConfig | null {
  const backend = (values.backend ?? env.ARC_DECODER_BACKEND ?? 'onnx').trim();
  const url = (values['decoder-url'] ?? env.ARC_DECODER_URL ?? '').trim();
  if (backend === 'onnx') {
    if (values['decoder-url'] !== undefined) throw new UsageError('--decoder-url needs --backend vllm or --backend sglang');
    return null;
  }
  if (!isEngineKind(backend)) throw new UsageError(`--backend must be onnx, vllm or sglang (got "${backend}")`);
  if (!url) throw new UsageError(`--backend ${backend} needs --decoder-url URL (or ARC_DECODER_URL)`);
  try {
    normalizeBaseUrl(url, backend);
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
  const engine: EngineConfig = { kind: backend, url };
  const served = (values['served-model'] ?? env.ARC_SERVED_MODEL ?? '').trim();
  if (served) engine.servedModel = served;
  const key = env.ARC_DECODER_API_KEY?.trim();
  if (key) engine.apiKey = key;
  return engine;
}

/** The model as loaded, or with its generate() on the engine. */
export function withBackend(model: ArcModel, engine: EngineConfig | null): ArcModel {
  return engine ? withEngineDecoder(model, engine) : model;
}
