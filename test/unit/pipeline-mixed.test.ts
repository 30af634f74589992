// Mixed mode (selective expansion): the plan (which chunks as text, which compressed), the
// decoder prefix layout, ask() end to end on the real tiny-arc package, the CLI and the manifest's
// prompt.mixedTextBudget. The decoder is real; the prefix it receives is recorded on the way in.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { ArcModel, PrefixPart } from '../../src/core/api';
import { ask } from '../../src/core/ask';
import { planMixed, type FormCosts } from '../../src/core/context/plan';
import { ArcError } from '../../src/core/errors';
import { validateManifest } from '../../src/core/manifest';
import { loadModel } from '../../src/core/model';
import { buildPrefix, DEFAULT_MIXED_TEXT_BUDGET, mixedTextBudget, questionText, renderChunk } from '../../src/core/prompt';
import type { AskEvent, AskRequest, Citation, SourceInput } from '../../src/core/types';
import { cli } from './cli-helper';
import { copyTiny } from './core-fixture';
import { TINY_ARC, useTinyArc } from './pipeline-helpers';

const WORKSPACE = path.resolve(__dirname, '../fixtures/workspace-py');
const { skip, model: tinyArc } = useTinyArc();
let model: ArcModel;
before(async () => {
  if (!skip) model = await tinyArc();
});

type Ev<T extends AskEvent['type']> = Extract<AskEvent, { type: T }>;
const one = <T extends AskEvent['type']>(events: AskEvent[], type: T): Ev<T> => {
  const found = events.filter((e): e is Ev<T> => e.type === type);
  assert.equal(found.length, 1, `expected one ${type} event, got ${found.length}: ${JSON.stringify(events.filter((e) => e.type === 'error'))}`);
  return found[0];
};

// --- the plan ---------------------------------------------------------------------------------

const costs: FormCosts[] = [
  { text: 50, compressed: 14 },
  { text: 30, compressed: 9 },
  { text: 20, compressed: 6 },
  { text: 40, compressed: 11 },
];

test('plan: the best chunk is text even beyond the text budget; the others are text only within it', () => {
  assert.deepEqual(planMixed([2, 0, 1, 3], costs, 10, 200), { text: [2], compressed: [0, 1, 3], leftOut: [], partial: null, used: 20 + 14 + 9 + 11, ranked: [2, 0, 1, 3] });
  // 60 tokens: the best (20) and then the next that fits what is left (30 of 40), in rank order.
  assert.deepEqual(planMixed([2, 0, 1, 3], costs, 60, 200), { text: [1, 2], compressed: [0, 3], leftOut: [], partial: null, used: 20 + 14 + 30 + 11, ranked: [2, 0, 1, 3] });
  // Everything as text when the budgets allow it.
  assert.deepEqual(planMixed([0, 1, 2, 3], costs, 1000, 1000).text, [0, 1, 2, 3]);
});

test('plan: a 0 text budget reads only the best chunk as text', () => {
  for (const ranked of [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]]) {
    const p = planMixed(ranked, costs, 0, 200);
    assert.deepEqual(p.text, [ranked[0]]);
    assert.deepEqual(p.compressed, ranked.slice(1).sort((a, b) => a - b));
  }
});

test('plan: the window decides: compressed when the text does not fit, left out when neither does', () => {
  // The best chunk (50 tokens) does not fit a 35-position window as text: it is compressed.
  const p = planMixed([0, 1, 2, 3], costs, 1000, 35);
  assert.deepEqual(p, { text: [], compressed: [0, 1, 2], leftOut: [3], partial: null, used: 14 + 9 + 6, ranked: [0, 1, 2] });
  assert.deepEqual(planMixed([0, 1, 2, 3], costs, 1000, 5), { text: [], compressed: [], leftOut: [0, 1, 2, 3], partial: null, used: 0, ranked: [] });
  // Rank order is the walk's: a chunk passed over keeps its place among those taken.
  assert.deepEqual(planMixed([3, 0, 2, 1], costs, 0, 60).ranked, [3, 0, 2, 1].filter((i) => planMixed([3, 0, 2, 1], costs, 0, 60).leftOut.indexOf(i) < 0));
});

