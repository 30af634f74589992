// The answer panel of "ARC: Compress and Ask…" / "ARC: Show Compression Stats": the answer plus
// what the model saw — per-file tokens against vectors, totals, included and left-out chunks.
// The host replays its transcript on every load, so this page keeps no state of its own.
import type { FileCompression } from '../src/core/types';
import type { CompressionSnapshot, HostMessage } from '../src/protocol';
import { answerBody, citationList, type Post } from './answerView';
import { button, el } from './components';
import { barWidths, chunkForms, formatInt, formatMs, formatRatio, MODE_LABEL } from './format';
import { applyEvent, endRun, newEntry, restorePanelState, type AnswerEntry, type PanelState } from './state';
import { vscodeApi } from './vscodeApi';

export function startPanel(root: HTMLElement): void {
  const api = vscodeApi<PanelState>();
  const post: Post = (m) => api.postMessage(m);
  let entry: AnswerEntry | undefined;
  let snapshot: CompressionSnapshot | undefined;

  const title = el('h2', 'panel-title', 'ARC Context', { id: 'panel-question', testId: 'panel-question' });
  const meta = el('div', 'meta', '', { id: 'panel-meta' });
  const banner = el('div', 'error-banner', undefined, { id: 'error-banner', testId: 'error-banner' });
  banner.setAttribute('role', 'alert');
  banner.hidden = true;
  const stop = button('Stop', () => post({ type: 'stop', runId: entry?.runId }), {
    id: 'stop-button',
    testId: 'stop-button',
    look: 'secondary',
    aria: 'Stop the answer',
  });
  stop.hidden = true;
  const answer = el('section', 'panel-answer', undefined, { id: 'panel-answer', testId: 'answer' });
  answer.setAttribute('aria-label', 'Answer');
  answer.setAttribute('aria-live', 'polite');
  const picture = el('section', 'compression', undefined, { id: 'compression', testId: 'compression' });
  picture.setAttribute('aria-label', 'Compression');
  const head = el('header', 'panel-head');
  head.append(title, stop);
  root.append(head, meta, banner, answer, picture);

  function totalsTable(s: CompressionSnapshot): HTMLElement {
    const tokens = s.files.reduce((a, f) => a + f.tokens, 0);
    const vectors = s.files.reduce((a, f) => a + f.vectors, 0);
    const chunks = s.files.reduce((a, f) => a + f.chunks, 0);
    const dl = el('dl', 'totals', undefined, { id: 'compression-totals', testId: 'compression-totals' });
    const row = (k: string, v: string, testId?: string) => {
      const dd = el('dd', undefined, v, testId ? { testId } : {});
      dl.append(el('dt', undefined, k), dd);
    };
    row('Files', formatInt(s.files.length));
    row('Chunks', formatInt(chunks));
    row('Source tokens', formatInt(tokens), 'total-tokens');
    if (vectors > 0) {
      row('Compressed vectors', formatInt(vectors), 'total-vectors');
      row('Tokens per vector', formatRatio(tokens / vectors), 'total-ratio');
    }
    if (s.stats) {
      const st = s.stats;
      row('Chunks given to the decoder', `${st.chunksIncluded} of ${st.chunksIncluded + st.chunksLeftOut}${st.mode === 'none' ? '' : ` (${chunkForms(st)})`}`, 'decoder-chunks');
      if (st.mode !== 'none') {
        row('Context read', `${formatInt(st.sourceTokens)} source tokens in ${formatInt(st.contextPositions)} positions (${formatRatio(st.ratio)})`, 'context-ratio');
      }
      if (st.textTokens > 0 && st.mode === 'mixed') row('Read as text', `${formatInt(st.textTokens)} source tokens`);
      if (s.budget !== undefined) row('Context budget', `${formatInt(st.contextPositions)} of ${formatInt(s.budget)} positions`);
    }
    if (s.compress) {
      const c = s.compress;
      row('Encoded now', formatInt(c.encoded));
      row('From cache', formatInt(c.cacheHits));
      row('Encode time', formatMs(c.encodeMs));
      if (c.skippedFiles > 0) row('Files skipped', formatInt(c.skippedFiles));
    }
    return dl;
  }

  function fileBars(files: FileCompression[]): HTMLElement {
    const sorted = [...files].sort((a, b) => b.tokens - a.tokens);
    const max = sorted[0]?.tokens ?? 0;
    const list = el('ul', 'file-bars', undefined, { id: 'compression-files', testId: 'compression-files' });
    list.setAttribute('aria-label', 'Tokens and vectors per file');
    for (const f of sorted) {
      const [tw, vw] = barWidths(f.tokens, f.vectors, max);
      const li = el('li', 'file-row', undefined, { testId: 'file-row' });
      li.dataset.path = f.path;
      const name = el('div', 'file-name', f.path);
      const bars = el('div', 'bars');
      bars.setAttribute('role', 'img');
      bars.setAttribute('aria-label', `${f.path}: ${f.tokens} tokens, ${f.vectors} vectors, ${f.included} of ${f.chunks} chunks used, ${f.textChunks ?? 0} of them as text`);
      const tb = el('div', 'bar tokens');
      const vb = el('div', 'bar vectors');
      // Widths go through the CSSOM, which the CSP allows (inline style attributes it would not).
      tb.style.width = `${tw}%`;
      vb.style.width = `${vw}%`;
      bars.append(tb, vb);
      // Old saved states have no textChunks; every included chunk was compressed then.
      const asText = f.textChunks ?? 0;
      const used = `${f.included}/${f.chunks} chunks used${asText > 0 ? ` (${asText} as text)` : ''}`;
      const nums = el('div', 'file-nums', `${formatInt(f.tokens)} tok → ${formatInt(f.vectors)} vec · ${used}`);
      if (f.included === 0 && !snapshot?.compress) li.classList.add('left-out');
      if (asText > 0) li.classList.add('has-text');
      li.dataset.textChunks = String(asText);
      li.append(name, bars, nums);
      list.append(li);
    }
    return list;
  }

  function renderPicture(): void {
    const s: CompressionSnapshot | undefined =
      snapshot ??
      (entry?.selection ? { title: entry.question, ...entry.selection, stats: entry.stats } : undefined);
    if (!s) {
      picture.replaceChildren();
      return;
    }
    const legend = el('div', 'legend');
    legend.append(el('span', 'swatch tokens'), ' source tokens ', el('span', 'swatch vectors'), ' compressed vectors');
    const parts: Node[] = [el('h3', undefined, 'What the model read'), totalsTable(s), legend, fileBars(s.files)];
    if (s.text && s.compressed) {
      // By form: the text chunks are the ones the decoder read word for word, nearest the question.
      if (s.text.length > 0) {
        parts.push(el('h3', undefined, `Read as text (${s.text.length})`));
        parts.push(citationList(s.text, post, { id: 'text-chunks', testId: 'text-chunks', label: 'Chunks read as text' }));
      }
      if (s.compressed.length > 0) {
        parts.push(el('h3', undefined, `Read compressed (${s.compressed.length})`));
        parts.push(citationList(s.compressed, post, { id: 'compressed-chunks', testId: 'compressed-chunks', label: 'Chunks read compressed' }));
      }
    } else if (s.included.length > 0) {
      parts.push(el('h3', undefined, `Included chunks (${s.included.length})`));
      parts.push(citationList(s.included, post, { id: 'included-chunks', testId: 'included-chunks', label: 'Included chunks' }));
    }
    if (s.leftOut.length > 0) {
      parts.push(el('h3', undefined, `Left out (${s.leftOut.length}) — did not fit the window`));
      parts.push(citationList(s.leftOut, post, { id: 'left-out-chunks', testId: 'left-out-chunks', label: 'Chunks left out' }));
    }
    picture.replaceChildren(...parts);
  }

  let queued = false;
  function render(): void {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      if (entry) {
        title.textContent = entry.question;
        meta.textContent = `${entry.sourceLabel} · ${MODE_LABEL[entry.mode]}`;
        answer.dataset.state = entry.state;
        answer.replaceChildren(answerBody(entry, post, true));
        stop.hidden = entry.state !== 'streaming';
        banner.hidden = !(entry.state === 'error' && entry.error);
        banner.textContent = entry.state === 'error' && entry.error ? entry.error.message : '';
      } else if (snapshot) {
        title.textContent = snapshot.title;
        meta.textContent = snapshot.compress ? 'Workspace compression' : 'Last question';
        if (snapshot.stats) answer.replaceChildren(answerBody({ runId: 'snapshot', question: snapshot.title, mode: snapshot.stats.mode, sourceLabel: '', answer: '', state: 'done', citations: [], stats: snapshot.stats }, post, true));
      }
      renderPicture();
      // Kept by VS Code for the panel serializer: the panel comes back after a restart.
      api.setState({ version: 1, entry, snapshot });
    });
  }

  window.addEventListener('message', (ev: MessageEvent<HostMessage>) => {
    const m = ev.data;
    switch (m.type) {
      case 'init': {
        if (!m.restore) return;
        const saved = restorePanelState(api.getState());
        entry = saved.entry;
        snapshot = saved.snapshot;
        if (!entry && !snapshot) return;
        break;
      }
      case 'runStarted':
        entry = newEntry(m.run);
        snapshot = undefined;
        break;
      case 'runEvent':
        if (entry?.runId === m.runId) applyEvent(entry, m.event, true);
        break;
      case 'runEnded':
        if (entry?.runId === m.runId) endRun(entry, m.outcome);
        break;
      case 'showCompression':
        snapshot = m.snapshot;
        entry = undefined;
        break;
      case 'notice':
        banner.textContent = m.message;
        banner.hidden = m.level !== 'error';
        return;
      default:
        return;
    }
    render();
  });

  post({ type: 'ready' });
}
