// Selection under a decoder budget: BM25 ranking, boosts, budget filling, document order.
import { test } from 'node:test';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { codeTerms, quotedIdentifiers, rankChunks, rankedCostsOf, rankOrder, selectChunks, type SelectItem } from '../../src/core/context/select';
import { planArc, planFull, planMixed, MIN_PARTIAL_TOKENS } from '../../src/core/context/plan';

const item = (path: string, body: string, cost = 10, origin: SelectItem['origin'] = 'workspace'): SelectItem => ({ path, body, cost, origin });

test('everything is kept when it fits', () => {
  const items = [item('a.py', 'x = 1\n'), item('b.py', 'y = 2\n')];
  assert.deepEqual(selectChunks(items, 'what?', 20), { included: [0, 1], leftOut: [], used: 20, ranked: [0, 1] });
});

test('the chunk defining a quoted identifier wins over ones that only use it', () => {
  const items = [
    item('a.py', 'from util import parse_config\nparse_config(path)\nparse_config(other)\n'),
    item('b.py', 'def unrelated():\n    return 2\n'),
    item('util.py', 'def parse_config(path, strict=False):\n    return load(path)\n'),
    item('c.py', 'result = parse_config(x)\n'),
  ];
  const sel = selectChunks(items, 'Which file defines `parse_config`?', 10);
  assert.deepEqual(sel.included, [2]);
  const two = selectChunks(items, 'Which file defines `parse_config`?', 20);
  assert.deepEqual(two.included, [0, 2], 'kept in document order');
  assert.deepEqual(two.leftOut, [1, 3]);
});

test('a top-level constant counts as a definition', () => {
  const items = [item('a.py', 'print(MAX_SIZE)\n'), item('b.py', 'MAX_SIZE = 4096\n')];
  assert.deepEqual(selectChunks(items, 'What is the value of `MAX_SIZE`?', 10).included, [1]);
});

test('selected and explicit sources are preferred when the question does not decide', () => {
  const items = [item('a.py', 'alpha\n'), item('b.py', 'beta\n', 10, 'open'), item('c.py', 'gamma\n', 10, 'selection'), item('d.py', 'delta\n', 10, 'explicit')];
  assert.deepEqual(selectChunks(items, 'explain this', 20).included, [2, 3]);
  assert.deepEqual(selectChunks(items, 'explain this', 30).included, [1, 2, 3]);
});

test('lexical match on words and identifier parts ranks chunks', () => {
  const items = [item('net/http.ts', 'export function sendRequest(url) {}\n'), item('db.ts', 'export function openDatabase() {}\n'), item('fs.ts', 'export function readFile() {}\n')];
  assert.deepEqual(selectChunks(items, 'how is the database opened?', 10).included, [1]);
  assert.deepEqual(selectChunks(items, 'where do we send a request over http', 10).included, [0]);
});

test('budget is never exceeded; a big chunk is passed over for smaller ones that fit', () => {
  const items = [item('a.py', '`foo` foo foo\n', 50), item('b.py', 'foo\n', 20), item('c.py', 'foo\n', 20), item('d.py', 'bar\n', 5)];
  const sel = selectChunks(items, 'what about foo', 45);
  assert.ok(sel.used <= 45);
  assert.deepEqual(sel.included, [1, 2, 3]);
  assert.equal(sel.used, 45);
  assert.deepEqual(selectChunks(items, 'q', 4).included, []);
});

test('question parsing helpers', () => {
  assert.deepEqual(quotedIdentifiers('Which file defines `foo` and `Bar.baz`?'), ['foo', 'Bar.baz']);
  assert.deepEqual(codeTerms('parseHTTPConfig x_y'), ['parsehttpconfig', 'parse', 'http', 'config', 'x_y', 'x', 'y']);
});

/** A small deterministic generator (tests must not depend on Math.random). */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

