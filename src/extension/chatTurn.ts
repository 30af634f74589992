// One turn of the `@arc` participant in VS Code's Chat view, without VS Code: the collected
// sources go through the same AskRunner run the sidebar uses (controller.ask in the extension),
// and the run's events become what a chat response shows: progress per stage, the answer as
// streamed markdown, the read files as references, anchors to the cited lines and a one-line
// stats footer. chatParticipant.ts maps ChatOut onto vscode.ChatResponseStream; unit tests give
// it a recorder and the real pipeline.
import type { AnswerMode, ArcErrorCode, AskStats, Citation } from '../core/types';
import { ANSWER_MODES, type CompressionSnapshot, type WebviewCommand } from '../protocol';
import { formatInt, formatMs, formatRatio, formatStatsLine, MODE_LABEL } from '../../webview/format';
import { errorCodeOf, errorText, type Logger, type RunOutcome, type RunSink } from './runner';
import type { CollectedSources } from './sources';

/** The participant's slash commands (package.json contributes.chatParticipants[0].commands). */
export type ChatCommand = 'workspace' | 'file' | 'selection' | 'compare' | 'compress';
export const CHAT_COMMANDS: readonly ChatCommand[] = ['workspace', 'file', 'selection', 'compare', 'compress'];

/** What a turn can put into the chat response. */
export interface ChatOut {
  progress(message: string): void;
  markdown(text: string): void;
  /** A link to the cited lines (stream.anchor). */
  anchor(c: Citation, title: string): void;
  /** A file the answer was read from ("Used N references"). */
  reference(c: Citation): void;
  /** A button that runs one of the extension's commands (the sidebar's error actions). */
  button(command: WebviewCommand, title: string): void;
}

export interface ChatTurnDeps {
  /** The sources of this turn (workspace, #file / #selection references, the active editor). */
  collect(): Promise<CollectedSources>;
  /** The sidebar's run: ArcController.ask, i.e. AskRunner + core ask(). */
  ask(collected: CollectedSources, question: string, sink: RunSink, opts: { mode?: AnswerMode; signal: AbortSignal; compareGroup?: string }): Promise<RunOutcome>;
  /** "Compress Workspace" with progress; resolves with what was compressed. */
  compress(onProgress: (message: string) => void, signal: AbortSignal): Promise<CompressionSnapshot>;
  log: Logger;
}

export interface ChatTurnRequest {
  command?: ChatCommand;
  question: string;
}

/** What the turn ended with; kept in the chat result's metadata for follow-ups. */
export interface ChatTurnResult {
  command?: ChatCommand;
  question: string;
  outcome: 'done' | 'error' | 'cancelled';
  code?: ArcErrorCode;
  message?: string;
  stats?: AskStats;
  /** Answer tokens that arrived after the stop button was pressed (0: the decoder stopped at once). */
  tokensAfterStop?: number;
}

/** At most this many anchors under an answer; the rest are counted. */
const MAX_ANCHORS = 8;

/**
 * One progress line per stage, its first message (the encoder's batch counts would flood the
 * view); scanning and answering get fixed words (their first messages say less).
 */
const STAGE_WORDS = { scan: 'Scanning files', generate: 'Answering' } as const;

export function citationLabel(c: Pick<Citation, 'path' | 'startLine' | 'endLine'>): string {
  return c.startLine === c.endLine ? `${c.path}:${c.startLine}` : `${c.path}:${c.startLine}-${c.endLine}`;
}

/** The stats footer: ratio, source tokens -> positions, chunk forms, encode, TTFT, speed, provider, cache. */
export function statsFooter(s: AskStats): string {
  return `ARC ${MODE_LABEL[s.mode].toLowerCase()} · ${formatStatsLine(s)}`;
}

interface OneAnswer {
  outcome: RunOutcome;
  answer: string;
  tokensAfterStop: number;
}

