// DOM for one answer (or one compare group): streamed Markdown, stats line, citations, errors.
// Shared by the chat and the panel; ids are only given where an element is unique on the page.
import type { Citation } from '../src/core/types';
import { ANSWER_MODES, type WebviewMessage } from '../src/protocol';
import { el, linkButton, spinner } from './components';
import { chunkForms, formatInt, formatMs, formatRate, formatRatio, formatStatsLine, MODE_LABEL, RATIO_TITLE, showsRatio, statsParts } from './format';
import { renderMarkdown } from './markdown';
import type { AnswerEntry } from './state';

export type Post = (m: WebviewMessage) => void;

export function citationLabel(c: Citation): string {
  return c.startLine === c.endLine ? `${c.path}:${c.startLine}` : `${c.path}:${c.startLine}-${c.endLine}`;
}

export function citationList(cs: Citation[], post: Post, ids: { id?: string; testId: string; label: string }): HTMLElement {
  const list = el('ul', 'citations', undefined, { id: ids.id, testId: ids.testId });
  list.setAttribute('aria-label', ids.label);
  for (const c of cs) {
    const li = el('li');
    li.append(
      linkButton(citationLabel(c), () => post({ type: 'openCitation', citation: c }), {
        testId: 'citation',
        title: `Open ${citationLabel(c)}`,
      }),
    );
    list.append(li);
  }
  return list;
}

/** The body of one answer: progress, text, stats, citations, error. */
export function answerBody(e: AnswerEntry, post: Post, unique: boolean): HTMLElement {
  const body = el('div', 'answer-body');
  if (e.state === 'streaming') {
    const p = el('div', 'progress', undefined, { testId: 'progress' });
    p.setAttribute('role', 'status');
    p.append(spinner('Working'), el('span', undefined, e.progress ?? 'Starting…'));
    body.append(p);
  }
  const text = el('div', 'answer-text', undefined, { id: unique ? 'answer-text' : undefined, testId: 'answer-text' });
  if (e.answer.trim() !== '') renderMarkdown(text, e.answer);
  else if (e.state === 'done') text.append(el('em', 'muted', '(empty answer)'));
  body.append(text);
  if (e.error && e.state !== 'done') {
    const err = el('div', e.state === 'cancelled' ? 'answer-note' : 'answer-error', e.error.message, { testId: 'answer-error' });
    err.setAttribute('role', e.state === 'cancelled' ? 'status' : 'alert');
    err.dataset.code = e.error.code;
    if (e.error.code === 'model-missing' || e.error.code === 'model-corrupt') {
      err.append(' ', linkButton('Select Model…', () => post({ type: 'command', command: 'selectModel' })));
    }
    body.append(err);
  }
  if (e.stats) {
    const line = el('div', 'stats-line', undefined, { id: unique ? 'stats-line' : undefined, testId: 'stats-line' });
    if (showsRatio(e.stats)) {
      const ratio = el('span', 'ratio', formatRatio(e.stats.ratio), { id: unique ? 'ratio' : undefined, testId: 'ratio' });
      ratio.title = RATIO_TITLE;
      line.append(ratio, ' · ');
    }
    line.append(el('span', undefined, statsParts(e.stats).join(' · ')));
    line.setAttribute('aria-label', `Stats: ${formatStatsLine(e.stats)}`);
    body.append(line);
  }
  if (e.citations.length > 0) {
    body.append(citationList(e.citations, post, { id: unique ? 'citations' : undefined, testId: 'citations', label: 'Citations' }));
  }
  return body;
}

/** Side-by-side columns for a compare group, with the timings that differ between modes. */
export function compareGrid(group: AnswerEntry[], post: Post): HTMLElement {
  const grid = el('div', 'compare-grid', undefined, { testId: 'compare' });
  grid.setAttribute('role', 'group');
  grid.setAttribute('aria-label', 'Answers in each mode');
  // Columns in a fixed mode order, whichever run finished first.
  const ordered = [...group].sort((a, b) => ANSWER_MODES.indexOf(a.mode) - ANSWER_MODES.indexOf(b.mode));
  for (const e of ordered) {
    const col = el('section', 'compare-col');
    col.dataset.mode = e.mode;
    col.dataset.state = e.state;
    col.append(el('h4', undefined, MODE_LABEL[e.mode]));
    col.append(answerBody({ ...e, citations: [], stats: undefined }, post, false));
    if (e.stats) {
      const dl = el('dl', 'timings', undefined, { testId: 'timings' });
      const row = (k: string, v: string) => dl.append(el('dt', undefined, k), el('dd', undefined, v));
      if (showsRatio(e.stats)) row('Ratio', formatRatio(e.stats.ratio));
      row('Context positions', formatInt(e.stats.contextPositions));
      if (e.mode !== 'none') row('Chunks', chunkForms(e.stats));
      row('Prefill', formatMs(e.stats.prefillMs));
      row('First token', formatMs(e.stats.ttftMs));
      row('Total', formatMs(e.stats.totalMs));
      row('Speed', formatRate(e.stats.tokensPerSecond));
      if (e.mode === 'arc' || e.mode === 'mixed') row('Encode', formatMs(e.stats.encodeMs));
      col.append(dl);
    }
    grid.append(col);
  }
  return grid;
}
