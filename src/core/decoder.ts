// The decoder over embed.onnx + decoder.onnx: builds the prefix embedding sequence (token
// embeddings and compressed vectors side by side), prefills it with an empty KV cache and then
// feeds one token at a time, carrying the cache between calls.
import type { ArcDecoder, GenerateOptions, GenerationTimings, Manifest, PrefixPart, TextTokenizer } from './api';
import { ArcError } from './errors';
import { decodeLoop } from './generate';
import type { Ort, Session } from './providers';
import type { Tensor } from 'onnxruntime-node';

type DecoderConfig = NonNullable<Manifest['decoder']>;

/** KV cache and position of one running sequence. */
export class DecodeState {
  constructor(
    /** past_key_values.{i}.key|value inputs for the next call. */
    public past: Record<string, Tensor>,
    /** Positions already in the cache. */
    public length: number,
  ) {}
}

function tooLarge(positions: number, window: number): ArcError {
  return new ArcError(
    'context-too-large',
    `The prompt needs ${positions} decoder positions but the decoder window is ${window} (decoder.contextLength). Ask about fewer or smaller files, or use arc mode, which compresses them.`,
  );
}

/** Number of decoder positions a prefix occupies. */
export function prefixLength(prefix: readonly PrefixPart[]): number {
  return prefix.reduce((n, p) => n + (p.kind === 'tokens' ? p.ids.length : p.count), 0);
}

export interface DecoderFiles {
  decoder: string;
  embed: string;
}

/**
 * embed.onnx: token ids to embedding rows, and the whole prefix (token parts and compressed
 * vectors side by side) as one matrix. Shared by the in-process decoder and by a serving
 * engine, which receives this matrix, so both read exactly the same prefix.
 */
export class TokenEmbedder {
  private readonly hidden: number;

  constructor(
    private readonly ort: Ort,
    private readonly embedSession: Session,
    private readonly embedPath: string,
    private readonly config: DecoderConfig,
  ) {
    this.hidden = config.hiddenSize;
  }

  /** Token embeddings of `ids` (rows of hiddenSize floats). */
  async embed(ids: readonly number[]): Promise<Float32Array> {
    if (ids.length === 0) return new Float32Array(0);
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize) {
        throw new ArcError('internal', `Token id ${id} is outside the decoder vocabulary (0..${this.config.vocabSize - 1}).`);
      }
    }
    const input = new this.ort.Tensor('int64', BigInt64Array.from(ids, (i) => BigInt(i)), [1, ids.length]);
    const out = (await this.embedSession.run({ input_ids: input })).inputs_embeds;
    if (!out || out.type !== 'float32' || out.dims.length !== 3 || out.dims[1] !== ids.length || out.dims[2] !== this.hidden) {
      throw new ArcError('model-corrupt', `${this.embedPath} returned inputs_embeds of shape [${out?.dims.join(', ') ?? ''}], expected [1, ${ids.length}, ${this.hidden}] (decoder.hiddenSize).`);
    }
    return out.data as Float32Array;
  }

  /** The prefix as one [positions x hiddenSize] matrix, parts in order. */
  async prefixEmbeddings(prefix: readonly PrefixPart[]): Promise<Float32Array> {
    const positions = prefixLength(prefix);
    const out = new Float32Array(positions * this.hidden);
    // One embed call for all token parts: per-call overhead dominates for short parts.
    const allIds = prefix.flatMap((p) => (p.kind === 'tokens' ? p.ids : []));
    const tokenRows = await this.embed(allIds);
    let row = 0;
    let tokenRow = 0;
    for (const part of prefix) {
      if (part.kind === 'tokens') {
        const n = part.ids.length;
        out.set(tokenRows.subarray(tokenRow * this.hidden, (tokenRow + n) * this.hidden), row * this.hidden);
        tokenRow += n;
        row += n;
      } else {
        if (part.data.length !== part.count * this.hidden) {
          throw new ArcError('internal', `A vector part holds ${part.data.length} floats, expected ${part.count} x ${this.hidden} (decoder.hiddenSize).`);
        }
        // Compressed vectors enter as-is: no scaling, ordinary consecutive positions.
        out.set(part.data, row * this.hidden);
        row += part.count;
      }
    }
    return out;
  }
}

