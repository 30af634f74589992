// The ARC encoder over encoder.onnx: token ids of a chunk -> m compressed vectors (about L/x),
// each covering a run of consecutive tokens. The runtime owns the group rule and hands the
// graph a pooling matrix, so the ONNX file stays free of data-dependent shapes.
import type { ArcEncoder, CompressedChunk, Manifest } from './api';
import { ArcError, throwIfAborted } from './errors';
import type { Ort, Session } from './providers';

/**
 * Group sizes of the reference `split_integer(L, -x)`: one group when L < x, L/x groups of x
 * when x divides L, else floor(L/x)+1 near-equal groups with the larger ones first.
 */
export function groupSizes(length: number, poolingFactor: number): number[] {
  if (!Number.isInteger(length) || length < 0) throw new RangeError(`length must be a non-negative integer (got ${length})`);
  if (!Number.isInteger(poolingFactor) || poolingFactor < 1) throw new RangeError(`poolingFactor must be a positive integer (got ${poolingFactor})`);
  if (length === 0) return [];
  if (length < poolingFactor) return [length];
  if (length % poolingFactor === 0) return new Array<number>(length / poolingFactor).fill(poolingFactor);
  const m = Math.floor(length / poolingFactor) + 1;
  const base = Math.floor(length / m);
  const larger = length % m;
  const sizes: number[] = [];
  for (let i = 0; i < m; i++) sizes.push(i < larger ? base + 1 : base);
  return sizes;
}

/** [start, end) token range of each group. */
export function groupRanges(sizes: readonly number[]): [number, number][] {
  const ranges: [number, number][] = [];
  let start = 0;
  for (const s of sizes) {
    ranges.push([start, start + s]);
    start += s;
  }
  return ranges;
}

export interface BatchPolicy {
  /** Upper bound on padded tokens (batch size x longest length) in one call. */
  maxBatchTokens: number;
  /** Upper bound on sequences in one call. */
  maxBatchSize: number;
  /** Smallest share of real (unpadded) tokens a batch may have; padding is wasted work. */
  minFill: number;
}

// Batching amortises per-call overhead, which dominates for short chunks on CPU; past a few
// thousand tokens per call the attention cost grows and batches gain nothing.
export const DEFAULT_BATCH_POLICY: BatchPolicy = { maxBatchTokens: 4096, maxBatchSize: 16, minFill: 0.8 };

/**
 * Groups chunk indices into batches of similar length, longest first. A batch grows while its
 * padded size stays within the policy and real tokens fill at least `minFill` of it.
 */
export function planBatches(lengths: readonly number[], policy: BatchPolicy = DEFAULT_BATCH_POLICY): number[][] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b]! - lengths[a]! || a - b);
  const batches: number[][] = [];
  let batch: number[] = [];
  let longest = 0;
  let real = 0;
  for (const i of order) {
    const len = lengths[i]!;
    if (batch.length > 0) {
      const n = batch.length + 1;
      const fits = n <= policy.maxBatchSize && n * longest <= policy.maxBatchTokens && real + len >= policy.minFill * n * longest;
      if (!fits) {
        batches.push(batch);
        batch = [];
      }
    }
    if (batch.length === 0) {
      longest = len;
      real = 0;
    }
    batch.push(i);
    real += len;
  }
  if (batch.length) batches.push(batch);
  return batches;
}

/** The three encoder inputs for a batch of token sequences (right-padded). */
export interface EncoderFeeds {
  batch: number;
  length: number;
  groups: number;
  inputIds: BigInt64Array;
  attentionMask: BigInt64Array;
  poolMatrix: Float32Array;
  sizes: number[][];
}

export function buildEncoderFeeds(chunks: readonly (readonly number[])[], poolingFactor: number): EncoderFeeds {
  const batch = chunks.length;
  const length = Math.max(...chunks.map((c) => c.length));
  const sizes = chunks.map((c) => groupSizes(c.length, poolingFactor));
  const groups = Math.max(...sizes.map((s) => s.length));
  const inputIds = new BigInt64Array(batch * length);
  const attentionMask = new BigInt64Array(batch * length);
  const poolMatrix = new Float32Array(batch * groups * length);
  chunks.forEach((ids, b) => {
    ids.forEach((id, t) => {
      inputIds[b * length + t] = BigInt(id);
      attentionMask[b * length + t] = 1n;
    });
    groupRanges(sizes[b]!).forEach(([start, end], g) => {
      const row = (b * groups + g) * length;
      poolMatrix.fill(1 / (end - start), row + start, row + end);
    });
  });
  return { batch, length, groups, inputIds, attentionMask, poolMatrix, sizes };
}

/** The encoder's batch dimension when the graph fixes it (1 for some exports), else null. */
function fixedBatch(session: Session): number | null {
  const meta = session.inputMetadata.find((m) => m.name === 'input_ids');
  if (meta && meta.isTensor && typeof meta.shape[0] === 'number') return meta.shape[0];
  return null;
}

/**
 * What the encoder graph reads for a chunk: its token ids, preceded by the BOS id when the
 * manifest sets encoder.addBos (bos is then the decoder's bosTokenId, else null).
 */
export function encoderInput(ids: readonly number[], bos: number | null): number[] {
  return bos === null ? [...ids] : [bos, ...ids];
}