test('plan: invariants on random inputs (budgets kept, every chunk counted once, nothing that fits left out)', () => {
  let seed = 7;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let round = 0; round < 500; round++) {
    const n = 1 + rnd(12);
    const cs: FormCosts[] = Array.from({ length: n }, () => {
      const text = 1 + rnd(120);
      return { text, compressed: 2 + Math.ceil(text / 4) };
    });
    const ranked = Array.from({ length: n }, (_, i) => i).sort(() => rnd(3) - 1);
    const textBudget = rnd(200);
    const budget = rnd(300);
    const p = planMixed(ranked, cs, textBudget, budget);
    const all = [...p.text, ...p.compressed, ...p.leftOut].sort((a, b) => a - b);
    assert.deepEqual(all, Array.from({ length: n }, (_, i) => i), 'each chunk exactly once');
    for (const list of [p.text, p.compressed, p.leftOut]) assert.deepEqual(list, [...list].sort((a, b) => a - b), 'document order');
    const used = p.text.reduce((s, i) => s + cs[i].text, 0) + p.compressed.reduce((s, i) => s + cs[i].compressed, 0);
    assert.equal(p.used, used);
    assert.ok(used <= budget, 'window budget');
    const top = ranked[0];
    assert.equal(p.text.includes(top), cs[top].text <= budget, 'the best chunk is text exactly when it fits the window');
    const textUsed = p.text.reduce((s, i) => s + cs[i].text, 0);
    assert.ok(textUsed <= Math.max(textBudget, p.text.includes(top) ? cs[top].text : 0), 'text budget');
    for (const i of p.leftOut) assert.ok(cs[i].compressed > budget - used, 'a left-out chunk did not fit even compressed');
  }
});

// --- the prefix -------------------------------------------------------------------------------

test('prefix: [BOS], the compressed chunks exactly as arc lays them out, then the text chunks exactly as full does, then the question', { skip }, async () => {
  const format = model.manifest.documentFormat;
  const texts = [renderChunk(format, 'a.py', 'LIMIT = 10'), renderChunk(format, 'b.py', 'def f(a, b):\n    return a + b'), renderChunk(format, 'c.ts', 'export const x = 1;')];
  const ids = texts.map((t) => model.tokenizer.encode(t));
  const compressed = await model.encoder.encode([ids[0], ids[2]]);
  const q = 'What is the value of `LIMIT`?';
  const arc = buildPrefix(model, 'arc', compressed, q);
  const full = buildPrefix(model, 'full', [ids[1]], q);
  const mixed = buildPrefix(model, 'mixed', { compressed, text: [ids[1]] }, q);
  assert.deepEqual(mixed.parts, [arc.parts[0], ...arc.parts.slice(1, -1), ...full.parts.slice(1, -1), arc.parts.at(-1)]);
  const qLen = model.tokenizer.encode(questionText(model.manifest, q)).length;
  const vectors = compressed.reduce((n, c) => n + c.count + 1, 0);
  assert.equal(mixed.contextPositions, vectors + ids[1].length);
  assert.equal(mixed.positions, 1 + vectors + ids[1].length + qLen);
  assert.equal(mixed.contextPositions, arc.contextPositions + full.contextPositions);
  // Rendered texts and their ids make the same prefix; an empty side is allowed.
  assert.deepEqual(buildPrefix(model, 'mixed', { compressed, text: [texts[1]] }, q).parts, mixed.parts);
  assert.deepEqual(buildPrefix(model, 'mixed', { compressed: [], text: [ids[1]] }, q).parts, full.parts);
  assert.deepEqual(buildPrefix(model, 'mixed', { compressed, text: [] }, q).parts, arc.parts);
  assert.throws(() => buildPrefix(model, 'mixed', [ids[1]] as never, q), ArcError);
  assert.throws(() => buildPrefix(model, 'arc', { compressed, text: [] } as never, q), ArcError);
  assert.throws(() => buildPrefix(model, 'mixed', { compressed: [ids[0]] as never, text: [] }, q), ArcError);
});

