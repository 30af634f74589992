// A decoder that runs on a serving engine: the prefix (compressed vectors and question tokens,
// embedded here exactly as for the in-process decoder) travels as embeddings, the engine
// decodes. vLLM: OpenAI Completions with `prompt_embeds` (base64 of a torch.save'd
// [positions, hidden] tensor). SGLang: native /generate with `input_embeds` (nested JSON
// lists). Neither applies a chat template, so the prefix is the whole prompt.
import type { ArcDecoder, GenerateOptions, GenerationTimings, Manifest, PrefixPart, TextTokenizer } from '../api';
import { ArcError, errorMessage } from '../errors';
import { prefixLength } from '../decoder';
import { StopText } from '../generate';
import { torchSaveTensor, type TorchDtype } from './torchSave';
import { sseEvents } from './sse';

export type EngineKind = 'vllm' | 'sglang';
export const ENGINE_KINDS: readonly EngineKind[] = ['vllm', 'sglang'];

export interface EngineConfig {
  kind: EngineKind;
  /** Server root, e.g. http://127.0.0.1:8000 (a trailing /v1 is accepted for vLLM). */
  url: string;
  /** The served model name (vLLM's `model` field); empty asks /v1/models for the only one. */
  servedModel?: string;
  /** Sent as `Authorization: Bearer ...` when set. */
  apiKey?: string;
  /** Until the first answer text arrives (the server reads the prefix meanwhile). Default 120 s. */
  firstTokenTimeoutMs?: number;
  /** Longest silence between streamed events. Default 60 s. */
  idleTimeoutMs?: number;
  /** Element type of vLLM's prompt_embeds tensor; float32 (default) sends the prefix unrounded. */
  dtype?: TorchDtype;
  /** Stream the answer (SSE); default true. */
  stream?: boolean;
}

/** What the engine decoder needs from the local package: the prefix as embeddings. */
export interface PrefixEmbedder {
  /** The prefix as one [positions x hiddenSize] matrix (embed.onnx for the token parts). */
  prefixEmbeddings(prefix: readonly PrefixPart[]): Promise<Float32Array>;
}

/** Timings of a generation on an engine: which one, and its time to first token. */
export interface EngineTimings extends GenerationTimings {
  backend: string;
  serverTtftMs: number;
  /** Size of the request body (the serialized prefix). */
  requestBytes: number;
}

type FetchFn = typeof fetch;

const DEFAULT_FIRST_TOKEN_MS = 120_000;
const DEFAULT_IDLE_MS = 60_000;
/** Longest error body shown to the user. */
const BODY_SHOWN = 600;

