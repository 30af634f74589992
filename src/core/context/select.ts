// Chooses which chunks reach the decoder when they do not all fit its window. Ranking is
// lexical (BM25 via MiniSearch) because the questions name identifiers; chunks the user pointed
// at (explicit files, open editors, selections) and chunks that contain an identifier quoted
// in the question get a boost. Chosen chunks go back into document order.
import MiniSearch from 'minisearch';
import type { SourceInput } from '../types';

/** What ranking reads of a chunk. */
export interface RankItem {
  path: string;
  body: string;
  origin: SourceInput['origin'];
}

export interface SelectItem extends RankItem {
  /** Decoder positions this chunk takes (arc: [header tokens +] vectors + 1 for <Cont>; full: tokens). */
  readonly cost: number;
  /**
   * A lower bound of `cost` that is cheap to know (a getter for `cost` may tokenize a header). When
   * the bound alone does not fit, `cost` is not read, so a large tree costs only the chunks that
   * come near the window.
   */
  readonly minCost?: number;
}

export interface Selection {
  /** Indices into the input, in document order. */
  included: number[];
  leftOut: number[];
  /** Positions the included chunks use. */
  used: number;
  /** All indices, best first (document order when everything fit and nothing was ranked). */
  ranked: number[];
}

const ORIGIN_BOOST: Record<SourceInput['origin'], number> = {
  selection: 1.0,
  explicit: 0.6,
  open: 0.4,
  workspace: 0,
};
/** A quoted identifier is the strongest signal the question gives; its definition more so. */
const IDENT_MENTION_BOOST = 1.5;
const IDENT_DEFINITION_BOOST = 1.5;