test('text budget: the caller\'s, else the manifest\'s, else 160; a negative or fractional one is refused', () => {
  const manifest = { prompt: { questionTemplate: '{question}', stop: [], maxNewTokens: 4 } } as unknown as Parameters<typeof mixedTextBudget>[0];
  assert.equal(DEFAULT_MIXED_TEXT_BUDGET, 160);
  assert.equal(mixedTextBudget(manifest), 160);
  assert.equal(mixedTextBudget({ ...manifest, prompt: { ...manifest.prompt, mixedTextBudget: 96 } }), 96);
  assert.equal(mixedTextBudget({ ...manifest, prompt: { ...manifest.prompt, mixedTextBudget: 96 } }, 0), 0);
  assert.throws(() => mixedTextBudget(manifest, -1), ArcError);
  assert.throws(() => mixedTextBudget(manifest, 2.5), ArcError);
});

// --- ask() ------------------------------------------------------------------------------------

/** Small files: several fit the tiny 128-position window as text, not all of them even compressed. */
const SOURCES: SourceInput[] = [
  { path: 'limits.py', text: 'LIMIT = 10\nOTHER = 2\n', origin: 'workspace' },
  ...Array.from({ length: 12 }, (_, i) => ({
    path: `mod${i}.py`,
    text: `def f${i}(a):\n    return a\n`,
    origin: 'workspace' as const,
  })),
];
const QUESTION = 'What is the value of `LIMIT`?';

/** Runs ask() with the real model; the prefix the real decoder receives is recorded. */
async function run(m: ArcModel, req: Partial<AskRequest>): Promise<{ events: AskEvent[]; prefix: PrefixPart[]; answerFrom: string | undefined }> {
  const dec = m.decoder!;
  let prefix: PrefixPart[] = [];
  let answerFrom: string | undefined;
  const recording: ArcModel = {
    dir: m.dir,
    manifest: m.manifest,
    provider: m.provider,
    identity: m.identity,
    tokenizer: m.tokenizer,
    encoder: m.encoder,
    decoder: {
      contextLength: dec.contextLength,
      ...(dec.tokenizer ? { tokenizer: dec.tokenizer } : {}),
      generate: (parts, opts) => {
        prefix = parts;
        answerFrom = opts?.answerFrom;
        return dec.generate(parts, opts);
      },
    },
    dispose: async () => {},
  };
  const events: AskEvent[] = [];
  for await (const e of ask(recording, { question: QUESTION, mode: 'mixed', sources: SOURCES, maxNewTokens: 4, ...req })) events.push(e);
  return { events, prefix, answerFrom };
}

const overlaps = (a: Citation, b: Citation) => a.path === b.path && a.startLine <= b.endLine && b.startLine <= a.endLine;