test('rankOrder (lazily, in rounds above a few thousand items) gives rankChunks\' order, ties in index order', () => {
  for (const n of [0, 1, 7, 4096, 4097, 20000]) {
    const rnd = lcg(n + 1);
    // Few distinct values: many ties, as BM25 of a large tree has (most chunks score 0).
    const scores = Float64Array.from({ length: n }, () => (rnd() < 0.6 ? 0 : Math.floor(rnd() * 50) / 7));
    const items = Array.from({ length: n }, (_, i) => ({ path: `f${i}.ts`, body: '', origin: 'workspace' as const }));
    assert.deepEqual([...rankOrder(scores)], rankChunks(items, 'q', scores), `n=${n}`);
  }
  // Taking only the first few is what planning does.
  const scores = Float64Array.from({ length: 10000 }, (_, i) => (i % 97) / 3);
  const it = rankOrder(scores);
  const first = [it.next().value, it.next().value, it.next().value];
  assert.deepEqual(first, rankChunks(Array.from({ length: 10000 }, () => ({ path: 'a', body: '', origin: 'workspace' as const })), 'q', scores).slice(0, 3));
});

test('rankOrder narrowed by a test that tightens as indices are taken gives the order read whole and filtered the same way', () => {
  for (const [n, narrowAt] of [[20000, 0], [20000, 64], [9000, 300], [3000, 10]] as const) {
    const rnd = lcg(n + narrowAt);
    const scores = Float64Array.from({ length: n }, () => (rnd() < 0.4 ? 0 : Math.floor(rnd() * 60) / 7));
    const cost = Uint32Array.from({ length: n }, () => 1 + Math.floor(rnd() * 200));
    const items = Array.from({ length: n }, (_, i) => ({ path: `f${i}.ts`, body: '', origin: 'workspace' as const }));
    // The room left shrinks by each index taken: the test only ever gets stricter.
    const walk = (next: () => number | undefined, narrow: (keep: (i: number) => boolean) => void): number[] => {
      let room = 5000;
      const out: number[] = [];
      for (let taken = 0; ; taken++) {
        if (taken === narrowAt) narrow((i) => cost[i] <= room);
        const i = next();
        if (i === undefined) break;
        if (cost[i] > room) continue;
        out.push(i);
        room -= cost[i];
      }
      return out;
    };
    const it = rankOrder(scores);
    const lazy = walk(() => it.next().value, (keep) => it.narrow(keep));
    const order = rankChunks(items, 'q', scores);
    let at = 0;
    const whole = walk(() => order[at++], () => {});
    assert.deepEqual(lazy, whole, `n=${n}, narrowed at ${narrowAt}`);
  }
});

test('planArc / planFull over ranked costs choose what selectChunks chooses, stopping once nothing more fits', () => {
  for (let seed = 1; seed <= 40; seed++) {
    const rnd = lcg(seed);
    const n = 1 + Math.floor(rnd() * 300);
    const items: SelectItem[] = Array.from({ length: n }, (_, i) => {
      const cost = 2 + Math.floor(rnd() * 120);
      return { path: `p${i % 13}.py`, body: '', origin: 'workspace', cost, minCost: Math.max(1, cost - Math.floor(rnd() * 5)) };
    });
    const scores = Float64Array.from({ length: n }, () => Math.floor(rnd() * 9));
    const budget = 1 + Math.floor(rnd() * 900);
    const sel = selectChunks(items, 'q', budget, scores);
    let costReads = 0;
    const counted = rankedCostsOf(items, 'q', scores);
    const arc = planArc({ ...counted, cost: (i) => (costReads++, counted.cost(i)) }, budget);
    assert.deepEqual(arc.compressed, sel.included, `seed ${seed}`);
    assert.deepEqual(arc.leftOut, sel.leftOut);
    assert.equal(arc.used, sel.used);
    if (sel.leftOut.length > 20) assert.ok(costReads < n, `seed ${seed}: ${costReads} cost reads of ${n}`);
    // full: the best item not chosen takes the room left.
    const full = planFull(rankedCostsOf(items, 'q', scores), budget);
    const best = sel.ranked.find((i) => !sel.included.includes(i));
    const top = sel.ranked[0];
    if (top !== undefined && !sel.included.includes(top) && items[top].cost > budget) assert.deepEqual(full.partial, { index: top, keep: budget });
    else if (budget - sel.used >= MIN_PARTIAL_TOKENS && best !== undefined) assert.deepEqual(full.partial, { index: best, keep: budget - sel.used });
    else assert.equal(full.partial, null);
    // ranked: what each plan includes, best first (ranked even when everything fitted); the cut chunk last.
    const order = rankChunks(items, 'q', scores);
    assert.deepEqual(arc.ranked, order.filter((i) => arc.compressed.includes(i)), `seed ${seed}`);
    const whole = full.text.filter((i) => i !== full.partial?.index);
    assert.deepEqual(full.ranked, [...order.filter((i) => whole.includes(i)), ...(full.partial ? [full.partial.index] : [])], `seed ${seed}`);
  }
});

