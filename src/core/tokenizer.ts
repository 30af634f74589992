// Text <-> token ids through a Hugging Face tokenizer.json. The ARC contract wants text tokenized
// without special tokens (BOS is added explicitly where the prompt format says so) and decoded
// without clean-up, so that decode(encode(text)) === text for source code.
//
// Speed: @huggingface/tokenizers pays per call for its added-token splitter, a UTF-8 encoder and
// array copies per pre-token, and a 10k-entry LRU. For the common shape of a code tokenizer (no
// normalizer; pre-tokenizer = a regex Split then ByteLevel without its own regex; BPE) a text's
// ids are the concatenation of its pieces' ids, each piece's ids depend on the piece alone, and
// source code repeats its pieces (identifiers, indentation, punctuation runs) constantly. So the
// fast path splits with the library's own Split object, looks each piece up in a map, and runs
// only unseen pieces through the library's BPE model. Anything outside that shape, and any text
// that contains an added token, takes the library's full path. test/unit/core-tokenizer.test.ts
// checks both paths give the same ids on real files.
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import type { TextTokenizer } from './api';
import { ArcError, errorMessage } from './errors';

/** Pieces remembered before the map is cleared (a few MB; code rarely has this many distinct pieces). */
const PIECE_CACHE_MAX = 200_000;
/** Longer pieces (minified data, long runs of one character) are encoded each time. */
const PIECE_CACHE_MAX_CHARS = 128;

/** What the fast path uses of the library's objects (typed in its .d.ts as public fields). */
interface PieceSplitter {
  pre_tokenize_text(text: string): string[];
}
interface BpeModel {
  (tokens: string[]): string[];
  tokens_to_ids: Map<string, number>;
  unk_token_id?: number;
}

interface FastPath {
  split: PieceSplitter;
  model: BpeModel;
  /** Added tokens' content -> id (an added token wins over the vocabulary, as in the library). */
  added: Map<string, number>;
  /** Matches any added token's content; such texts take the library's path. */
  addedRe: RegExp | null;
  byteEncoder: string[];
}

type JsonRecord = Record<string, unknown>;

function isRecord(v: unknown): v is JsonRecord {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** GPT-2's byte -> printable character table, which ByteLevel uses. */
function bytesToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) keep.push(b);
  for (let b = 0xa1; b <= 0xac; b++) keep.push(b);
  for (let b = 0xae; b <= 0xff; b++) keep.push(b);
  const out = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCharCode(keep.includes(b) ? b : 256 + n++);
  return out;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The fast path for this tokenizer, or null when its configuration is outside the shape where
 * splitting into pieces first provably gives the library's ids.
 */
function fastPathFor(tok: Tokenizer, json: JsonRecord, config: JsonRecord): FastPath | null {
  if (json.normalizer !== null && json.normalizer !== undefined) return null;
  if (config.remove_space === true || config.do_lowercase_and_remove_accent === true) return null;
  const model = json.model;
  if (!isRecord(model) || model.type !== 'BPE' || (model.dropout !== null && model.dropout !== undefined) || model.fuse_unk === true) return null;
  const pre = json.pre_tokenizer;
  if (!isRecord(pre) || pre.type !== 'Sequence' || !Array.isArray(pre.pretokenizers) || pre.pretokenizers.length !== 2) return null;
  const [split, byteLevel] = pre.pretokenizers as unknown[];
  if (!isRecord(split) || split.type !== 'Split' || split.invert === true || String(split.behavior).toLowerCase() !== 'isolated') return null;
  if (!isRecord(split.pattern) || typeof split.pattern.Regex !== 'string') return null;
  if (!isRecord(byteLevel) || byteLevel.type !== 'ByteLevel' || byteLevel.add_prefix_space === true || byteLevel.use_regex !== false) return null;
  // The library's own objects for the Split step and the model, so the pieces and the BPE are its.
  const seq = (tok.pre_tokenizer as unknown as { tokenizers?: unknown[] } | null)?.tokenizers;
  const splitObj = seq?.[0] as PieceSplitter | undefined;
  const bpe = tok.model as unknown as BpeModel | null;
  if (typeof splitObj?.pre_tokenize_text !== 'function' || typeof bpe !== 'function' || !(bpe.tokens_to_ids instanceof Map)) return null;
  const added = new Map<string, number>();
  for (const t of Array.isArray(json.added_tokens) ? (json.added_tokens as unknown[]) : []) {
    if (isRecord(t) && typeof t.content === 'string' && typeof t.id === 'number' && t.content !== '') added.set(t.content, t.id);
  }
  const addedRe = added.size > 0 ? new RegExp([...added.keys()].map(escapeRegExp).join('|')) : null;
  return { split: splitObj, model: bpe, added, addedRe, byteEncoder: bytesToUnicode() };
}