test('ask, mixed: the best chunk as text nearest the question, the rest compressed before it; stats and selection by form', { skip }, async () => {
  const { events, prefix } = await run(model, { textBudget: 30 });
  const sel = one(events, 'selection');
  const stats = one(events, 'done').stats;
  assert.equal(stats.mode, 'mixed');
  assert.ok(stats.textChunks >= 1 && stats.compressedChunks >= 1 && stats.chunksLeftOut > 0, JSON.stringify(stats));
  assert.equal(stats.textChunks + stats.compressedChunks, stats.chunksIncluded);
  assert.equal(stats.chunksIncluded + stats.chunksLeftOut, SOURCES.length, 'every chunk counted (one chunk per file here)');
  assert.ok(stats.contextPositions <= sel.budget);
  assert.equal(stats.ratio, stats.sourceTokens / stats.contextPositions);
  assert.ok(stats.textTokens > 0 && stats.textTokens < stats.sourceTokens);
  assert.ok(stats.textTokens <= 30 || stats.textChunks === 1, 'only the best chunk may exceed the text budget');
  // The chunk that defines LIMIT ranks first and is read as text.
  assert.deepEqual(sel.text[0], { path: 'limits.py', startLine: 1, endLine: 2 });
  assert.equal(sel.text.length, stats.textChunks);
  assert.equal(sel.compressed.length, stats.compressedChunks);
  for (const t of sel.text) for (const c of sel.compressed) assert.ok(!overlaps(t, c), 'a chunk is read in one form');
  assert.deepEqual(one(events, 'citations').citations, sel.included);
  assert.equal(sel.files.reduce((n, f) => n + f.textChunks, 0), stats.textChunks);
  assert.equal(sel.files.reduce((n, f) => n + f.included, 0), stats.chunksIncluded);

  // The prefix the decoder read: BOS, (vectors, <Cont>) per compressed chunk, text chunks, question.
  const bos = model.manifest.decoder!.bosTokenId;
  assert.deepEqual(prefix[0], { kind: 'tokens', ids: [bos] });
  const k = stats.compressedChunks;
  for (let i = 0; i < k; i++) {
    const v = prefix[1 + 2 * i];
    const cont = prefix[2 + 2 * i];
    assert.ok(v.kind === 'vectors' && v.count > 0);
    assert.ok(cont.kind === 'vectors' && cont.count === 1 && cont.data === model.encoder.cont);
  }
  const textParts = prefix.slice(1 + 2 * k, -1);
  assert.equal(textParts.length, stats.textChunks);
  const byPath = new Map(SOURCES.map((s) => [s.path, s.text!]));
  textParts.forEach((p, i) => {
    assert.equal(p.kind, 'tokens');
    // Exactly full mode's form: the rendered chunk's token ids.
    assert.deepEqual(p.kind === 'tokens' && p.ids, model.tokenizer.encode(renderChunk(model.manifest.documentFormat, sel.text[i].path, byPath.get(sel.text[i].path)!)));
  });
  assert.deepEqual(prefix.at(-1), { kind: 'tokens', ids: model.tokenizer.encode(questionText(model.manifest, QUESTION)) });
  const vectors = prefix.slice(1, 1 + 2 * k).reduce((n, p) => n + (p.kind === 'vectors' ? p.count : 0), 0);
  const textTokens = textParts.reduce((n, p) => n + (p.kind === 'tokens' ? p.ids.length : 0), 0);
  assert.equal(stats.compressedVectors + stats.compressedChunks, vectors);
  assert.equal(stats.contextPositions, vectors + textTokens, 'positions = vectors + <Cont> + text tokens');
  assert.equal(stats.textTokens, textTokens, 'one tokenizer: source tokens read as text = decoder text tokens');
});

test('ask, mixed: text budget 0 reads one chunk as text, a large one more; without one the default (160) applies', { skip }, async () => {
  const sel = async (req: Partial<AskRequest>) => one((await run(model, req)).events, 'selection');
  const zero = await sel({ textBudget: 0 });
  assert.deepEqual(zero.text, [{ path: 'limits.py', startLine: 1, endLine: 2 }]);
  const large = await sel({ textBudget: 10_000 });
  assert.ok(large.text.length > 1, JSON.stringify(large.text));
  assert.ok(large.compressed.length < zero.compressed.length, 'text takes room compressed chunks had');
  const none = await sel({});
  assert.deepEqual(none, await sel({ textBudget: DEFAULT_MIXED_TEXT_BUDGET }));
});

