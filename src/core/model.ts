// Opens an arc-model/1 package folder: manifest, tokenizer(s), ONNX sessions on the best
// provider, encoder and (when the package has one) decoder.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { resolve } from 'node:path';
import type { ArcDecoder, ArcEncoder, ArcModel, LoadOptions, Manifest, ProviderName, TextTokenizer } from './api';
import { EmbedOnlyDecoder, OnnxDecoder, TokenEmbedder } from './decoder';
import { OnnxEncoder } from './encoder';
import { ArcError } from './errors';
import { EMBED_IO, ENCODER_IO, checkIo, decoderIo, packageFile, readManifest } from './manifest';
import { openSessions, type Session, type SessionSpec } from './providers';
import { loadTokenizer } from './tokenizer';

/** Hex characters of the identity; 64 bits is plenty to tell model builds apart in a cache. */
const IDENTITY_HEX = 16;

async function hashFiles(parts: (Buffer | string)[]): Promise<string> {
  const h = createHash('sha256');
  for (const part of parts) {
    if (typeof part !== 'string') {
      h.update(part);
      continue;
    }
    // Streamed: encoders of real checkpoints are gigabytes.
    for await (const chunk of createReadStream(part)) h.update(chunk as Buffer);
  }
  return h.digest('hex').slice(0, IDENTITY_HEX);
}

/**
 * Stands in for the tokenizer of an encoder-only package shipped without one (converted
 * checkpoints are used with token ids); any use says which file is missing.
 */
class AbsentTokenizer implements TextTokenizer {
  /** `path` is null when the manifest names no tokenizer at all. */
  constructor(private readonly path: string | null) {}
  encode(): number[] {
    const what = this.path ? `${this.path} (encoder.tokenizer) is missing` : 'This package has no tokenizer (encoder.tokenizer is null)';
    throw new ArcError('model-missing', `${what}, so it only accepts token ids. Add the tokenizer to the package.`);
  }
  decode(): string {
    return this.encode() as never;
  }
}

class LoadedModel implements ArcModel {
  constructor(
    readonly dir: string,
    readonly manifest: Manifest,
    readonly provider: ProviderName,
    readonly identity: string,
    readonly tokenizer: TextTokenizer,
    readonly encoder: ArcEncoder,
    readonly decoder: ArcDecoder | null,
    private readonly sessions: Session[],
  ) {}

  private disposed = false;

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await Promise.all(this.sessions.map((s) => s.release()));
  }
}

export async function loadModel(dir: string, opts: LoadOptions = {}): Promise<ArcModel> {
  const root = resolve(dir);
  const { path: manifestPath, bytes, manifest } = await readManifest(root);
  const enc = manifest.encoder;
  const dec = manifest.decoder;

  const encoderPath = await packageFile(root, enc.file, 'encoder.file');
  const specs: SessionSpec[] = [{ key: 'encoder', path: encoderPath }];
  let tokenizer: TextTokenizer;
  let decoderTokenizer: TextTokenizer | null = null;
  let decoderPaths: { decoder: string; embed: string } | null = null;
  const withGraph = opts.decoderGraph !== false;
  if (dec) {
    const embedPath = await packageFile(root, dec.embed, 'decoder.embed');
    // Without the graph (an engine decodes), decoder.onnx may be absent: a laptop need not hold it.
    decoderPaths = { embed: embedPath, decoder: withGraph ? await packageFile(root, dec.file, 'decoder.file') : '' };
    specs.push({ key: 'embed', path: decoderPaths.embed });
    if (withGraph) specs.push({ key: 'decoder', path: decoderPaths.decoder });
    const t = await loadTokenizer(await packageFile(root, enc.tokenizer, 'encoder.tokenizer'));
    tokenizer = t;
    decoderTokenizer = dec.tokenizer === enc.tokenizer ? t : await loadTokenizer(await packageFile(root, dec.tokenizer, 'decoder.tokenizer'));
  } else if (enc.tokenizer === '') {
    tokenizer = new AbsentTokenizer(null);
  } else {
    const path = resolve(root, enc.tokenizer);
    tokenizer = await packageFile(root, enc.tokenizer, 'encoder.tokenizer').then(
      (p) => loadTokenizer(p),
      (e: unknown) => {
        if (e instanceof ArcError && e.code === 'model-missing') return new AbsentTokenizer(path);
        throw e;
      },
    );
  }

  const identity = await hashFiles([bytes, encoderPath]);

  let encoder: OnnxEncoder | null = null;
  let decoder: OnnxDecoder | EmbedOnlyDecoder | null = null;
  const opened = await openSessions(specs, opts, async (sessions, ort) => {
    const es = sessions.get('encoder')!;
    checkIo(encoderPath, es, ENCODER_IO);
    encoder = await OnnxEncoder.create(ort, es, encoderPath, enc, dec ? dec.bosTokenId : null);
    if (dec && decoderPaths && decoderTokenizer && !withGraph) {
      const embed = sessions.get('embed')!;
      checkIo(decoderPaths.embed, embed, EMBED_IO);
      decoder = await EmbedOnlyDecoder.create(new TokenEmbedder(ort, embed, decoderPaths.embed, dec), dec, decoderTokenizer);
    } else if (dec && decoderPaths && decoderTokenizer) {
      const embed = sessions.get('embed')!;
      const ds = sessions.get('decoder')!;
      checkIo(decoderPaths.embed, embed, EMBED_IO);
      const optional = checkIo(decoderPaths.decoder, ds, decoderIo(dec.numLayers));
      if (!optional.has('position_ids')) opts.log?.(`${decoderPaths.decoder}: no position_ids input; positions come from attention_mask`);
      decoder = await OnnxDecoder.create(ort, embed, ds, decoderPaths, dec, decoderTokenizer, optional);
    }
  });
  if (!encoder) throw new ArcError('internal', `${manifestPath}: the encoder was not created.`);
  return new LoadedModel(root, manifest, opened.provider, identity, tokenizer, encoder, decoder, [...opened.sessions.values()]);
}
