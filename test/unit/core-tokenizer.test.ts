// The tokenizer's piece-cached fast path (src/core/tokenizer.ts) against the library's own encode,
// on real source files and on texts chosen to break a wrong split: both must give the same ids.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadTokenizer, type HfTokenizer } from '../../src/core/tokenizer';
import { REPO, TINY } from './core-fixture';

const TOKENIZERS = [join(TINY, 'tokenizer.json'), join(REPO, 'models', 'arc-tiny-code', 'tokenizer.json')];

function sourceFiles(dir: string, out: string[], limit: number): string[] {
  for (const name of readdirSync(dir).sort()) {
    if (out.length >= limit) break;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sourceFiles(p, out, limit);
    else if (/\.(ts|js|mjs|py|md|json)$/.test(name)) out.push(p);
  }
  return out;
}

const EDGE_CASES = [
  'fn  main() {\r\n\treturn 0;\r\n}\r\n',
  '   \n\n\n    leading and trailing   \t\n',
  'naïve café — “quotes” ünïcödé ß 中文 日本語 한국어 emoji 🚀👩‍💻 \u0000\u0007 \uFEFF',
  'x'.repeat(5000),
  `${'=+-*/'.repeat(300)}\n${' '.repeat(400)}end`,
  'a<|bos|>b <|eos|> <|pad|>', // added tokens inside text: the library's own path
  'const snake_case_ident = CamelCaseIdent123 + 0x1F_FF - 1e-9;',
  '',
];

for (const tp of TOKENIZERS) {
  const name = tp.includes('fixtures') ? 'tiny-arc fixture' : 'arc-tiny-code';

  test(`${name}: the fast path is on for this tokenizer shape`, async () => {
    const tok = await loadTokenizer(tp);
    assert.equal(tok.fastPath, true);
  });

  test(`${name}: fast path ids equal the library's on real files and edge cases, cold and warm`, async () => {
    const files = [...sourceFiles(join(REPO, 'src'), [], 200), ...sourceFiles(join(REPO, 'node_modules', '@types', 'node'), [], 20)];
    const texts = [...files.map((f) => readFileSync(f, 'utf8')), ...EDGE_CASES];
    // Lines too: the chunker tokenizes line by line, then each chunk.
    texts.push(...texts.slice(0, 20).flatMap((t) => t.split('\n').map((l) => `${l}\n`)));
    const tok: HfTokenizer = await loadTokenizer(tp);
    for (const pass of ['cold', 'warm']) {
      texts.forEach((t, i) => {
        assert.deepEqual(tok.encode(t), tok.encodeReference(t), `${pass}: text ${i} (${i < files.length ? files[i] : JSON.stringify(t.slice(0, 40))})`);
      });
    }
    for (const t of EDGE_CASES) assert.equal(tok.decode(tok.encode(t)), t, 'round trip');
  });
}

test('a tokenizer outside the fast path shape (a normalizer) takes the library path and still works', async () => {
  const json = JSON.parse(readFileSync(TOKENIZERS[0], 'utf8')) as Record<string, unknown>;
  json.normalizer = { type: 'Lowercase' };
  const dir = await mkdtemp(join(tmpdir(), 'arc-tok-'));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
  const tok = await loadTokenizer(join(dir, 'tokenizer.json'));
  assert.equal(tok.fastPath, false);
  assert.deepEqual(tok.encode('Hello World'), tok.encodeReference('Hello World'));
  assert.deepEqual(tok.encode('Hello World'), tok.encode('hello world'));
});
