// Shared by the core-*.test.ts files: where the golden fixtures are and how to compare floats.
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const REPO = resolve(__dirname, '..', '..');
/** The random tiny package made by tools/make_fixtures.py (schema in docs/DESIGN.md). */
export const TINY = process.env.ARC_TINY_FIXTURE ?? join(REPO, 'test', 'fixtures', 'tiny-arc');
export const HAS_TINY = existsSync(join(TINY, 'golden.json'));
export const NO_TINY = HAS_TINY ? false : `fixture ${TINY} not present (made by tools/make_fixtures.py)`;

export interface Golden {
  encoder: { token_ids: number[]; group_sizes: number[]; embeddings: number[][] }[];
  cont: number[];
  decoder: { input_ids: number[]; logits_last: number[]; logits_full: number[][] };
  greedy: { prompt_ids: number[]; max_new_tokens: number; output_ids: number[] }[];
}

export function golden(): Golden {
  return JSON.parse(readFileSync(join(TINY, 'golden.json'), 'utf8')) as Golden;
}

/** max|a - b| / max|b|: the parity measure the fixtures' READMEs use. */
export function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let diff = 0;
  let ref = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    ref = Math.max(ref, Math.abs(b[i]!));
  }
  return diff / ref;
}

/** A private copy of the tiny package that a test may break. */
export async function copyTiny(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'arc-core-'));
  await cp(TINY, dir, { recursive: true });
  return dir;
}