/** The base URL without a trailing slash (and, for vLLM, without a trailing /v1). */
export function normalizeBaseUrl(url: string, kind: EngineKind): string {
  let u: URL;
  try {
    u = new URL(url.trim());
  } catch {
    throw new ArcError('decoder-server', `The decoder server URL "${url}" is not a URL. Give one like http://127.0.0.1:8000.`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new ArcError('decoder-server', `The decoder server URL must start with http:// or https:// (got "${url}").`);
  }
  let path = u.pathname.replace(/\/+$/, '');
  if (kind === 'vllm') path = path.replace(/\/v1$/, '');
  return `${u.origin}${path}`;
}

/** The host a request goes to, as the consent prompt names it. */
export function engineHost(url: string): string {
  try {
    return new URL(url.trim()).host;
  } catch {
    return url;
  }
}

/** The server's error text: OpenAI/vLLM `{error: {message}}`, older vLLM `{message}`, SGLang `{error}` or plain text. */
export function serverMessage(body: string): string {
  try {
    const j = JSON.parse(body) as { error?: unknown; message?: unknown; detail?: unknown };
    const e = j.error;
    if (e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') return (e as { message: string }).message;
    if (typeof e === 'string') return e;
    if (typeof j.message === 'string') return j.message;
    if (typeof j.detail === 'string') return j.detail;
  } catch {
    // not JSON: show the text itself
  }
  const text = body.replace(/\s+/g, ' ').trim();
  return text.length > BODY_SHOWN ? `${text.slice(0, BODY_SHOWN)}…` : text;
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'EPROTO',
]);

/** The code of the innermost cause of a fetch failure (undici wraps the socket error). */
function causeCode(e: unknown): string {
  let cur: unknown = e;
  for (let depth = 0; depth < 5 && cur && typeof cur === 'object'; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR_SOCKET') return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return '';
}

/** A failed connection as a message that says what to do. */
export function connectionError(e: unknown, url: string, kind: EngineKind): ArcError {
  const code = causeCode(e);
  const host = engineHost(url);
  const inner = (e as { cause?: unknown })?.cause;
  const detail = inner ? errorMessage(inner) : errorMessage(e);
  if (TLS_CODES.has(code) || /certificate|ssl|tls/i.test(detail)) {
    return new ArcError('decoder-server', `TLS error talking to the ${kind} server at ${host} (${code || detail}). Install the server's certificate authority in the system store (VS Code and Node use it with --use-system-ca / NODE_EXTRA_CA_CERTS), fix the certificate, or use http:// on a trusted network.`, { cause: e });
  }
  if (code === 'ECONNREFUSED') return new ArcError('decoder-server', `No ${kind} server answers at ${host} (connection refused). Start it (see the README's "Decoder on a serving engine") or fix the decoder server URL.`, { cause: e });
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new ArcError('decoder-server', `The decoder server host ${host} is not known (${code}). Fix the decoder server URL.`, { cause: e });
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') return new ArcError('decoder-server', `The ${kind} server at ${host} closed the connection (${code}). Its log says why; it may have run out of memory.`, { cause: e });
  return new ArcError('decoder-server', `Cannot reach the ${kind} server at ${host}: ${code ? `${code}, ` : ''}${detail}`, { cause: e });
}

/** An HTTP error status as a message that names the cause where it is known. */
export function httpError(status: number, body: string, ctx: { kind: EngineKind; host: string; hidden: number; servedModel: string }): ArcError {
  const msg = serverMessage(body);
  // the server's own words, without a trailing period (each message below adds its own)
  const shown = msg ? `: ${msg.replace(/[.\s]+$/, '')}` : '';
  const where = `The ${ctx.kind} server at ${ctx.host} answered ${status}`;
  if (/enable-prompt-embeds/.test(msg)) {
    return new ArcError('decoder-server', `${where}: prompt embeddings are not enabled. Restart vLLM with --enable-prompt-embeds (server said${shown}).`);
  }
  if (/hidden[ _]size/i.test(msg) || /shape|size mismatch|dimension/i.test(msg)) {
    return new ArcError('decoder-server', `${where}${shown}. This package's decoder has hidden size ${ctx.hidden}: the served model must be the decoder its encoder was trained for (see the package's arc-model.json).`);
  }
  if (status === 401 || status === 403) return new ArcError('decoder-server', `${where} (not authorized)${shown}. Set the decoder server API key (VS Code: "ARC: Set Decoder Server API Key"; CLI: ARC_DECODER_API_KEY).`);
  if (status === 404) {
    const what = /model/i.test(msg) ? `the served model "${ctx.servedModel}" is not there` : 'the endpoint is not there';
    return new ArcError('decoder-server', `${where}: ${what}${shown}. Check the backend (vllm or sglang), the URL and the served model name.`);
  }
  if (/maximum context length|max_model_len|context length/i.test(msg)) {
    return new ArcError('context-too-large', `${where}${shown}. The server's window must hold this package's decoder.contextLength plus the first generated token; start it with --max-model-len of at least contextLength + 1.`);
  }
  return new ArcError('decoder-server', `${where}${shown || ' with an empty body'}`);
}

/** Text pieces safe to show: nothing from a stop string on, no tail that may begin one. */
class StopFilter {
  private text = '';
  private readonly out: StopText;
  constructor(stops: readonly string[]) {
    this.out = new StopText(stops);
  }
  get stopped(): boolean {
    return this.out.stopped;
  }
  push(delta: string): string {
    if (this.out.stopped) return '';
    this.text += delta;
    return this.out.update(this.text);
  }
  flush(): string {
    return this.out.flush();
  }
}

interface Deadline {
  signal: AbortSignal;
  /** Restarts the timer with a new limit (first token, then per event). */
  arm(ms: number, what: string): void;
  /** Why the request was aborted, when it was by us. */
  reason(): 'cancelled' | string | null;
  dispose(): void;
}

function deadline(user: AbortSignal | undefined): Deadline {
  const ctrl = new AbortController();
  let why: string | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const onAbort = () => {
    why = 'cancelled';
    ctrl.abort();
  };
  if (user) {
    if (user.aborted) onAbort();
    else user.addEventListener('abort', onAbort, { once: true });
  }
  return {
    signal: ctrl.signal,
    arm(ms, what) {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        why = what;
        ctrl.abort();
      }, ms);
    },
    reason: () => why,
    dispose() {
      if (timer) clearTimeout(timer);
      user?.removeEventListener('abort', onAbort);
      if (!ctrl.signal.aborted) ctrl.abort(); // closes the connection if still open
    },
  };
}