test('ask, mixed: the manifest\'s prompt.mixedTextBudget is the default; the request overrides it', { skip }, async () => {
  const dir = await copyTiny();
  const file = path.join(dir, 'arc-model.json');
  const m = JSON.parse(await readFile(file, 'utf8')) as { prompt: Record<string, unknown> };
  m.prompt.mixedTextBudget = 1;
  await writeFile(file, JSON.stringify(m));
  const tuned = await loadModel(dir, { provider: 'cpu', threads: 1 });
  try {
    assert.equal(tuned.manifest.prompt.mixedTextBudget, 1);
    const fromManifest = one((await run(tuned, {})).events, 'selection');
    assert.deepEqual(fromManifest, one((await run(model, { textBudget: 1 })).events, 'selection'));
    assert.equal(fromManifest.text.length, 1);
    const overridden = one((await run(tuned, { textBudget: 10_000 })).events, 'selection');
    assert.ok(overridden.text.length > 1);
  } finally {
    await tuned.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});

test('ask, extractive: mixed answers quote the chunks read as text only; arc quotes the compressed chunks, full the text', { skip }, async () => {
  const byPath = new Map(SOURCES.map((s) => [s.path, s.text!]));
  const bodies = (cits: readonly Citation[]) => cits.map((c) => byPath.get(c.path)!);
  const mixed = await run(model, { textBudget: 30, extractive: true });
  const sel = one(mixed.events, 'selection');
  assert.ok(sel.text.length >= 1 && sel.compressed.length >= 1, JSON.stringify(sel));
  assert.ok(mixed.answerFrom !== undefined, 'extractive: the decoder gets the quotable text');
  for (const b of bodies(sel.text)) assert.ok(mixed.answerFrom!.includes(b), `text chunk quotable: ${b}`);
  // The compressed files all read `def fN(a)`; none of them may be quoted.
  for (const c of sel.compressed) assert.ok(!mixed.answerFrom!.includes(byPath.get(c.path)!), `compressed chunk not quotable: ${c.path}`);
  assert.ok(mixed.answerFrom!.endsWith(QUESTION), 'the question stays quotable');
  const answer = one(mixed.events, 'done').answer;
  assert.ok(mixed.answerFrom!.includes(answer), `the answer ${JSON.stringify(answer)} is a span of the text read`);
  for (const mode of ['arc', 'full'] as const) {
    const r = await run(model, { mode, extractive: true });
    const s = one(r.events, 'selection');
    for (const b of bodies(s.included)) assert.ok(r.answerFrom!.includes(b), `${mode}: every chunk read is quotable`);
  }
  assert.equal((await run(model, { textBudget: 30, extractive: false })).answerFrom, undefined, 'free decoding quotes nothing');
});

test('ask, prompt.contextOrder "rank" + prompt.quoteChunks: the best-ranked chunk first (mixed: text before compressed); extractive answers quote the N best-ranked chunks', { skip }, async () => {
  const withPrompt = (extra: Partial<ArcModel['manifest']['prompt']>): ArcModel => ({ ...model, manifest: { ...model.manifest, prompt: { ...model.manifest.prompt, ...extra } } });
  const ranked = withPrompt({ contextOrder: 'rank', quoteChunks: 1 });
  const format = model.manifest.documentFormat;
  const byPath = new Map(SOURCES.map((s) => [s.path, s.text!]));
  const best = renderChunk(format, 'limits.py', byPath.get('limits.py')!); // ranks first for QUESTION
  const sorted = (parts: PrefixPart[]) => parts.map((p) => JSON.stringify(p.kind === 'tokens' ? p.ids : [...p.data.slice(0, 4), p.count])).sort();

  // mixed: the same plan as in document order; the text chunks come first, the best one leading.
  const r = await run(ranked, { textBudget: 30, extractive: true });
  const doc = await run(model, { textBudget: 30, extractive: true });
  const sel = one(r.events, 'selection');
  assert.deepEqual(sel, one(doc.events, 'selection'), 'the order changes the layout only, not the plan');
  const t = sel.text.length;
  assert.ok(t >= 1 && sel.compressed.length >= 1, JSON.stringify(sel));
  assert.deepEqual(r.prefix[1], { kind: 'tokens', ids: model.tokenizer.encode(best) });
  for (const p of r.prefix.slice(1, 1 + t)) assert.equal(p.kind, 'tokens');
  for (const p of r.prefix.slice(1 + t, -1)) assert.equal(p.kind, 'vectors');
  assert.deepEqual(sorted(r.prefix), sorted(doc.prefix), 'the same parts, reordered');
  assert.equal(r.prefix.length, doc.prefix.length);
  // Quoting: the best-ranked chunk read as text, and the question.
  assert.equal(r.answerFrom, `${best}\n${QUESTION}`);

  // arc: the best chunk's vectors first; full: its tokens first. Each quotes the best chunk only.
  for (const mode of ['arc', 'full'] as const) {
    const a = await run(ranked, { mode, extractive: true });
    const d = await run(model, { mode, extractive: true });
    assert.equal(a.answerFrom, `${best}\n${QUESTION}`, mode);
    assert.ok(d.answerFrom!.length > a.answerFrom!.length, `${mode}: without quoteChunks every chunk read is quotable`);
    assert.deepEqual(sorted(a.prefix), sorted(d.prefix), `${mode}: the same parts, reordered`);
    if (mode === 'full') assert.deepEqual(a.prefix[1], { kind: 'tokens', ids: model.tokenizer.encode(best) });
    else {
      const [enc] = await model.encoder.encode([model.tokenizer.encode(best)]);
      const first = a.prefix[1];
      assert.ok(first.kind === 'vectors' && first.count === enc.count);
      assert.deepEqual(first.kind === 'vectors' && [...first.data], [...enc.vectors]);
    }
  }
  // quoteChunks alone leaves the document order; contextOrder alone quotes everything read.
  const quoteOnly = await run(withPrompt({ quoteChunks: 1 }), { mode: 'full', extractive: true });
  assert.equal(quoteOnly.answerFrom, `${best}\n${QUESTION}`);
  assert.deepEqual(quoteOnly.prefix, (await run(model, { mode: 'full', extractive: true })).prefix);
  const orderOnly = await run(withPrompt({ contextOrder: 'rank' }), { mode: 'full', extractive: true });
  assert.equal(orderOnly.answerFrom!.length, (await run(model, { mode: 'full', extractive: true })).answerFrom!.length);
});

test('ask: arc and full report their single form, and the ratio over the whole context', { skip }, async () => {
  for (const mode of ['arc', 'full'] as const) {
    const { events } = await run(model, { mode });
    const sel = one(events, 'selection');
    const s = one(events, 'done').stats;
    assert.deepEqual(mode === 'arc' ? sel.compressed : sel.text, sel.included);
    assert.deepEqual(mode === 'arc' ? sel.text : sel.compressed, []);
    assert.equal(mode === 'arc' ? s.compressedChunks : s.textChunks, s.chunksIncluded);
    assert.equal(s.ratio, s.sourceTokens / s.contextPositions);
    if (mode === 'arc') assert.equal(s.contextPositions, s.compressedVectors + s.chunksIncluded);
    else assert.equal(s.ratio, 1, 'one tokenizer: full text reads one position per source token');
  }
});

// --- manifest ---------------------------------------------------------------------------------

test('manifest: prompt.contextOrder is "document" or "rank", prompt.quoteChunks a positive integer; both optional', async () => {
  const good = JSON.parse(await readFile(path.join(TINY_ARC, 'arc-model.json'), 'utf8')) as Record<string, any>;
  const v = (extra: Record<string, unknown>) => validateManifest({ ...good, prompt: { ...good.prompt, ...extra } }, '/pkg/arc-model.json').prompt;
  assert.equal(v({}).contextOrder, undefined);
  assert.equal(v({}).quoteChunks, undefined);
  assert.equal(v({ contextOrder: 'rank' }).contextOrder, 'rank');
  assert.equal(v({ contextOrder: 'document' }).contextOrder, 'document');
  assert.equal(v({ quoteChunks: 2 }).quoteChunks, 2);
  const corrupt = (field: string) => (e: unknown) => e instanceof ArcError && e.code === 'model-corrupt' && e.message.includes(`"prompt.${field}"`);
  for (const bad of ['Rank', 'relevance', 1, null, true]) assert.throws(() => v({ contextOrder: bad }), corrupt('contextOrder'), JSON.stringify(bad));
  for (const bad of [0, -1, 1.5, '1', null]) assert.throws(() => v({ quoteChunks: bad }), corrupt('quoteChunks'), JSON.stringify(bad));
});

test('manifest: prompt.mixedTextBudget is optional and, when present, a positive integer', async () => {
  const good = JSON.parse(await readFile(path.join(TINY_ARC, 'arc-model.json'), 'utf8')) as Record<string, any>;
  assert.equal(validateManifest(good, 'x').prompt.mixedTextBudget, undefined);
  assert.equal(validateManifest({ ...good, prompt: { ...good.prompt, mixedTextBudget: 96 } }, 'x').prompt.mixedTextBudget, 96);
  for (const bad of [0, -3, 2.5, '160', null, true]) {
    assert.throws(
      () => validateManifest({ ...good, prompt: { ...good.prompt, mixedTextBudget: bad } }, '/pkg/arc-model.json'),
      (e: unknown) => e instanceof ArcError && e.code === 'model-corrupt' && e.message.includes('"prompt.mixedTextBudget"') && e.message.includes('/pkg/arc-model.json'),
      `mixedTextBudget ${JSON.stringify(bad)}`,
    );
  }
});

// --- CLI --------------------------------------------------------------------------------------

test('CLI: ask --mode mixed --json on a folder larger than the window', { skip }, async () => {
  const base = ['ask', '--root', WORKSPACE, '--model', TINY_ARC, '--provider', 'cpu', '--threads', '1', '--no-cache', '--max-new-tokens', '3', '--json'];
  const r = await cli(...base, '--mode', 'mixed', '--text-budget', '40', 'Which file defines `parse_config`?');
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out) as { stats: Record<string, number | string>; citations: Citation[] };
  const s = j.stats as Record<string, number>;
  assert.equal(j.stats.mode, 'mixed');
  assert.ok(s.chunksLeftOut > 0, 'workspace-py does not fit the 128-position window');
  assert.ok(s.textChunks >= 1 && s.compressedChunks >= 1, JSON.stringify(s));
  assert.equal(s.textChunks + s.compressedChunks, s.chunksIncluded);
  assert.equal(s.ratio, s.sourceTokens / s.contextPositions);
  assert.ok(j.citations.some((c) => c.path === 'pkg/config.py'));
  // No --mode: mixed is the default, with the same figures.
  const d = await cli(...base, '--text-budget', '40', 'Which file defines `parse_config`?');
  assert.equal(d.code, 0, d.err);
  const dj = JSON.parse(d.out) as { stats: Record<string, number | string> };
  assert.equal(dj.stats.mode, 'mixed');
  assert.deepEqual([dj.stats.textChunks, dj.stats.compressedChunks, dj.stats.contextPositions], [s.textChunks, s.compressedChunks, s.contextPositions]);
});

