// Decides, within the decoder window, which chunks reach the decoder and in which form: as text
// (the token ids of the rendered chunk) or compressed (its vectors followed by <Cont>). One
// function per answer mode; ask() materializes and lays out what the plan names.
import { fillBudget, narrowTo, rankChunks, rankOrder, WALK_AHEAD, type RankedCosts, type RankItem } from './select';

export interface ContextPlan {
  /** Indices read as text, in document order. */
  text: number[];
  /** Indices read compressed, in document order. */
  compressed: number[];
  /** Indices that did not fit, in document order. */
  leftOut: number[];
  /** Full mode: a text chunk of which only the first `keep` tokens fit. */
  partial: { index: number; keep: number } | null;
  /** Context positions the plan uses. */
  used: number;
  /**
   * The included indices (text and compressed) best-ranked first: the prefix order under
   * prompt.contextOrder "rank", and the order quoting takes (prompt.quoteChunks). Full mode's cut
   * chunk comes last.
   */
  ranked: number[];
}

/** Smallest piece of a cut chunk worth reading in full mode; fewer tokens are mostly header. */
export const MIN_PARTIAL_TOKENS = 16;

function byDocument(n: number, chosen: ReadonlySet<number>): { included: number[]; leftOut: number[] } {
  const included: number[] = [];
  const leftOut: number[] = [];
  for (let i = 0; i < n; i++) (chosen.has(i) ? included : leftOut).push(i);
  return { included, leftOut };
}

/**
 * arc: every chosen chunk compressed; `cost` is its vectors + 1 for <Cont>, plus its header
 * tokens when the manifest sets documentFormat.compressedHeader (prompt.ts compressedCoster).
 * When everything fits, everything is kept (nothing is ranked).
 */
export function planArc(t: RankedCosts, budget: number): ContextPlan {
  const f = fillBudget(t, budget);
  const { included, leftOut } = byDocument(t.length, f.chosen);
  return { text: [], compressed: included, leftOut, partial: null, used: f.used, ranked: bestFirst(t, f) };
}

/**
 * The chosen indices best first: fillBudget adds them in ranking order (planFull's cut chunk
 * after them); when everything fitted nothing was ranked, so the (few) chunks are ranked now.
 */
function bestFirst(t: RankedCosts, f: { chosen: ReadonlySet<number>; whole: boolean }): number[] {
  if (!f.whole) return [...f.chosen];
  const out: number[] = [];
  for (const i of t.ranked()) if (f.chosen.has(i)) out.push(i);
  return out;
}

/**
 * full: every chosen chunk as text; `cost` is its decoder tokens. Room a whole chunk cannot use
 * goes to the best remaining chunk's first tokens, as plain-text truncation would do (a part of
 * a chunk's vectors would mean nothing, a part of its text still reads).
 */
export function planFull(t: RankedCosts, budget: number): ContextPlan {
  const f = fillBudget(t, budget);
  const chosen = f.chosen;
  let partial: ContextPlan['partial'] = null;
  let used = f.used;
  const top = f.top;
  if (top !== undefined && !chosen.has(top) && t.cost(top) > budget) {
    // The best chunk alone is larger than the window: its beginning beats any other chunk.
    chosen.clear();
    chosen.add(top);
    partial = { index: top, keep: budget };
    used = budget;
  } else if (budget - f.used >= MIN_PARTIAL_TOKENS && f.firstLeft !== undefined) {
    partial = { index: f.firstLeft, keep: budget - f.used };
    chosen.add(f.firstLeft);
    used = budget;
  }
  const { included, leftOut } = byDocument(t.length, chosen);
  return { text: included, compressed: [], leftOut, partial, used, ranked: bestFirst(t, f) };
}

/** A chunk's cost in each form, in decoder positions. */
export interface FormCosts {
  /** Decoder tokens of the rendered chunk. */
  text: number;
  /** Its compressed vectors + 1 for <Cont> (+ its header tokens with documentFormat.compressedHeader). */
  readonly compressed: number;
  /** A cheap lower bound of `compressed` (vectors + 1): when it does not fit, `compressed` is not read. */
  readonly minCompressed?: number;
}