/** The decoder's generate() on a vLLM or SGLang server; drop-in for the in-process one. */
export class EngineDecoder implements ArcDecoder {
  readonly contextLength: number;
  private readonly base: string;
  private resolvedModel: string | null;

  constructor(
    private readonly embedder: PrefixEmbedder,
    private readonly decoderConfig: NonNullable<Manifest['decoder']>,
    readonly tokenizer: TextTokenizer,
    readonly engine: EngineConfig,
    private readonly fetchFn: FetchFn = fetch,
  ) {
    this.contextLength = decoderConfig.contextLength;
    this.base = normalizeBaseUrl(engine.url, engine.kind);
    this.resolvedModel = engine.servedModel?.trim() || null;
  }

  /** e.g. "vllm @ gpu-box:8000". */
  get label(): string {
    return `${this.engine.kind} @ ${engineHost(this.engine.url)}`;
  }

  private headers(): Record<string, string> {
    const h: Record<string, string> = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' };
    if (this.engine.apiKey) h.Authorization = `Bearer ${this.engine.apiKey}`;
    return h;
  }

  private ctx() {
    return { kind: this.engine.kind, host: engineHost(this.engine.url), hidden: this.decoderConfig.hiddenSize, servedModel: this.resolvedModel ?? '' };
  }

  /** vLLM needs a model name; without one configured, the server's only model is used. */
  private async servedModel(signal: AbortSignal): Promise<string> {
    if (this.resolvedModel) return this.resolvedModel;
    let res: Response;
    try {
      res = await this.fetchFn(`${this.base}/v1/models`, { headers: this.headers(), signal });
    } catch (e) {
      if (signal.aborted) throw e;
      throw connectionError(e, this.engine.url, this.engine.kind);
    }
    const body = await res.text();
    if (!res.ok) throw httpError(res.status, body, this.ctx());
    let ids: string[] = [];
    try {
      ids = ((JSON.parse(body) as { data?: { id?: unknown }[] }).data ?? []).map((m) => m.id).filter((id): id is string => typeof id === 'string');
    } catch {
      // handled below
    }
    if (ids.length !== 1) {
      throw new ArcError('decoder-server', `The vLLM server at ${engineHost(this.engine.url)} serves ${ids.length === 0 ? 'no model it names' : `${ids.length} models (${ids.join(', ')})`}; set the served model name.`);
    }
    this.resolvedModel = ids[0]!;
    return this.resolvedModel;
  }