export class OnnxEncoder implements ArcEncoder {
  readonly poolingFactor: number;
  /** Longest chunk encode() takes: the manifest's limit less the BOS slot when addBos is set. */
  readonly maxChunkTokens: number;
  readonly dim: number;
  private contVector: Float32Array = new Float32Array(0);
  private readonly policy: BatchPolicy;

  private constructor(
    private readonly ort: Ort,
    private readonly session: Session,
    private readonly file: string,
    config: Manifest['encoder'],
    private readonly bos: number | null,
    policy: BatchPolicy,
  ) {
    this.poolingFactor = config.poolingFactor;
    this.maxChunkTokens = config.maxChunkTokens - (bos === null ? 0 : 1);
    this.dim = config.outputSize;
    const fixed = fixedBatch(session);
    this.policy = fixed === null ? policy : { ...policy, maxBatchSize: Math.min(policy.maxBatchSize, fixed) };
  }

  /**
   * Wraps an open session. Runs it once on a one-token input, which reads the <Cont> vector and
   * proves that the provider can execute the graph. `bosTokenId` is the decoder's BOS id; it is
   * required when config.addBos is set (every chunk is then encoded with it in front).
   */
  static async create(
    ort: Ort,
    session: Session,
    file: string,
    config: Manifest['encoder'],
    bosTokenId: number | null = null,
    policy: BatchPolicy = DEFAULT_BATCH_POLICY,
  ): Promise<OnnxEncoder> {
    if (config.addBos && bosTokenId === null) {
      throw new ArcError('model-corrupt', `${file}: encoder.addBos is true but the package has no decoder.bosTokenId to prepend. Set encoder.addBos to false or add the decoder to the package.`);
    }
    if (config.addBos && config.maxChunkTokens < 2) {
      throw new ArcError('model-corrupt', `${file}: encoder.addBos needs encoder.maxChunkTokens of at least 2 (one slot is the BOS token).`);
    }
    const enc = new OnnxEncoder(ort, session, file, config, config.addBos ? bosTokenId : null, policy);
    const { cont } = await enc.run([encoderInput([0], enc.bos)]);
    enc.contVector = cont;
    return enc;
  }

  get cont(): Float32Array {
    return this.contVector;
  }

  async encode(chunks: number[][], signal?: AbortSignal): Promise<CompressedChunk[]> {
    chunks.forEach((c, i) => {
      if (c.length === 0) throw new ArcError('internal', `Chunk ${i} is empty; the encoder needs at least one token.`);
      if (c.length > this.maxChunkTokens) {
        const why = this.bos === null ? 'encoder.maxChunkTokens' : 'encoder.maxChunkTokens less one for the BOS token of encoder.addBos';
        throw new ArcError('context-too-large', `Chunk ${i} has ${c.length} tokens but this encoder takes at most ${this.maxChunkTokens} (${why}); split it first.`);
      }
    });
    const inputs = chunks.map((c) => encoderInput(c, this.bos));
    const out = new Array<CompressedChunk>(chunks.length);
    for (const batch of planBatches(inputs.map((c) => c.length), this.policy)) {
      throwIfAborted(signal, 'Encoding');
      const { chunks: encoded } = await this.run(batch.map((i) => inputs[i]!));
      batch.forEach((i, k) => (out[i] = encoded[k]!));
    }
    return out;
  }

  private async run(chunks: readonly (readonly number[])[]): Promise<{ chunks: CompressedChunk[]; cont: Float32Array }> {
    const f = buildEncoderFeeds(chunks, this.poolingFactor);
    const { Tensor } = this.ort;
    const result = await this.session.run({
      input_ids: new Tensor('int64', f.inputIds, [f.batch, f.length]),
      attention_mask: new Tensor('int64', f.attentionMask, [f.batch, f.length]),
      pool_matrix: new Tensor('float32', f.poolMatrix, [f.batch, f.groups, f.length]),
    });
    const emb = result.embeddings;
    const cont = result.cont_embedding;
    if (!emb || !cont || emb.type !== 'float32' || cont.type !== 'float32') {
      throw new ArcError('model-corrupt', `${this.file} returned no float32 embeddings/cont_embedding. Re-export it.`);
    }
    const [b, m, d] = emb.dims;
    if (emb.dims.length !== 3 || b !== f.batch || m !== f.groups || d !== this.dim) {
      throw new ArcError('model-corrupt', `${this.file} returned embeddings of shape [${emb.dims.join(', ')}], expected [${f.batch}, ${f.groups}, ${this.dim}] (encoder.outputSize). Check the manifest or re-export.`);
    }
    if (cont.size !== this.dim) {
      throw new ArcError('model-corrupt', `${this.file} returned cont_embedding of shape [${cont.dims.join(', ')}], expected [1, 1, ${this.dim}].`);
    }
    const data = emb.data as Float32Array;
    const encoded = chunks.map((_, k): CompressedChunk => {
      const sizes = f.sizes[k]!;
      const start = k * f.groups * this.dim;
      return {
        // slice copies, so the chunk does not keep the whole batch output alive.
        vectors: data.slice(start, start + sizes.length * this.dim),
        count: sizes.length,
        dim: this.dim,
        groups: groupRanges(sizes),
      };
    });
    return { chunks: encoded, cont: Float32Array.from(cont.data as Float32Array) };
  }
}