/**
 * mixed (selective expansion): walk the chunks best first. A chunk is read as text when its
 * tokens fit both the text budget and the window left; the best-ranked chunk is read as text
 * even beyond the text budget, as long as it fits the window. Otherwise it is read compressed
 * when its compressed cost (header tokens with documentFormat.compressedHeader, vectors, <Cont>)
 * fits the window left, else it is left out.
 */
export function planMixed(ranked: Iterable<number>, costs: readonly FormCosts[] | FormCostTable, textBudget: number, budget: number): ContextPlan {
  const table: FormCostTable = Array.isArray(costs) ? tableOf(costs as readonly FormCosts[]) : (costs as FormCostTable);
  let textLeft = Math.max(0, textBudget);
  let windowLeft = Math.max(0, budget);
  // Once the window left is below every chunk's text and compressed lower bounds, nothing more fits.
  const floor = table.floor ?? floorOf(table);
  const TEXT = 1;
  const COMPRESSED = 2;
  const form = new Uint8Array(table.length);
  const order: number[] = [];
  let rank = 0;
  const it = ranked[Symbol.iterator]();
  for (;;) {
    // Narrowed before the next index is asked for, so that a large ranking's next round is
    // searched for what can still fit (an index that fails the test could not be taken anyway).
    if (rank === WALK_AHEAD) narrowTo(it, (j) => Math.min(table.text(j), table.minCompressed(j)) <= windowLeft);
    const r = it.next();
    if (r.done) break;
    const i = r.value;
    if (windowLeft < floor) break;
    const text = table.text(i);
    if (text <= windowLeft && (text <= textLeft || rank === 0)) {
      form[i] = TEXT;
      order.push(i);
      textLeft = Math.max(0, textLeft - text);
      windowLeft -= text;
    } else if (table.minCompressed(i) <= windowLeft) {
      const c = table.compressed(i);
      if (c <= windowLeft) {
        form[i] = COMPRESSED;
        order.push(i);
        windowLeft -= c;
      }
    }
    rank++;
  }
  const out: ContextPlan = { text: [], compressed: [], leftOut: [], partial: null, used: Math.max(0, budget) - windowLeft, ranked: order };
  for (let i = 0; i < form.length; i++) (form[i] === TEXT ? out.text : form[i] === COMPRESSED ? out.compressed : out.leftOut).push(i);
  return out;
}

/**
 * The plan's text and compressed chunks in `order`: "document" as planned (path, then line),
 * "rank" best-ranked first (ContextPlan.ranked).
 */
export function planInOrder(p: ContextPlan, order: 'document' | 'rank'): { text: number[]; compressed: number[] } {
  if (order === 'document') return { text: p.text, compressed: p.compressed };
  const isText = new Set(p.text);
  const text: number[] = [];
  const compressed: number[] = [];
  for (const i of p.ranked) (isText.has(i) ? text : compressed).push(i);
  return { text, compressed };
}

function floorOf(t: FormCostTable): number {
  let floor = Infinity;
  for (let i = 0; i < t.length; i++) floor = Math.min(floor, t.text(i), t.minCompressed(i));
  return floor;
}

/**
 * Chunk costs as functions of the chunk's index, for inputs too large for an object per chunk.
 * `compressed` may be expensive (a header to tokenize): it is asked for only when
 * `minCompressed` (<= compressed) fits the window left.
 */
export interface FormCostTable {
  readonly length: number;
  text(i: number): number;
  compressed(i: number): number;
  minCompressed(i: number): number;
  /** <= text(i) and minCompressed(i) for every i, when known (else computed by one pass). */
  readonly floor?: number;
}

function tableOf(costs: readonly FormCosts[]): FormCostTable {
  return {
    length: costs.length,
    text: (i) => costs[i].text,
    compressed: (i) => costs[i].compressed,
    minCompressed: (i) => costs[i].minCompressed ?? costs[i].compressed,
  };
}

/** Ranks the chunks for mixed mode (always, even when everything would fit) and plans them. */
export function planMixedFor(items: readonly RankItem[], costs: readonly FormCosts[] | FormCostTable, question: string, textBudget: number, budget: number, scores?: ArrayLike<number>): ContextPlan {
  return planMixed(scores ? rankOrder(scores, items.length) : rankChunks(items, question), costs, textBudget, budget);
}
