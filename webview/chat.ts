// The sidebar chat. History is the webview state (vscode.getState/setState), so it survives the
// view being hidden or reloaded without retainContextWhenHidden.
import type { AnswerMode } from '../src/core/types';
import { ANSWER_MODES, type HostMessage, type ModelStatus, type SourceKind } from '../src/protocol';
import { answerBody, compareGrid, type Post } from './answerView';
import { button, dropdown, el, setDisabled, textBox } from './components';
import { MODE_LABEL } from './format';
import { applyEvent, endRun, groupEntries, newEntry, restoreChatState, MAX_ENTRIES, type AnswerEntry, type ChatState } from './state';
import { vscodeApi } from './vscodeApi';

export function startChat(root: HTMLElement): void {
  const api = vscodeApi<ChatState>();
  const state = restoreChatState(api.getState());
  const post: Post = (m) => api.postMessage(m);
  let defaultMode: AnswerMode = 'mixed';
  let saveQueued = false;
  const save = () => {
    if (saveQueued) return;
    saveQueued = true;
    // Tokens arrive fast; one setState per frame is plenty.
    requestAnimationFrame(() => {
      saveQueued = false;
      api.setState(state);
    });
  };

  // Header: model status and shortcuts.
  const status = el('div', 'model-status', 'Model loads on the first question.', { id: 'model-status', testId: 'model-status' });
  status.setAttribute('role', 'status');
  const banner = el('div', 'error-banner', undefined, { id: 'error-banner', testId: 'error-banner' });
  banner.setAttribute('role', 'alert');
  banner.hidden = true;

  const history = el('section', 'history', undefined, { id: 'history', testId: 'history' });
  history.setAttribute('aria-label', 'Questions and answers');
  const empty = el('p', 'empty', 'Ask about your code. The model reads the most relevant code as text and the rest compressed about 4×.');

  // Composer.
  const source = dropdown<SourceKind>(
    [
      { value: 'open', label: 'Open files' },
      { value: 'selection', label: 'Selection' },
      { value: 'workspace', label: 'Workspace' },
    ],
    state.source,
    (v) => {
      state.source = v;
      save();
    },
    { id: 'source-picker', testId: 'source-picker', label: 'Context source' },
  );
  const question = textBox({
    id: 'question-input',
    testId: 'question-input',
    label: 'Question (Enter to ask, Shift+Enter for a new line)',
    placeholder: 'Ask about the code… (Enter to send)',
  });
  question.value = state.draft;
  const send = button('Ask', () => ask(), { id: 'send-button', testId: 'send-button', aria: 'Ask the question' });
  const compare = button('Compare', () => ask(true), {
    id: 'compare-button',
    testId: 'compare-button',
    look: 'secondary',
    aria: 'Ask in mixed, compressed, full-text and no-context modes side by side',
    title: 'Run the question in mixed, arc, full and none modes and compare answers and timings',
  });
  const stop = button('Stop', () => post({ type: 'stop' }), { id: 'stop-button', testId: 'stop-button', look: 'secondary', aria: 'Stop the answer' });
  const clear = button('Clear', () => {
    state.entries = [];
    save();
    render();
  }, { id: 'clear-history', testId: 'clear-history', look: 'secondary', aria: 'Clear the history' });

  const composer = el('div', 'composer');
  const sourceRow = el('div', 'row');
  const sourceLabel = el('label', 'label', 'Context');
  sourceLabel.setAttribute('for', 'source-picker');
  sourceRow.append(sourceLabel, source.el);
  const buttons = el('div', 'row buttons');
  buttons.append(send, compare, stop, clear);
  composer.append(sourceRow, question.el, buttons);
  root.append(status, banner, history, composer);

  question.el.addEventListener('keydown', (ev: KeyboardEvent) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      ask();
    }
  });
  question.el.addEventListener('input', () => {
    state.draft = question.value;
    save();
  });

  function showError(message: string | undefined): void {
    banner.textContent = message ?? '';
    banner.hidden = !message;
  }

  function ask(compareModes = false): void {
    const q = question.value.trim();
    if (q === '') {
      showError('Type a question first.');
      question.focus();
      return;
    }
    showError(undefined);
    if (compareModes) post({ type: 'compare', question: q, source: source.value });
    else post({ type: 'ask', question: q, source: source.value });
    question.value = '';
    state.draft = '';
    save();
  }

  function setStatus(s: ModelStatus): void {
    const text =
      s.state === 'ready'
        ? `${s.model ?? 'model'} · ${s.provider ?? '?'}${s.cache ? ' · ' + s.cache : ''}`
        : s.state === 'loading'
          ? 'Loading model…'
          : s.state === 'error'
            ? `Model error: ${s.message ?? ''}`
            : `Model loads on the first question${s.cache ? ' · ' + s.cache : ''}`;
    status.textContent = text;
    status.dataset.state = s.state;
  }

  function card(group: AnswerEntry[]): HTMLElement {
    const first = group[0]!;
    const art = el('article', 'answer-card', undefined, { testId: 'answer' });
    art.dataset.runId = first.runId;
    art.dataset.state = group.some((e) => e.state === 'streaming') ? 'streaming' : first.state;
    art.dataset.mode = first.mode;
    const head = el('header', 'answer-head');
    head.append(el('h3', 'question', first.question));
    const meta = el('div', 'meta', `${first.sourceLabel} · ${MODE_LABEL[first.mode]}`);
    head.append(meta);
    art.append(head);
    if (group.length > 1) art.append(compareGrid(group, post));
    else {
      art.append(answerBody(first, post, false));
      if (first.state === 'done') {
        const actions = el('div', 'row actions');
        const others = ANSWER_MODES.filter((m) => m !== first.mode).join(', ');
        actions.append(
          button('Compare with the other modes', () => post({ type: 'compare', question: first.question, source: state.source, runId: first.runId, mode: first.mode }), {
            title: `Ask again in ${others} and show the answers side by side`,
            look: 'secondary',
            testId: 'compare-answer',
          }),
        );
        art.append(actions);
      }
    }
    art.setAttribute('aria-label', `Answer to: ${first.question}`);
    return art;
  }

  let renderQueued = false;
  function render(): void {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      const atBottom = history.scrollTop + history.clientHeight >= history.scrollHeight - 40;
      history.replaceChildren(...(state.entries.length === 0 ? [empty] : groupEntries(state.entries).map(card)));
      if (atBottom) history.scrollTop = history.scrollHeight;
      const streaming = state.entries.some((e) => e.state === 'streaming');
      setDisabled(stop, !streaming);
      stop.hidden = !streaming;
    });
  }

  function entry(runId: string): AnswerEntry | undefined {
    return state.entries.find((e) => e.runId === runId);
  }

  window.addEventListener('message', (ev: MessageEvent<HostMessage>) => {
    const m = ev.data;
    switch (m.type) {
      case 'init':
        defaultMode = m.defaultMode;
        compare.title = `Run in all modes (default: ${defaultMode})`;
        setStatus(m.status);
        return;
      case 'status':
        setStatus(m.status);
        return;
      case 'runStarted': {
        const existing = state.entries.findIndex((e) => e.runId === m.run.runId);
        // A replay after a reload replaces the saved partial entry with the live one.
        if (existing >= 0) state.entries[existing] = newEntry(m.run);
        else state.entries.push(newEntry(m.run));
        if (state.entries.length > MAX_ENTRIES) state.entries.splice(0, state.entries.length - MAX_ENTRIES);
        showError(undefined);
        break;
      }
      case 'runEvent': {
        const e = entry(m.runId);
        if (!e) return;
        applyEvent(e, m.event, false);
        break;
      }
      case 'runEnded': {
        const e = entry(m.runId);
        if (e) endRun(e, m.outcome);
        break;
      }
      case 'focusQuestion':
        if (m.source) {
          state.source = m.source;
          source.value = m.source;
        }
        if (m.question) question.value = m.question;
        question.focus();
        break;
      case 'notice':
        if (m.level === 'error') showError(m.message);
        return;
      case 'showCompression':
        return; // panel only
    }
    save();
    render();
  });

  render();
  post({ type: 'ready' });
  question.focus();
}
