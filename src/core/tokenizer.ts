// Text <-> token ids through a Hugging Face tokenizer.json. The ARC contract wants text tokenized
// without special tokens (BOS is added explicitly where the prompt format says so) and decoded
// without clean-up, so that decode(encode(text)) === text for source code.
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import type { TextTokenizer } from './api';
import { ArcError, errorMessage } from './errors';

export class HfTokenizer implements TextTokenizer {
  constructor(private readonly tok: Tokenizer, readonly path: string) {}

  encode(text: string): number[] {
    if (text.length === 0) return [];
    return this.tok.encode(text, { add_special_tokens: false }).ids;
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

type JsonRecord = Record<string, unknown>;

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
    return new HfTokenizer(tok, path);
  } catch (e) {
    throw new ArcError('model-corrupt', `${path} is not a usable Hugging Face tokenizer (${errorMessage(e)}). Re-export the model package.`, { cause: e });
  }
}