  private requestBody(embeds: Float32Array, positions: number, model: string, maxTokens: number, opts: GenerateOptions, stream: boolean): string {
    const hidden = this.decoderConfig.hiddenSize;
    const temperature = opts.temperature ?? 0;
    if (this.engine.kind === 'vllm') {
      const tensor = torchSaveTensor(embeds, [positions, hidden], this.engine.dtype ?? 'float32');
      const body: Record<string, unknown> = {
        model,
        prompt_embeds: tensor.toString('base64'),
        max_tokens: maxTokens,
        temperature,
        stop: opts.stop ?? [],
        stream,
      };
      if (stream) body.stream_options = { include_usage: true };
      if (temperature > 0 && opts.topP !== undefined) body.top_p = opts.topP;
      if (temperature > 0 && opts.seed !== undefined) body.seed = opts.seed;
      return JSON.stringify(body);
    }
    // SGLang: [positions][hidden] floats; JSON numbers print float32 values exactly enough to round-trip.
    const rows: string[] = [];
    for (let r = 0; r < positions; r++) rows.push(`[${Array.from(embeds.subarray(r * hidden, (r + 1) * hidden)).join(',')}]`);
    const params: Record<string, unknown> = { max_new_tokens: maxTokens, temperature, stop: opts.stop ?? [] };
    if (temperature > 0 && opts.topP !== undefined) params.top_p = opts.topP;
    if (temperature > 0 && opts.seed !== undefined) params.sampling_seed = opts.seed;
    return `{"input_embeds":[${rows.join(',')}],"sampling_params":${JSON.stringify(params)},"stream":${stream}}`;
  }

  async *generate(prefix: PrefixPart[], opts: GenerateOptions): AsyncGenerator<string, GenerationTimings> {
    const start = performance.now();
    const positions = prefixLength(prefix);
    if (positions > this.contextLength) {
      throw new ArcError('context-too-large', `The prompt needs ${positions} decoder positions but the decoder window is ${this.contextLength} (decoder.contextLength). Ask about fewer or smaller files, or use arc mode, which compresses them.`);
    }
    if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) {
      throw new ArcError('internal', `maxNewTokens must be a non-negative integer (got ${opts.maxNewTokens}).`);
    }
    // As in the in-process loop: the last answer token is never fed back, so it may sit one past the window.
    const maxTokens = Math.min(opts.maxNewTokens, this.contextLength - positions + 1);
    const kind = this.engine.kind;
    const timings = (ttft: number, serverTtft: number, generated: number, bytes: number): EngineTimings => {
      const totalMs = performance.now() - start;
      return {
        prefillMs: ttft,
        ttftMs: ttft,
        totalMs,
        generatedTokens: generated,
        tokensPerSecond: totalMs - ttft > 0 ? (generated * 1000) / (totalMs - ttft) : 0,
        prefixPositions: positions,
        backend: this.label,
        serverTtftMs: serverTtft,
        requestBytes: bytes,
      };
    };
    if (maxTokens <= 0) return timings(0, 0, 0, 0);

