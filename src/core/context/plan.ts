// Decides, within the decoder window, which chunks reach the decoder and in which form: as text
// (the token ids of the rendered chunk) or compressed (its vectors followed by <Cont>). One
// function per answer mode; ask() materializes and lays out what the plan names.
import { rankChunks, selectChunks, type RankItem, type SelectItem } from './select';

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
 */
export function planArc(items: SelectItem[], question: string, budget: number, scores?: ArrayLike<number>): ContextPlan {
  const sel = selectChunks(items, question, budget, scores);
  return { text: [], compressed: sel.included, leftOut: sel.leftOut, partial: null, used: sel.used };
}

/**
 * full: every chosen chunk as text; `cost` is its decoder tokens. Room a whole chunk cannot use
 * goes to the best remaining chunk's first tokens, as plain-text truncation would do (a part of
 * a chunk's vectors would mean nothing, a part of its text still reads).
 */
export function planFull(items: SelectItem[], question: string, budget: number, scores?: ArrayLike<number>): ContextPlan {
  const sel = selectChunks(items, question, budget, scores);
  const chosen = new Set(sel.included);
  let partial: ContextPlan['partial'] = null;
  let used = sel.used;
  const top = sel.ranked[0];
  if (top !== undefined && !chosen.has(top) && items[top].cost > budget) {
    // The best chunk alone is larger than the window: its beginning beats any other chunk.
    chosen.clear();
    chosen.add(top);
    partial = { index: top, keep: budget };
    used = budget;
  } else if (budget - sel.used >= MIN_PARTIAL_TOKENS) {
    const best = sel.ranked.find((i) => !chosen.has(i));
    if (best !== undefined) {
      partial = { index: best, keep: budget - sel.used };
      chosen.add(best);
      used = budget;
    }
  }
  const { included, leftOut } = byDocument(items.length, chosen);
  return { text: included, compressed: [], leftOut, partial, used };
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
export function planMixed(ranked: readonly number[], costs: readonly FormCosts[] | FormCostTable, textBudget: number, budget: number): ContextPlan {
  const table: FormCostTable = Array.isArray(costs) ? tableOf(costs as readonly FormCosts[]) : (costs as FormCostTable);
  let textLeft = Math.max(0, textBudget);
  let windowLeft = Math.max(0, budget);
  const TEXT = 1;
  const COMPRESSED = 2;
  const form = new Uint8Array(table.length);
  for (let rank = 0; rank < ranked.length; rank++) {
    const i = ranked[rank];
    const text = table.text(i);
    if (text <= windowLeft && (text <= textLeft || rank === 0)) {
      form[i] = TEXT;
      textLeft = Math.max(0, textLeft - text);
      windowLeft -= text;
    } else if (table.minCompressed(i) <= windowLeft) {
      const c = table.compressed(i);
      if (c <= windowLeft) {
        form[i] = COMPRESSED;
        windowLeft -= c;
      }
    }
  }
  const out: ContextPlan = { text: [], compressed: [], leftOut: [], partial: null, used: Math.max(0, budget) - windowLeft };
  for (let i = 0; i < form.length; i++) (form[i] === TEXT ? out.text : form[i] === COMPRESSED ? out.compressed : out.leftOut).push(i);
  return out;
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
  return planMixed(rankChunks(items, question, scores), costs, textBudget, budget);
}
