// What a webview remembers about answers, and how run events update it. Pure (no DOM): the chat
// persists this through vscode.setState, and the unit tests drive applyEvent directly.
import type { AnswerMode, ArcErrorCode, AskEvent, AskStats, Citation } from '../src/core/types';
import { selectionPicture, type CompressionSnapshot, type RunInfo, type SelectionPicture, type SourceKind } from '../src/protocol';

export type EntryState = 'streaming' | 'done' | 'error' | 'cancelled';

export interface AnswerEntry {
  runId: string;
  question: string;
  mode: AnswerMode;
  sourceLabel: string;
  compareGroup?: string;
  answer: string;
  state: EntryState;
  progress?: string;
  stats?: AskStats;
  citations: Citation[];
  error?: { code: ArcErrorCode; message: string };
  /** Compression picture; kept only for the panel (the chat's saved state stays small). */
  selection?: SelectionPicture;
  skipped?: number;
}

export interface ChatState {
  version: 1;
  entries: AnswerEntry[];
  source: SourceKind;
  draft: string;
}

/** Enough history to scroll back through without making setState slow. */
export const MAX_ENTRIES = 50;

export function emptyChatState(): ChatState {
  return { version: 1, entries: [], source: 'open', draft: '' };
}

/** Accept a saved state only if it has the shape this version writes. */
export function restoreChatState(saved: unknown): ChatState {
  const s = saved as Partial<ChatState> | undefined;
  if (!s || s.version !== 1 || !Array.isArray(s.entries)) return emptyChatState();
  const entries = s.entries.filter((e) => e && typeof e.runId === 'string' && typeof e.question === 'string');
  // A run cannot survive a reload of the page that showed it; the host replays live ones.
  for (const e of entries) if (e.state === 'streaming') e.state = 'cancelled';
  return {
    version: 1,
    entries: entries.slice(-MAX_ENTRIES),
    source: s.source === 'selection' || s.source === 'workspace' ? s.source : 'open',
    draft: typeof s.draft === 'string' ? s.draft : '',
  };
}

/** What the answer panel remembers so VS Code can restore it after a restart. */
export interface PanelState {
  version: 1;
  entry?: AnswerEntry;
  snapshot?: CompressionSnapshot;
}

function isEntry(e: unknown): e is AnswerEntry {
  const x = e as Partial<AnswerEntry> | undefined;
  return !!x && typeof x.runId === 'string' && typeof x.question === 'string' && typeof x.answer === 'string' && Array.isArray(x.citations);
}

/**
 * Accept a saved panel state only if it has the shape this version writes. The run it showed
 * did not survive the restart: a streaming answer comes back as stopped.
 */
export function restorePanelState(saved: unknown): PanelState {
  const s = saved as Partial<PanelState> | undefined;
  if (!s || s.version !== 1) return { version: 1 };
  const out: PanelState = { version: 1 };
  if (isEntry(s.entry)) {
    out.entry = { ...s.entry };
    if (out.entry.state === 'streaming') {
      out.entry.state = 'cancelled';
      out.entry.progress = undefined;
    }
  } else if (s.snapshot && typeof s.snapshot.title === 'string' && Array.isArray(s.snapshot.files)) {
    out.snapshot = s.snapshot;
  }
  return out;
}

export function newEntry(run: RunInfo): AnswerEntry {
  const e: AnswerEntry = {
    runId: run.runId,
    question: run.question,
    mode: run.mode,
    sourceLabel: run.sourceLabel,
    answer: '',
    state: 'streaming',
    citations: [],
  };
  if (run.compareGroup) e.compareGroup = run.compareGroup;
  return e;
}

export function applyEvent(e: AnswerEntry, ev: AskEvent, keepSelection: boolean): void {
  switch (ev.type) {
    case 'progress':
      e.progress = ev.done !== undefined && ev.total ? `${ev.message}` : ev.message;
      return;
    case 'skipped':
      e.skipped = Object.values(ev.counts).reduce((a, b) => a + (b ?? 0), 0);
      return;
    case 'selection':
      if (keepSelection) e.selection = selectionPicture(ev);
      return;
    case 'token':
      e.answer += ev.text;
      return;
    case 'citations':
      e.citations = ev.citations;
      return;
    case 'stats':
      e.stats = ev.stats;
      return;
    case 'done':
      e.answer = ev.answer;
      e.stats = ev.stats;
      e.state = 'done';
      e.progress = undefined;
      return;
    case 'error':
      e.state = ev.code === 'cancelled' ? 'cancelled' : 'error';
      e.error = { code: ev.code, message: ev.message };
      e.progress = undefined;
      return;
  }
}

/** Runs ended by the host: anything still streaming did not get a terminal event. */
export function endRun(e: AnswerEntry, outcome: 'done' | 'error' | 'cancelled'): void {
  if (e.state === 'streaming') e.state = outcome;
  e.progress = undefined;
}

/** Answers grouped for display: a compare run joins the entry it compares with. */
export function groupEntries(entries: AnswerEntry[]): AnswerEntry[][] {
  const groups = new Map<string, AnswerEntry[]>();
  for (const e of entries) {
    const key = e.compareGroup ?? e.runId;
    const g = groups.get(key);
    if (g) g.push(e);
    else groups.set(key, [e]);
  }
  return [...groups.values()];
}
