// Reads and validates an arc-model/1 package manifest (docs/DESIGN.md), and checks the ONNX
// sessions' input/output names against the contract once they exist.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Manifest } from './api';
import { ArcError, errorMessage } from './errors';

export const MANIFEST_FILE = 'arc-model.json';
export const MANIFEST_FORMAT = 'arc-model/1';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** Validates one manifest object; `file` is only used in messages. */
class Checker {
  constructor(private readonly file: string) {}

  fail(field: string, problem: string): never {
    throw new ArcError(
      'model-corrupt',
      `${this.file}: field "${field}" ${problem}. Fix the manifest or re-export the model package (docs/DESIGN.md lists every field).`,
    );
  }

  object(parent: JsonObject, key: string, prefix: string): JsonObject {
    const v = parent[key];
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      this.fail(prefix + key, v === undefined ? 'is missing' : 'must be an object');
    }
    return v;
  }

  string(parent: JsonObject, key: string, prefix: string, optional = false): string | undefined {
    const v = parent[key];
    if (v === undefined && optional) return undefined;
    if (typeof v !== 'string') this.fail(prefix + key, v === undefined ? 'is missing' : 'must be a string');
    return v;
  }

  requiredString(parent: JsonObject, key: string, prefix: string): string {
    const v = this.string(parent, key, prefix);
    if (v === undefined || v.length === 0) this.fail(prefix + key, 'must be a non-empty string');
    return v;
  }

  int(parent: JsonObject, key: string, prefix: string, min: number): number {
    const v = parent[key];
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      this.fail(prefix + key, v === undefined ? 'is missing' : 'must be an integer');
    }
    if (v < min) this.fail(prefix + key, `must be at least ${min} (got ${v})`);
    return v;
  }

  bool(parent: JsonObject, key: string, prefix: string): boolean {
    const v = parent[key];
    if (typeof v !== 'boolean') this.fail(prefix + key, v === undefined ? 'is missing' : 'must be true or false');
    return v;
  }

  /** A file name inside the package: no absolute paths and no escaping the folder. */
  fileName(parent: JsonObject, key: string, prefix: string): string {
    const v = this.requiredString(parent, key, prefix);
    if (v.startsWith('/') || v.startsWith('\\') || /^[A-Za-z]:/.test(v) || v.split(/[\\/]/).includes('..')) {
      this.fail(prefix + key, `must name a file inside the package folder (got "${v}")`);
    }
    return v;
  }
}