/**
 * A package loaded without decoder.onnx (its decoder runs on a serving engine): the prefix can
 * be built, nothing can be generated in-process.
 */
export class EmbedOnlyDecoder implements ArcDecoder {
  readonly contextLength: number;

  private constructor(
    private readonly embedder: TokenEmbedder,
    readonly config: DecoderConfig,
    readonly tokenizer: TextTokenizer,
  ) {
    this.contextLength = config.contextLength;
  }

  /** Runs BOS through embed.onnx once to prove the provider executes it. */
  static async create(embedder: TokenEmbedder, config: DecoderConfig, tokenizer: TextTokenizer): Promise<EmbedOnlyDecoder> {
    await embedder.embed([config.bosTokenId]);
    return new EmbedOnlyDecoder(embedder, config, tokenizer);
  }

  prefixEmbeddings(prefix: readonly PrefixPart[]): Promise<Float32Array> {
    return this.embedder.prefixEmbeddings(prefix);
  }

  // eslint-disable-next-line require-yield
  async *generate(): AsyncGenerator<string, GenerationTimings> {
    throw new ArcError('model-missing', 'This model was loaded without its decoder graph (decoder.onnx) for a serving engine; configure the engine (vllm or sglang) or load it with the decoder.');
  }
}

export class OnnxDecoder implements ArcDecoder {
  readonly contextLength: number;
  private readonly hidden: number;
  private readonly embedder: TokenEmbedder;
  private readonly pastNames: string[] = [];
  private readonly presentNames: string[] = [];
  private readonly pastType: 'float32' | 'float16';

  private constructor(
    private readonly ort: Ort,
    private readonly embedSession: Session,
    private readonly decoderSession: Session,
    private readonly files: DecoderFiles,
    readonly config: DecoderConfig,
    /** Decoder-side tokenizer: prompt text in, answer text out. */
    readonly tokenizer: TextTokenizer,
    private readonly hasPositionIds: boolean,
  ) {
    this.contextLength = config.contextLength;
    this.hidden = config.hiddenSize;
    for (let i = 0; i < config.numLayers; i++) {
      this.pastNames.push(`past_key_values.${i}.key`, `past_key_values.${i}.value`);
      this.presentNames.push(`present.${i}.key`, `present.${i}.value`);
    }
    const meta = decoderSession.inputMetadata.find((m) => m.name === 'past_key_values.0.key');
    this.pastType = meta && meta.isTensor && meta.type === 'float16' ? 'float16' : 'float32';
    this.embedder = new TokenEmbedder(ort, embedSession, files.embed, config);
  }

  /**
   * Wraps open sessions whose names were checked (`optionalInputs` says which optional inputs
   * the decoder has). Runs BOS through both graphs once to prove the provider executes them.
   */
  static async create(
    ort: Ort,
    embedSession: Session,
    decoderSession: Session,
    files: DecoderFiles,
    config: DecoderConfig,
    tokenizer: TextTokenizer,
    optionalInputs: ReadonlySet<string>,
  ): Promise<OnnxDecoder> {
    const dec = new OnnxDecoder(ort, embedSession, decoderSession, files, config, tokenizer, optionalInputs.has('position_ids'));
    const { state } = await dec.prefill([{ kind: 'tokens', ids: [config.bosTokenId] }]);
    await dec.step(state, config.bosTokenId);
    return dec;
  }

  /** Token embeddings of `ids` (rows of hiddenSize floats). */
  embed(ids: readonly number[]): Promise<Float32Array> {
    return this.embedder.embed(ids);
  }

  /** The prefix as one [positions x hiddenSize] matrix, parts in order. */
  prefixEmbeddings(prefix: readonly PrefixPart[]): Promise<Float32Array> {
    return this.embedder.prefixEmbeddings(prefix);
  }