export class HfTokenizer implements TextTokenizer {
  private readonly pieces = new Map<string, readonly number[]>();
  private readonly utf8 = new TextEncoder();

  constructor(
    private readonly tok: Tokenizer,
    readonly path: string,
    private readonly fast: FastPath | null = null,
  ) {}

  /** Whether encode() takes the piece-cached path (see the file comment). */
  get fastPath(): boolean {
    return this.fast !== null;
  }

  encode(text: string): number[] {
    if (text.length === 0) return [];
    const f = this.fast;
    if (f === null || (f.addedRe !== null && f.addedRe.test(text))) return this.encodeReference(text);
    const out: number[] = [];
    for (const piece of f.split.pre_tokenize_text(text)) {
      let ids = this.pieces.get(piece);
      if (ids === undefined) {
        ids = this.encodePiece(f, piece);
        if (piece.length <= PIECE_CACHE_MAX_CHARS) {
          if (this.pieces.size >= PIECE_CACHE_MAX) this.pieces.clear();
          this.pieces.set(piece, ids);
        }
      }
      for (let i = 0; i < ids.length; i++) out.push(ids[i]);
    }
    return out;
  }

  /** The library's own encode, without the fast path (the parity tests and the benchmark compare with it). */
  encodeReference(text: string): number[] {
    if (text.length === 0) return [];
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  /** ByteLevel then BPE on one piece, and token strings to ids as the library's encode maps them. */
  private encodePiece(f: FastPath, piece: string): number[] {
    let mapped = '';
    for (const b of this.utf8.encode(piece)) mapped += f.byteEncoder[b];
    return f.model([mapped]).map((t) => f.added.get(t) ?? f.model.tokens_to_ids.get(t) ?? (f.model.unk_token_id as number));
  }

  decode(ids: number[]): string {
    // The library rejects an empty list; an empty answer is a normal case here.
    if (ids.length === 0) return '';
    return this.tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  /** Vocabulary id of a token string, if the tokenizer has it. */
  tokenId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }
}

async function readJson(path: string, what: string): Promise<JsonRecord> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ArcError('model-missing', `${path} (${what}) is missing (${errorMessage(e)}). Copy the complete model package.`, { cause: e });
  }
  try {
    const v: unknown = JSON.parse(text);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as JsonRecord;
  } catch (e) {
    throw new ArcError('model-corrupt', `${path} (${what}) is not valid JSON (${errorMessage(e)}). Re-export the model package.`, { cause: e });
  }
}

/**
 * Loads `tokenizer.json`, plus `tokenizer_config.json` from the same folder when present.
 * Our settings override the config's: no clean-up of spaces, which would break round trips.
 */
export async function loadTokenizer(path: string): Promise<HfTokenizer> {
  const json = await readJson(path, 'tokenizer');
  const configPath = join(dirname(path), 'tokenizer_config.json');
  let config: JsonRecord = {};
  try {
    config = await readJson(configPath, 'tokenizer config');
  } catch (e) {
    if (!(e instanceof ArcError && e.code === 'model-missing')) throw e;
  }
  try {
    const tok = new Tokenizer(json, { ...config, clean_up_tokenization_spaces: false });
    return new HfTokenizer(tok, path, fastPathFor(tok, json, config));
  } catch (e) {
    throw new ArcError('model-corrupt', `${path} is not a usable Hugging Face tokenizer (${errorMessage(e)}). Re-export the model package.`, { cause: e });
  }
}