/** One run through the sidebar's pipeline, its events written to `out`. */
async function answerOnce(deps: ChatTurnDeps, collected: CollectedSources, question: string, out: ChatOut, signal: AbortSignal, mode?: AnswerMode, compareGroup?: string, shownStage = ''): Promise<OneAnswer> {
  let stage = shownStage;
  let answer = '';
  let tokensAfterStop = 0;
  let citations: Citation[] = [];
  const referenced = new Set<string>();
  const sink: RunSink = (m) => {
    if (m.type !== 'runEvent') return;
    const e = m.event;
    if (e.type === 'progress') {
      if (e.stage !== stage) {
        stage = e.stage;
        out.progress(e.stage === 'scan' || e.stage === 'generate' ? STAGE_WORDS[e.stage] : e.message);
      }
    } else if (e.type === 'selection') {
      // One reference per file that reached the decoder, at the range read (first and last line).
      const byFile = new Map<string, Citation>();
      for (const c of e.included) {
        const f = byFile.get(c.path);
        if (f) {
          f.startLine = Math.min(f.startLine, c.startLine);
          f.endLine = Math.max(f.endLine, c.endLine);
        } else byFile.set(c.path, { ...c });
      }
      for (const c of byFile.values()) {
        if (referenced.has(c.path)) continue;
        referenced.add(c.path);
        out.reference(c);
      }
    } else if (e.type === 'token') {
      if (signal.aborted) tokensAfterStop++;
      else {
        answer += e.text;
        out.markdown(e.text);
      }
    } else if (e.type === 'citations') {
      citations = e.citations;
    }
  };
  const outcome = await deps.ask(collected, question, sink, { mode, signal, ...(compareGroup ? { compareGroup } : {}) });
  if (outcome.outcome === 'done') {
    if (citations.length > 0) {
      out.markdown('\n\nRead from: ');
      citations.slice(0, MAX_ANCHORS).forEach((c, i) => {
        if (i > 0) out.markdown(', ');
        out.anchor(c, citationLabel(c));
      });
      if (citations.length > MAX_ANCHORS) out.markdown(` and ${citations.length - MAX_ANCHORS} more`);
    }
    out.markdown(`\n\n*${statsFooter(outcome.stats)}*\n`);
  }
  return { outcome, answer, tokensAfterStop };
}

/** The sidebar's actions for an error a user can fix (Select Model…, Open Log). */
function errorActions(code: ArcErrorCode, out: ChatOut): void {
  if (code === 'model-missing' || code === 'model-corrupt' || code === 'provider-unavailable') out.button('selectModel', 'Select Model…');
  else if (code === 'internal' || code === 'decoder-server') out.button('openLog', 'Open Log');
  else if (code === 'no-sources') out.markdown('\n\nAttach files with `#file`, select code and use `/selection`, or ask `/workspace`.');
}

function fromOutcome(req: ChatTurnRequest, o: OneAnswer, out: ChatOut): ChatTurnResult {
  const base = { command: req.command, question: req.question, tokensAfterStop: o.tokensAfterStop };
  if (o.outcome.outcome === 'done') return { ...base, outcome: 'done', stats: o.outcome.stats };
  if (o.outcome.outcome === 'cancelled') return { ...base, outcome: 'cancelled' };
  errorActions(o.outcome.code, out);
  return { ...base, outcome: 'error', code: o.outcome.code, message: o.outcome.message };
}

function failed(req: ChatTurnRequest, e: unknown, out: ChatOut, signal: AbortSignal): ChatTurnResult {
  const code = signal.aborted ? 'cancelled' : errorCodeOf(e);
  if (code === 'cancelled') return { command: req.command, question: req.question, outcome: 'cancelled' };
  errorActions(code, out);
  return { command: req.command, question: req.question, outcome: 'error', code, message: errorText(e) };
}

/** One cell of the /compare table: no line breaks or pipes. */
function cell(text: string, max = 80): string {
  const one = text.replace(/\s+/g, ' ').trim().replace(/\|/g, '\\|');
  return one.length > max ? `${one.slice(0, max - 1)}…` : one || '—';
}