test('CLI: ask --file defaults to mixed and reports chunks by form', { skip }, async () => {
  const r = await cli('ask', '--model', TINY_ARC, '--provider', 'cpu', '--threads', '1', '--max-new-tokens', '3', '--json', '--file', path.join(WORKSPACE, 'pkg/config.py'), '--file', path.join(WORKSPACE, 'pkg/report.py'), 'Which file defines `render_report`?');
  assert.equal(r.code, 0, r.err);
  // The one ask --json shape (cli-ask-json.test.ts): the figures are under stats.
  const j = (JSON.parse(r.out) as { stats: Record<string, number | string> }).stats;
  assert.equal(j.mode, 'mixed');
  const n = (k: string) => j[k] as number;
  assert.ok(n('textChunks') + n('compressedChunks') >= 1);
  assert.ok(n('contextPositions') > 0);
  assert.equal(n('ratio'), n('sourceTokens') / n('contextPositions'));
  assert.ok(n('textTokens') <= n('sourceTokens'));
});

test('CLI: --text-budget must be a whole number of tokens and needs mixed mode; usage says mixed is the default', async () => {
  const base = ['ask', '--model', TINY_ARC, '--file', path.join(WORKSPACE, 'pkg/config.py')];
  for (const bad of ['x', '-1', '1.5', '', '1e3']) {
    const r = await cli(...base, `--text-budget=${bad}`, 'q?');
    assert.equal(r.code, 2, `--text-budget "${bad}": ${r.err}`);
    assert.match(r.err, /--text-budget must be an integer >= 0/);
  }
  const arc = await cli(...base, '--mode', 'arc', '--text-budget', '10', 'q?');
  assert.equal(arc.code, 2);
  assert.match(arc.err, /--text-budget applies to mixed mode only/);
  const mode = await cli(...base, '--mode', 'fast', 'q?');
  assert.equal(mode.code, 2);
  assert.match(mode.err, /--mode must be mixed, arc, full or none/);
  const help = await cli('ask', '--help');
  assert.equal(help.code, 0);
  assert.match(help.out, /--mode mixed\|arc\|full\|none/);
  assert.match(help.out, /mixed \(default/);
  assert.match(help.out, /--text-budget N/);
});