  private emptyPast(): Record<string, Tensor> {
    const past: Record<string, Tensor> = {};
    const dims = [1, this.config.numKvHeads, 0, this.config.headDim];
    for (const name of this.pastNames) {
      past[name] = this.pastType === 'float16' ? new this.ort.Tensor('float16', new Uint16Array(0), dims) : new this.ort.Tensor('float32', new Float32Array(0), dims);
    }
    return past;
  }

  /** Runs `rows` positions after the cached ones; returns logits [rows x vocab] and the new state. */
  async forward(embeds: Float32Array, rows: number, state: DecodeState): Promise<{ logits: Float32Array; state: DecodeState }> {
    const { Tensor } = this.ort;
    const total = state.length + rows;
    if (total > this.contextLength) throw tooLarge(total, this.contextLength);
    const feeds: Record<string, Tensor> = {
      inputs_embeds: new Tensor('float32', embeds, [1, rows, this.hidden]),
      attention_mask: new Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
      ...state.past,
    };
    if (this.hasPositionIds) {
      const pos = new BigInt64Array(rows);
      for (let i = 0; i < rows; i++) pos[i] = BigInt(state.length + i);
      feeds.position_ids = new Tensor('int64', pos, [1, rows]);
    }
    const out = await this.decoderSession.run(feeds);
    const logits = out.logits;
    const vocab = this.config.vocabSize;
    if (!logits || logits.type !== 'float32' || logits.dims.length !== 3 || logits.dims[1] !== rows || logits.dims[2] !== vocab) {
      throw new ArcError('model-corrupt', `${this.files.decoder} returned logits of shape [${logits?.dims.join(', ') ?? ''}], expected [1, ${rows}, ${vocab}] (decoder.vocabSize).`);
    }
    const past: Record<string, Tensor> = {};
    this.presentNames.forEach((name, i) => {
      const t = out[name];
      if (!t || t.dims[2] !== total) {
        throw new ArcError('model-corrupt', `${this.files.decoder} returned ${name} of shape [${t?.dims.join(', ') ?? ''}], expected past length ${total}.`);
      }
      past[this.pastNames[i]!] = t;
    });
    return { logits: logits.data as Float32Array, state: new DecodeState(past, total) };
  }

  /** Prefills the prefix on an empty cache; logits are [positions x vocab]. */
  async prefill(prefix: readonly PrefixPart[]): Promise<{ logits: Float32Array; state: DecodeState }> {
    const positions = prefixLength(prefix);
    if (positions === 0) throw new ArcError('internal', 'The decoder prefix is empty; it must hold at least BOS.');
    if (positions > this.contextLength) throw tooLarge(positions, this.contextLength);
    return this.forward(await this.prefixEmbeddings(prefix), positions, new DecodeState(this.emptyPast(), 0));
  }

  /** Feeds one token; returns its logits (vocab floats). The state object is advanced. */
  async step(state: DecodeState, tokenId: number): Promise<Float32Array> {
    const { logits, state: next } = await this.forward(await this.embed([tokenId]), 1, state);
    state.past = next.past;
    state.length = next.length;
    return logits;
  }

  async *generate(prefix: PrefixPart[], opts: GenerateOptions): AsyncGenerator<string, GenerationTimings> {
    const positions = prefixLength(prefix);
    // Refuse before any work: a prefix that does not fit cannot produce a useful answer.
    if (positions > this.contextLength) throw tooLarge(positions, this.contextLength);
    let state: DecodeState | null = null;
    const vocab = this.config.vocabSize;
    const source = {
      prefill: async (): Promise<Float32Array> => {
        const r = await this.prefill(prefix);
        state = r.state;
        return r.logits.subarray((positions - 1) * vocab, positions * vocab);
      },
      step: (id: number): Promise<Float32Array> => {
        if (!state) throw new ArcError('internal', 'step() before prefill()');
        return this.step(state, id);
      },
    };
    const limits = { prefixPositions: positions, contextLength: this.contextLength, eosTokenId: this.config.eosTokenId };
    return yield* decodeLoop(source, this.tokenizer, opts, limits);
  }
}