/** Validates parsed manifest JSON; throws ArcError('model-corrupt') naming the field. */
export function validateManifest(raw: unknown, file: string): Manifest {
  const c = new Checker(file);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ArcError('model-corrupt', `${file}: the manifest must be a JSON object. Re-export the model package.`);
  }
  const root = raw as JsonObject;
  const format = c.string(root, 'format', '');
  if (format !== MANIFEST_FORMAT) {
    c.fail('format', `must be "${MANIFEST_FORMAT}" (got ${JSON.stringify(format)}); this runtime reads only that format`);
  }

  const e = c.object(root, 'encoder', '');
  const encoder: Manifest['encoder'] = {
    file: c.fileName(e, 'file', 'encoder.'),
    // Encoder-only packages converted from a checkpoint may ship no tokenizer (null); they are
    // used with token ids, and '' stands for "none" so the Manifest type stays a string.
    tokenizer: e.tokenizer === null && root.decoder === null ? '' : c.fileName(e, 'tokenizer', 'encoder.'),
    poolingFactor: c.int(e, 'poolingFactor', 'encoder.', 1),
    maxChunkTokens: c.int(e, 'maxChunkTokens', 'encoder.', 1),
    hiddenSize: c.int(e, 'hiddenSize', 'encoder.', 1),
    outputSize: c.int(e, 'outputSize', 'encoder.', 1),
    decoderIndex: c.int(e, 'decoderIndex', 'encoder.', 0),
    addBos: c.bool(e, 'addBos', 'encoder.'),
  };
  const source = c.string(e, 'source', 'encoder.', true);
  if (source !== undefined) encoder.source = source;

  let decoder: Manifest['decoder'] = null;
  if (root.decoder === undefined) c.fail('decoder', 'is missing (use null for an encoder-only package)');
  if (root.decoder !== null) {
    const d = c.object(root, 'decoder', '');
    decoder = {
      file: c.fileName(d, 'file', 'decoder.'),
      embed: c.fileName(d, 'embed', 'decoder.'),
      tokenizer: c.fileName(d, 'tokenizer', 'decoder.'),
      hiddenSize: c.int(d, 'hiddenSize', 'decoder.', 1),
      numLayers: c.int(d, 'numLayers', 'decoder.', 1),
      numHeads: c.int(d, 'numHeads', 'decoder.', 1),
      numKvHeads: c.int(d, 'numKvHeads', 'decoder.', 1),
      headDim: c.int(d, 'headDim', 'decoder.', 1),
      vocabSize: c.int(d, 'vocabSize', 'decoder.', 1),
      contextLength: c.int(d, 'contextLength', 'decoder.', 1),
      bosTokenId: c.int(d, 'bosTokenId', 'decoder.', 0),
      eosTokenId: c.int(d, 'eosTokenId', 'decoder.', 0),
    };
    if (decoder.hiddenSize !== encoder.outputSize) {
      c.fail('decoder.hiddenSize', `must equal encoder.outputSize (${encoder.outputSize}); the compressed vectors are decoder embeddings`);
    }
    if (decoder.bosTokenId >= decoder.vocabSize) c.fail('decoder.bosTokenId', `must be below decoder.vocabSize (${decoder.vocabSize})`);
    if (decoder.eosTokenId >= decoder.vocabSize) c.fail('decoder.eosTokenId', `must be below decoder.vocabSize (${decoder.vocabSize})`);
  }

  // addBos prepends the decoder's BOS id; it must exist and leave room for one real token.
  if (encoder.addBos && decoder === null) {
    c.fail('encoder.addBos', 'is true but the package has no decoder, so there is no decoder.bosTokenId to prepend; set it to false');
  }
  if (encoder.addBos && encoder.maxChunkTokens < 2) {
    c.fail('encoder.maxChunkTokens', 'must be at least 2 when encoder.addBos is true (one slot is the BOS token)');
  }

  const p = c.object(root, 'prompt', '');
  const questionTemplate = c.requiredString(p, 'questionTemplate', 'prompt.');
  if (!questionTemplate.includes('{question}')) c.fail('prompt.questionTemplate', 'must contain "{question}"');
  const stopRaw = p.stop;
  if (!Array.isArray(stopRaw) || stopRaw.some((s) => typeof s !== 'string' || s.length === 0)) {
    c.fail('prompt.stop', stopRaw === undefined ? 'is missing' : 'must be a list of non-empty strings');
  }
  const prompt: Manifest['prompt'] = {
    questionTemplate,
    stop: stopRaw as string[],
    maxNewTokens: c.int(p, 'maxNewTokens', 'prompt.', 1),
  };
  if (p.mixedTextBudget !== undefined) prompt.mixedTextBudget = c.int(p, 'mixedTextBudget', 'prompt.', 1);
  if (p.extractive !== undefined) prompt.extractive = c.bool(p, 'extractive', 'prompt.');
  if (p.contextOrder !== undefined) {
    const order = p.contextOrder;
    if (order !== 'document' && order !== 'rank') c.fail('prompt.contextOrder', 'must be "document" or "rank"');
    prompt.contextOrder = order as 'document' | 'rank';
  }
  if (p.quoteChunks !== undefined) prompt.quoteChunks = c.int(p, 'quoteChunks', 'prompt.', 1);

  const f = c.object(root, 'documentFormat', '');
  const documentFormat: Manifest['documentFormat'] = { header: c.string(f, 'header', 'documentFormat.') ?? '' };
  if (f.compressedHeader !== undefined) documentFormat.compressedHeader = c.bool(f, 'compressedHeader', 'documentFormat.');

  const manifest: Manifest = { format: MANIFEST_FORMAT, name: c.requiredString(root, 'name', ''), encoder, decoder, prompt, documentFormat };
  const description = c.string(root, 'description', '', true);
  if (description !== undefined) manifest.description = description;
  const license = c.string(root, 'license', '', true);
  if (license !== undefined) manifest.license = license;
  return manifest;
}