test('a large ranking narrowed part-way plans exactly as reading it whole (arc, full, mixed)', () => {
  for (let seed = 1; seed <= 6; seed++) {
    const rnd = lcg(seed * 7919);
    const n = 6000 + Math.floor(rnd() * 3000);
    // Mostly window-sized chunks, a few tiny ones far down the ranking: the room left after the
    // big ones is filled by those, so planning must find them past the first rounds.
    const cost = Array.from({ length: n }, () => (rnd() < 0.01 ? 1 + Math.floor(rnd() * 6) : 60 + Math.floor(rnd() * 70)));
    const scores = Float64Array.from({ length: n }, () => (rnd() < 0.5 ? 0 : Math.floor(rnd() * 40) / 3));
    const items: SelectItem[] = cost.map((c, i) => ({ path: `p${i}.py`, body: '', origin: 'workspace', cost: c }));
    const budget = 300 + Math.floor(rnd() * 200);
    const sel = selectChunks(items, 'q', budget, scores);
    const arc = planArc(rankedCostsOf(items, 'q', scores), budget);
    assert.deepEqual(arc.compressed, sel.included, `seed ${seed}`);
    assert.equal(arc.used, sel.used);
    const full = planFull(rankedCostsOf(items, 'q', scores), budget);
    assert.deepEqual(full.text.filter((i) => i !== full.partial?.index), sel.included.filter((i) => i !== full.partial?.index));
    const table = cost.map((c) => ({ text: c, compressed: Math.ceil(c / 4) + 1 }));
    const whole = planMixed(rankChunks(items, 'q', scores), table, 100, budget);
    const lazy = planMixed(rankOrder(scores), table, 100, budget);
    assert.deepEqual(lazy, whole, `seed ${seed}`);
  }
});

test('codeTerms skips splitting words that cannot split and still gives the terms of the full split rule, on real files and odd words', () => {
  // The rule spelled out in full (every word through the camel/snake split), as the index was built before.
  const reference = (text: string): string[] => {
    const out: string[] = [];
    for (const m of text.matchAll(/[A-Za-z0-9_$]+/g)) {
      out.push(m[0].toLowerCase());
      const parts = m[0].replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2').split(/[\s_$]+/).filter((p) => p !== '');
      if (parts.length > 1) for (const p of parts) out.push(p.toLowerCase());
    }
    return out;
  };
  const odd = 'a A aB Ab AB ABc ABCDef x2Y X2y __init__ _ $ $$ a$b HTTPServer2Go getHTTP2 io_ _io __ 9Lives café naïveURL';
  assert.deepEqual(codeTerms(odd), reference(odd));
  const dir = path.resolve(__dirname, '../../src/core/context');
  for (const name of readdirSync(dir)) {
    const text = readFileSync(path.join(dir, name), 'utf8');
    assert.deepEqual(codeTerms(text), reference(text), name);
  }
});