    const dl = deadline(opts.signal);
    const stream = this.engine.stream ?? true;
    const filter = new StopFilter(opts.stop ?? []);
    let sentAt = 0;
    let firstAt = 0;
    let generated = 0;
    let bytes = 0;
    const fail = (e: unknown): never => {
      const why = dl.reason();
      if (why === 'cancelled') throw new ArcError('cancelled', 'Generation was cancelled.', { cause: e });
      if (why) throw new ArcError('decoder-server', `The ${kind} server at ${engineHost(this.engine.url)} ${why}. It may be overloaded or stuck; try again, or raise the timeout.`, { cause: e });
      if (e instanceof ArcError) throw e;
      throw connectionError(e, this.engine.url, kind);
    };
    try {
      dl.arm(this.engine.firstTokenTimeoutMs ?? DEFAULT_FIRST_TOKEN_MS, `sent no answer within ${Math.round((this.engine.firstTokenTimeoutMs ?? DEFAULT_FIRST_TOKEN_MS) / 1000)} s`);
      let res: Response;
      try {
        const model = kind === 'vllm' ? await this.servedModel(dl.signal) : '';
        const embeds = await this.embedder.prefixEmbeddings(prefix);
        if (dl.signal.aborted) fail(new Error('aborted'));
        const body = this.requestBody(embeds, positions, model, maxTokens, opts, stream);
        bytes = Buffer.byteLength(body);
        const url = kind === 'vllm' ? `${this.base}/v1/completions` : `${this.base}/generate`;
        sentAt = performance.now();
        res = await this.fetchFn(url, { method: 'POST', headers: this.headers(), body, signal: dl.signal });
      } catch (e) {
        return fail(e);
      }
      if (!res.ok) {
        const text = await res.text().catch(() => '');
        throw httpError(res.status, text, this.ctx());
      }
      if (!stream) {
        let text: string;
        try {
          text = await res.text();
        } catch (e) {
          return fail(e);
        }
        firstAt = performance.now();
        const { delta, tokens } = this.parseResult(text, '');
        generated = tokens ?? 0;
        const piece = filter.push(delta) + filter.flush();
        if (piece) yield piece;
        return timings(firstAt - start, firstAt - sentAt, generated, bytes);
      }
      let sofar = '';
      let events = 0;
      let usage: number | undefined;
      const idleMs = this.engine.idleTimeoutMs ?? DEFAULT_IDLE_MS;
      try {
        for await (const data of sseEvents(res.body!)) {
          if (data === '[DONE]') break;
          const { delta, tokens, cumulative } = this.parseResult(data, sofar);
          if (cumulative !== undefined) sofar = cumulative;
          if (tokens !== undefined) usage = tokens;
          if (delta) {
            events++;
            if (!firstAt) firstAt = performance.now();
            dl.arm(idleMs, `went silent for ${Math.round(idleMs / 1000)} s in the middle of the answer`);
            const piece = filter.push(delta);
            if (piece) yield piece;
            if (filter.stopped) break;
          }
        }
      } catch (e) {
        return fail(e);
      }
      const rest = filter.flush();
      if (rest) yield rest;
      generated = usage ?? events;
      if (!firstAt) firstAt = performance.now();
      return timings(firstAt - start, firstAt - sentAt, generated, bytes);
    } finally {
      // Also runs when the consumer stops reading early: the connection closes with it.
      dl.dispose();
    }
  }

  /**
   * One response (or one SSE event) of either engine: the new text, the token count where the
   * server reports it, and for SGLang the whole text so far (its stream repeats it).
   */
  private parseResult(json: string, sofar: string): { delta: string; tokens?: number; cumulative?: string } {
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(json) as Record<string, unknown>;
    } catch {
      throw new ArcError('decoder-server', `The ${this.engine.kind} server sent something that is not JSON: ${json.slice(0, 200)}`);
    }
    if (j.error !== undefined || j.object === 'error') {
      throw new ArcError('decoder-server', `The ${this.engine.kind} server at ${engineHost(this.engine.url)} failed while answering: ${serverMessage(json)}`);
    }
    if (this.engine.kind === 'vllm') {
      const choices = j.choices as { text?: unknown }[] | undefined;
      const usage = j.usage as { completion_tokens?: unknown } | undefined;
      const tokens = typeof usage?.completion_tokens === 'number' ? usage.completion_tokens : undefined;
      if (!Array.isArray(choices)) {
        if (tokens !== undefined) return { delta: '', tokens };
        throw new ArcError('decoder-server', `The vLLM server's answer has no choices: ${json.slice(0, 200)}`);
      }
      const text = choices[0]?.text;
      return { delta: typeof text === 'string' ? text : '', tokens };
    }
    const text = j.text;
    if (typeof text !== 'string') throw new ArcError('decoder-server', `The SGLang server's answer has no text: ${json.slice(0, 200)}`);
    const meta = j.meta_info as { completion_tokens?: unknown } | undefined;
    const tokens = typeof meta?.completion_tokens === 'number' ? meta.completion_tokens : undefined;
    // SGLang streams the whole text so far; a server set to incremental output sends only the new part.
    const delta = text.startsWith(sofar) ? text.slice(sofar.length) : text;
    return { delta, tokens, cumulative: text.startsWith(sofar) ? text : sofar + text };
  }
}