/** Raw bytes and parsed form of `<dir>/arc-model.json`. */
export interface ManifestFile {
  path: string;
  bytes: Buffer;
  manifest: Manifest;
}

export async function readManifest(dir: string): Promise<ManifestFile> {
  const dirStat = await stat(dir).catch(() => null);
  if (!dirStat?.isDirectory()) {
    throw new ArcError('model-missing', `Model folder ${dir} does not exist. Point --model at an arc-model/1 package folder.`);
  }
  const path = join(dir, MANIFEST_FILE);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new ArcError('model-missing', `${path} is missing (${errorMessage(e)}). The folder is not an arc-model/1 package; export one with tools/export.py or choose another folder.`, { cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new ArcError('model-corrupt', `${path} is not valid JSON (${errorMessage(e)}). Re-export the model package.`, { cause: e });
  }
  return { path, bytes, manifest: validateManifest(raw, path) };
}

/** Absolute path of a package file, checking that it exists and is not empty. */
export async function packageFile(dir: string, name: string, field: string): Promise<string> {
  const path = join(dir, name);
  const s = await stat(path).catch(() => null);
  if (!s?.isFile()) {
    throw new ArcError('model-missing', `${path} (manifest field ${field}) is missing. Copy the complete model package or re-export it.`);
  }
  if (s.size === 0) {
    throw new ArcError('model-corrupt', `${path} (manifest field ${field}) is empty. Copy the complete model package or re-export it.`);
  }
  return path;
}

/** What the contract requires of one ONNX file; `optionalInputs` may be absent. */
export interface IoContract {
  inputs: readonly string[];
  optionalInputs?: readonly string[];
  outputs: readonly string[];
}

export const ENCODER_IO: IoContract = {
  inputs: ['input_ids', 'attention_mask', 'pool_matrix'],
  outputs: ['embeddings', 'cont_embedding'],
};

export const EMBED_IO: IoContract = { inputs: ['input_ids'], outputs: ['inputs_embeds'] };

export function decoderIo(numLayers: number): IoContract {
  const past: string[] = [];
  const present: string[] = [];
  for (let i = 0; i < numLayers; i++) {
    past.push(`past_key_values.${i}.key`, `past_key_values.${i}.value`);
    present.push(`present.${i}.key`, `present.${i}.value`);
  }
  // position_ids is optional: some exporters derive positions from attention_mask.
  return { inputs: ['inputs_embeds', 'attention_mask', ...past], optionalInputs: ['position_ids'], outputs: ['logits', ...present] };
}

/**
 * Compares a session's names with the contract. Returns the optional inputs the session
 * has, so callers feed only those.
 */
export function checkIo(
  file: string,
  session: { readonly inputNames: readonly string[]; readonly outputNames: readonly string[] },
  contract: IoContract,
): Set<string> {
  const inputs = new Set(session.inputNames);
  const outputs = new Set(session.outputNames);
  const optional = new Set(contract.optionalInputs ?? []);
  const missingIn = contract.inputs.filter((n) => !inputs.has(n));
  const missingOut = contract.outputs.filter((n) => !outputs.has(n));
  const unknownIn = session.inputNames.filter((n) => !contract.inputs.includes(n) && !optional.has(n));
  const problems: string[] = [];
  if (missingIn.length) problems.push(`missing inputs ${missingIn.join(', ')}`);
  if (missingOut.length) problems.push(`missing outputs ${missingOut.join(', ')}`);
  // An input we would not feed makes every run fail, so it is an error too.
  if (unknownIn.length) problems.push(`unexpected inputs ${unknownIn.join(', ')}`);
  if (problems.length) {
    throw new ArcError(
      'model-corrupt',
      `${file} does not follow the arc-model/1 ONNX contract: ${problems.join('; ')} (has inputs ${session.inputNames.join(', ')}; outputs ${session.outputNames.join(', ')}). Re-export it with tools/export.py.`,
    );
  }
  return new Set([...optional].filter((n) => inputs.has(n)));
}