/** Identifiers the question quotes with backticks, e.g. "Which file defines `foo`?". */
export function quotedIdentifiers(question: string): string[] {
  const out: string[] = [];
  for (const m of question.matchAll(/`([^`\n]+)`/g)) {
    const name = m[1].trim();
    if (name !== '') out.push(name);
  }
  return out;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A word that splits into parts: a separator (_ or $) or a capital after its first character. */
const SPLITS = /[_$]|.[A-Z]/;

/** Splits code text into search terms: whole identifiers plus their snake/camel parts. */
export function codeTerms(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/[A-Za-z0-9_$]+/g)) {
    const word = m[0];
    out.push(word.toLowerCase());
    if (!SPLITS.test(word)) continue; // most words: nothing to split
    const parts = word
      .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
      .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
      .split(/[\s_$]+/)
      .filter((p) => p !== '');
    if (parts.length > 1) for (const p of parts) out.push(p.toLowerCase());
  }
  return out;
}

/** fillBudget over SelectItems, with the whole ranking (document order when everything fit). */
export function selectChunks(items: SelectItem[], question: string, budget: number, scores?: ArrayLike<number>): Selection {
  let order: number[] | null = null; // ranked only when not everything fits
  const f = fillBudget({ ...costsOfItems(items), ranked: () => (order ??= rankChunks(items, question, scores)) }, budget);
  const included: number[] = [];
  const leftOut: number[] = [];
  items.forEach((_, i) => (f.chosen.has(i) ? included : leftOut).push(i));
  return { included, leftOut, used: f.used, ranked: order ?? included };
}

/**
 * Items as budget filling reads them: costs by index, and the order best first, which may be
 * produced lazily (rankOrder), so that a tree of 10^5 chunks costs only the chunks that come
 * near the window. `floor` is a lower bound of every item's `minCost`: once the room left is
 * below it, no further item can fit and the walk stops.
 */
export interface RankedCosts {
  readonly length: number;
  /** Best first (every index once); called at most once (when everything fits, only to order what plan.ts keeps). */
  ranked(): Iterable<number>;
  cost(i: number): number;
  /** A cheap lower bound of cost(i): when it does not fit, cost(i) is not read. */
  minCost(i: number): number;
  /** <= minCost(i) for every i. */
  readonly floor: number;
}

/** The costs of SelectItems, by index (RankedCosts without the order). */
function costsOfItems(items: readonly SelectItem[]): Omit<RankedCosts, 'ranked'> {
  let floor = Infinity;
  for (const it of items) floor = Math.min(floor, it.minCost ?? it.cost);
  return { length: items.length, cost: (i) => items[i].cost, minCost: (i) => items[i].minCost ?? items[i].cost, floor };
}

/** RankedCosts over SelectItems, ranked by `scores` (rankOrder) or else by rankChunks. */
export function rankedCostsOf(items: readonly SelectItem[], question: string, scores?: ArrayLike<number>): RankedCosts {
  return { ...costsOfItems(items), ranked: () => (scores ? rankOrder(scores, items.length) : rankChunks(items, question)) };
}

/**
 * Ranked indices read one by one before the rest of a large ranking is narrowed to the indices
 * whose lower bound fits the room left (RankedIterator.narrow): the room only shrinks, so an
 * index that does not fit when its turn comes never will.
 */
export const WALK_AHEAD = 64;

/** Narrows `it` when it is a RankedIterator; a plain order is read as it is. */
export function narrowTo(it: Iterator<number>, fits: (i: number) => boolean): void {
  const r = it as Partial<RankedIterator>;
  if (typeof r.narrow === 'function') r.narrow(fits);
}

/**
 * Fills the budget best first: when everything fits, everything is kept (nothing is ranked);
 * otherwise items are taken in ranked order, and one that does not fit is passed over so that a
 * smaller one further down can still use the remaining room. Also returns the best-ranked index
 * and the best-ranked index not chosen (full mode's partial chunk); both undefined when
 * everything fit.
 */
export function fillBudget(t: RankedCosts, budget: number): { chosen: Set<number>; used: number; top: number | undefined; firstLeft: number | undefined; whole: boolean } {
  const chosen = new Set<number>();
  const whole = wholeCost(t, budget);
  if (whole !== null) {
    for (let i = 0; i < t.length; i++) chosen.add(i);
    return { chosen, used: whole, top: undefined, firstLeft: undefined, whole: true };
  }
  let used = 0;
  let top: number | undefined;
  let firstLeft: number | undefined;
  const it = t.ranked()[Symbol.iterator]();
  let seen = 0;
  for (let r = it.next(); !r.done; r = it.next()) {
    const i = r.value;
    top ??= i;
    if (budget - used < t.floor) {
      // Nothing further fits; the next index is still the best left out.
      firstLeft ??= i;
      break;
    }
    // Full mode needs the best index left out before the rest is narrowed to what fits.
    if (++seen === WALK_AHEAD && firstLeft !== undefined) narrowTo(it, (j) => t.minCost(j) <= budget - used);
    if (used + t.minCost(i) <= budget) {
      const c = t.cost(i);
      if (used + c <= budget) {
        chosen.add(i);
        used += c;
        continue;
      }
    }
    firstLeft ??= i;
  }
  // `chosen` was filled best first.
  return { chosen, used, top, firstLeft, whole: false };
}

/** The positions of every item together when they fit the budget, else null; lower bounds first, so a large input stops early. */
function wholeCost(t: Omit<RankedCosts, 'ranked'>, budget: number): number | null {
  let low = 0;
  for (let i = 0; i < t.length; i++) {
    low += t.minCost(i);
    if (low > budget) return null;
  }
  let total = 0;
  for (let i = 0; i < t.length; i++) total += t.cost(i);
  return total <= budget ? total : null;
}

/**
 * All indices, best first; equal scores keep document order. `scores` are scoreChunks' numbers
 * when the caller has them already (from the persistent lexical index).
 */
export function rankChunks(items: readonly RankItem[], question: string, precomputed?: ArrayLike<number>): number[] {
  const scores = precomputed ?? scoreChunks(items, question);
  // Indices in a typed array: the same order, sorted about 1.5x faster than a plain array (a
  // large tree ranks 10^5 chunks for every question).
  const order = new Uint32Array(items.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  order.sort((a, b) => scores[b] - scores[a] || a - b);
  return Array.from(order);
}

export function scoreChunks(items: readonly RankItem[], question: string): number[] {
  return boostScores(items, bm25Normalized(items, question), question);
}

/** MiniSearch's defaults (BM25+), and the weight of the path field, as bm25Normalized searches. */
const K = 1.2;
const B = 0.7;
const D = 0.5;
export const BM25_PATH_BOOST = 2;

/**
 * MiniSearch's BM25+ score of one term in one field: what the persistent indexes (lexicalIndex.ts
 * bm25Scores, treeIndex.ts treeBm25) compute operation for operation to match bm25Normalized.
 */
export function bm25(termFreq: number, matchingCount: number, totalCount: number, fieldLength: number, avgFieldLength: number): number {
  return bm25Idf(bm25InvDocFreq(matchingCount, totalCount), termFreq, fieldLength, avgFieldLength);
}

/** The inverse document frequency factor of bm25 (the same for every posting of a term). */
export function bm25InvDocFreq(matchingCount: number, totalCount: number): number {
  return Math.log(1 + (totalCount - matchingCount + 0.5) / (matchingCount + 0.5));
}

/** bm25 with its inverse document frequency computed once per term (bm25InvDocFreq): the same number. */
export function bm25Idf(invDocFreq: number, termFreq: number, fieldLength: number, avgFieldLength: number): number {
  return invDocFreq * (D + (termFreq * (K + 1)) / (termFreq + K * (1 - B + (B * fieldLength) / avgFieldLength)));
}

/** BM25 of each item's path and body for the question, normalised so that the best is 1. */
export function bm25Normalized(items: readonly RankItem[], question: string): number[] {
  const search = new MiniSearch<{ id: number; path: string; body: string }>({
    fields: ['path', 'body'],
    tokenize: codeTerms,
    processTerm: (t) => t,
  });
  search.addAll(items.map((it, id) => ({ id, path: it.path, body: it.body })));
  const bm25 = new Array<number>(items.length).fill(0);
  const results = search.search(question, { boost: { path: BM25_PATH_BOOST }, combineWith: 'OR', prefix: false, fuzzy: false });
  // Normalise so that boosts weigh the same whatever the corpus size.
  const max = results.reduce((m, r) => Math.max(m, r.score), 0);
  for (const r of results) bm25[r.id as number] = max > 0 ? r.score / max : 0;
  return bm25;
}

/** The boosts of one question: origin, and identifiers the question quotes. */
export interface QuestionBoosts {
  /** `bm25` plus the boosts of one chunk; `body` '' stands for a body that matches no identifier. */
  score(bm25: number, path: string, origin: RankItem['origin'], body: string): number;
  /** score(bm25, path, origin, '') for the chunks of one file, the path matched once. */
  withoutBody(path: string, origin: RankItem['origin']): (bm25: number) => number;
}

export function questionBoosts(question: string): QuestionBoosts {
  const idents = quotedIdentifiers(question);
  const mention = idents.map((n) => new RegExp(`(^|[^A-Za-z0-9_$])${escapeRegExp(n)}($|[^A-Za-z0-9_$])`));
  // A definition: the name right after a declaring keyword, or a top-level assignment `NAME = ...`.
  const definition = idents.map(
    (n) =>
      new RegExp(
        `^[ \\t]*(?:(?:export|default|async|public|private|protected|static|pub|const|let|var|def|class|function|fn|func|interface|type|enum|struct)\\s+)+\\*?${escapeRegExp(n)}\\b|^${escapeRegExp(n)}\\s*(?::[^=\\n]*)?=(?!=)`,
        'm',
      ),
  );
  return {
    score(bm25, path, origin, body) {
      let s = bm25 + ORIGIN_BOOST[origin];
      for (let k = 0; k < idents.length; k++) {
        if ((body !== '' && mention[k].test(body)) || path.includes(idents[k])) s += IDENT_MENTION_BOOST;
        if (body !== '' && definition[k].test(body)) s += IDENT_DEFINITION_BOOST;
      }
      return s;
    },
    withoutBody(path, origin) {
      let hits = 0;
      for (const n of idents) if (path.includes(n)) hits++;
      const base = ORIGIN_BOOST[origin];
      return (bm25) => {
        // The same additions in the same order as score() (floating point).
        let s = bm25 + base;
        for (let h = 0; h < hits; h++) s += IDENT_MENTION_BOOST;
        return s;
      };
    },
  };
}

/**
 * Adds the boosts to normalised BM25 scores (from bm25Normalized or the persistent lexical
 * index, which computes the same numbers): origin, and identifiers the question quotes.
 */
export function boostScores(items: readonly RankItem[], bm25: ArrayLike<number>, question: string): number[] {
  const b = questionBoosts(question);
  return items.map((it, i) => b.score(bm25[i], it.path, it.origin, it.body));
}

/** A best-first order that can be narrowed part-way (rankOrder). */
export interface RankedIterator extends IterableIterator<number> {
  /**
   * From now on, only indices for which `keep` holds when their turn comes, still best first. A
   * planner passes a test against the room it has left, which only shrinks: `keep` may become
   * stricter over time, never looser. A large ranking is then searched for what can still fit
   * instead of read one index at a time.
   */
  narrow(keep: (i: number) => boolean): void;
}

/**
 * Indices 0..n-1 best first by `scores` (higher first, equal scores in index order), produced
 * lazily: a large tree ranks 10^5 chunks for every question and planning reads the first few
 * dozen. Above a few thousand items the order comes in rounds: the best 64 of those not given
 * yet (one pass over the scores with a small heap, then a sort of those), then the best 256 of
 * the rest, 1024, ... Every index outside a round is worse than every index in it, so the
 * order is rankChunks' order (narrowed: its subsequence of indices that pass).
 */
export function rankOrder(scores: ArrayLike<number>, n: number = scores.length): RankedIterator {
  const sc = scores instanceof Float64Array ? scores : Float64Array.from({ length: n }, (_, i) => scores[i]);
  const given = new Uint8Array(n); // given, or found not to pass `keep` (which never loosens)
  let keep: ((i: number) => boolean) | null = null;
  // Once narrowed, the indices still open and passing `keep`, ascending: each round then looks
  // at these only (the room left shrinks, so a large tree's later rounds are over a few chunks).
  let open: Uint32Array | null = null;
  let list: Uint32Array = new Uint32Array(0);
  let at = 0;
  let complete = false;
  let k = 64;
  const it: RankedIterator = {
    next(): IteratorResult<number> {
      for (;;) {
        if (at >= list.length) {
          if (complete) return { done: true, value: undefined };
          if (keep !== null) open = stillOpen(open, n, given, keep);
          const m = open === null ? n : open.length;
          if (m <= ROUNDS_FROM || k >= m) {
            list = bestK(sc, open, m, m, given);
            complete = true;
          } else {
            list = bestK(sc, open, m, k, given);
            k *= 4;
          }
          at = 0;
          continue;
        }
        const i = list[at++];
        given[i] = 1;
        if (keep === null || keep(i)) return { done: false, value: i };
      }
    },
    narrow(test) {
      keep = test;
    },
    [Symbol.iterator]() {
      return it;
    },
  };
  return it;
}

/**
 * The indices of `from` (null: 0..n-1) not given yet that pass `keep`, ascending; those that
 * fail are marked given.
 */
function stillOpen(from: Uint32Array | null, n: number, given: Uint8Array, keep: (i: number) => boolean): Uint32Array {
  const m = from === null ? n : from.length;
  const out = new Uint32Array(m);
  let size = 0;
  for (let x = 0; x < m; x++) {
    const i = from === null ? x : from[x];
    if (given[i] !== 0) continue;
    if (keep(i)) out[size++] = i;
    else given[i] = 1;
  }
  return out.subarray(0, size);
}

/**
 * The best `k` of the `m` indices of `ids` (null: 0..m-1, ascending either way) not given yet,
 * best first (rankOrder's order).
 */
function bestK(sc: Float64Array, ids: Uint32Array | null, m: number, k: number, given: Uint8Array): Uint32Array {
  // A min-heap of the best k so far; its root is the worst of them. Indices come in ascending
  // order, so a later index with the root's score is worse than the root: `>` decides.
  const heap = new Uint32Array(k);
  const worse = (a: number, b: number) => sc[a] < sc[b] || (sc[a] === sc[b] && a > b);
  const down = (at: number, size: number) => {
    const v = heap[at];
    for (;;) {
      let c = 2 * at + 1;
      if (c >= size) break;
      if (c + 1 < size && worse(heap[c + 1], heap[c])) c++;
      if (!worse(heap[c], v)) break;
      heap[at] = heap[c];
      at = c;
    }
    heap[at] = v;
  };
  let size = 0;
  let x = 0;
  for (; x < m && size < k; x++) {
    const i = ids === null ? x : ids[x];
    if (given[i] === 0) heap[size++] = i;
  }
  for (let j = (size >> 1) - 1; j >= 0; j--) down(j, size);
  for (; x < m; x++) {
    const i = ids === null ? x : ids[x];
    if (given[i] === 0 && sc[i] > sc[heap[0]]) {
      heap[0] = i;
      down(0, size);
    }
  }
  return heap.subarray(0, size).sort((a, b) => sc[b] - sc[a] || a - b);
}

/** Item count from which rankOrder works in rounds. */
const ROUNDS_FROM = 4096;