/** /compare: the question in every mode, one after another, then a table of the timings. */
async function compare(deps: ChatTurnDeps, req: ChatTurnRequest, collected: CollectedSources, out: ChatOut, signal: AbortSignal): Promise<ChatTurnResult> {
  const rows: string[] = [];
  let last: OneAnswer | undefined;
  let tokensAfterStop = 0;
  const group = `compare-${Date.now().toString(36)}`;
  for (const mode of ANSWER_MODES) {
    out.markdown(`${rows.length > 0 ? '\n\n' : ''}#### ${MODE_LABEL[mode]}\n\n`);
    last = await answerOnce(deps, collected, req.question, out, signal, mode, group);
    tokensAfterStop += last.tokensAfterStop;
    const o = last.outcome;
    if (o.outcome === 'done') {
      const s = o.stats;
      rows.push(`| ${MODE_LABEL[mode]} | ${s.mode === 'none' ? '—' : `${formatInt(s.sourceTokens)} → ${formatInt(s.contextPositions)}`} | ${s.mode === 'none' ? '—' : formatRatio(s.ratio)} | ${formatMs(s.ttftMs)} | ${formatMs(s.totalMs)} | ${cell(o.answer)} |`);
    } else if (o.outcome === 'error') {
      out.markdown(`*${o.message}*`);
      rows.push(`| ${MODE_LABEL[mode]} | — | — | — | — | error: ${cell(o.message)} |`);
    } else break;
  }
  if (rows.length > 0) {
    out.markdown('\n\n#### Side by side\n\n| Mode | Source tokens → positions | Ratio | TTFT | Total | Answer |\n|---|---|---|---|---|---|\n');
    out.markdown(rows.join('\n') + '\n');
  }
  const r = fromOutcome(req, last as OneAnswer, out);
  return { ...r, tokensAfterStop };
}

/** /compress: the whole workspace into the cache, with progress. */
async function compressWorkspace(deps: ChatTurnDeps, req: ChatTurnRequest, out: ChatOut, signal: AbortSignal): Promise<ChatTurnResult> {
  const started = Date.now();
  let lastShown = 0;
  const snapshot = await deps.compress((message) => {
    // The encoder reports every batch; a line a second is enough to see it move.
    if (Date.now() - lastShown < 1000 && !/^(Reading|Chunking)/.test(message)) return;
    lastShown = Date.now();
    out.progress(message);
  }, signal);
  const c = snapshot.compress;
  const files = snapshot.files.length;
  const tokens = snapshot.files.reduce((n, f) => n + f.tokens, 0);
  const vectors = snapshot.files.reduce((n, f) => n + f.vectors, 0);
  out.markdown(
    `Compressed the workspace: ${formatInt(files)} files, ${c ? formatInt(c.chunks) : '?'} chunks ` +
      `(${c ? formatInt(c.encoded) : '?'} encoded, ${c ? formatInt(c.cacheHits) : '?'} already cached${c && c.skippedFiles > 0 ? `, ${formatInt(c.skippedFiles)} files skipped` : ''}), ` +
      `${formatInt(tokens)} tokens → ${formatInt(vectors)} vectors (${formatRatio(vectors > 0 ? tokens / vectors : 0)}) in ${formatMs(Date.now() - started)}. ` +
      'Questions now read these chunks from the cache.\n',
  );
  out.button('showStats', 'Show Compression Stats');
  return { command: req.command, question: req.question, outcome: 'done' };
}

/** Runs one chat turn. Never throws: failures come back as an error result (and buttons in `out`). */
export async function runChatTurn(deps: ChatTurnDeps, req: ChatTurnRequest, out: ChatOut, signal: AbortSignal): Promise<ChatTurnResult> {
  try {
    if (req.command === 'compress') return await compressWorkspace(deps, req, out, signal);
    if (req.question.trim() === '') {
      const hint = 'Type a question after `@arc`, e.g. `@arc /workspace Where is the cache evicted?`';
      return { command: req.command, question: req.question, outcome: 'error', code: 'empty-question', message: hint };
    }
    out.progress(STAGE_WORDS.scan);
    const collected = await deps.collect();
    if (req.command === 'compare') return await compare(deps, req, collected, out, signal);
    const r = fromOutcome(req, await answerOnce(deps, collected, req.question, out, signal, undefined, undefined, 'scan'), out);
    if (r.outcome === 'cancelled') deps.log.info(`@arc: stopped; ${r.tokensAfterStop ?? 0} tokens arrived after the stop`);
    return r;
  } catch (e) {
    return failed(req, e, out, signal);
  }
}

/** Follow-ups offered under an answer (the Chat view shows them as clickable prompts). */
export function followupsFor(r: ChatTurnResult | undefined): { prompt: string; label: string; command?: ChatCommand }[] {
  if (!r || r.outcome !== 'done' || r.command === 'compress') return [];
  const out: { prompt: string; label: string; command?: ChatCommand }[] = [];
  if (r.command !== 'compare') out.push({ prompt: r.question, command: 'compare', label: 'Compare the answer modes on this question' });
  // The question had to encode chunks: compressing the rest now makes later questions faster.
  if (r.stats && r.stats.cacheMisses > 0) out.push({ prompt: '', command: 'compress', label: 'Compress the whole workspace now (later questions read it from the cache)' });
  return out;
}
