// The only message contract between the extension host and the webviews (sidebar chat and the
// compression panel). Both sides import these types; the host additionally runs every incoming
// message through `parseWebviewMessage`, because a webview is a browser page and anything it
// posts must be treated as untrusted input.
// No `vscode` import and no DOM use here: the file is bundled into both sides and unit tested.
import type { AnswerMode, AskEvent, AskStats, Citation, FileCompression } from './core/types';

/** Where the question's context comes from, as offered by the chat's source picker. */
export type SourceKind = 'open' | 'selection' | 'workspace';
export const SOURCE_KINDS: readonly SourceKind[] = ['open', 'selection', 'workspace'];
/** Every mode, the default first (also the column order of a compare group). */
export const ANSWER_MODES: readonly AnswerMode[] = ['mixed', 'arc', 'full', 'none'];

/** Host-side commands the webview may trigger (buttons in the chat toolbar / error banner). */
export type WebviewCommand = 'selectModel' | 'showStats' | 'compressWorkspace' | 'clearCache' | 'openLog';
export const WEBVIEW_COMMANDS: readonly WebviewCommand[] = [
  'selectModel',
  'showStats',
  'compressWorkspace',
  'clearCache',
  'openLog',
];

/** Upper bound on a question; a longer one is a bug or an attempt to flood the host. */
export const MAX_QUESTION_LENGTH = 4000;
const MAX_PATH_LENGTH = 4096;
const MAX_RUN_ID_LENGTH = 64;

export interface ModelStatus {
  state: 'not-loaded' | 'loading' | 'ready' | 'error';
  /** Manifest name of the loaded (or configured) model. */
  model?: string;
  /** Execution provider actually in use. */
  provider?: string;
  /** Human-readable cache state, e.g. "412 chunks cached, 3 stale". */
  cache?: string;
  /** Error text when state is 'error'. */
  message?: string;
}

/** One question being answered; a compare action starts two runs sharing `compareGroup`. */
export interface RunInfo {
  runId: string;
  question: string;
  mode: AnswerMode;
  /** Short description of the context, e.g. "3 open files" or "workspace (2 folders)". */
  sourceLabel: string;
  compareGroup?: string;
}

/** What a run's selection event tells the views: every included chunk, by form, and what was left out. */
export interface SelectionPicture {
  files: FileCompression[];
  included: Citation[];
  /** Included chunks read as text and read compressed (absent in states saved before mixed mode). */
  text?: Citation[];
  compressed?: Citation[];
  leftOut: Citation[];
  budget: number;
}

export function selectionPicture(e: Extract<AskEvent, { type: 'selection' }>): SelectionPicture {
  return { files: e.files, included: e.included, text: e.text, compressed: e.compressed, leftOut: e.leftOut, budget: e.budget };
}

/** What the compression panel draws when it is opened without a live run. */
export interface CompressionSnapshot {
  title: string;
  files: FileCompression[];
  included: Citation[];
  text?: Citation[];
  compressed?: Citation[];
  leftOut: Citation[];
  stats?: AskStats;
  budget?: number;
  /** Present for "Compress Workspace": what was encoded and what came from the cache. */
  compress?: { chunks: number; cacheHits: number; encoded: number; encodeMs: number; skippedFiles: number };
}

/** Messages from the extension host to a webview. */
export type HostMessage =
  /** `restore`: the host has nothing to replay (a panel VS Code restored after a restart): show the page's saved state. */
  | { type: 'init'; view: 'chat' | 'panel'; defaultMode: AnswerMode; status: ModelStatus; restore?: boolean }
  | { type: 'status'; status: ModelStatus }
  | { type: 'runStarted'; run: RunInfo }
  | { type: 'runEvent'; runId: string; event: AskEvent }
  | { type: 'runEnded'; runId: string; outcome: 'done' | 'error' | 'cancelled' }
  /** A command (e.g. "ARC: Ask About Selection") hands a question to the chat view. */
  | { type: 'focusQuestion'; source?: SourceKind; question?: string }
  | { type: 'showCompression'; snapshot: CompressionSnapshot }
  | { type: 'notice'; level: 'info' | 'error'; message: string };

/** Messages from a webview to the extension host. Validated by `parseWebviewMessage`. */
export type WebviewMessage =
  | { type: 'ready' }
  | { type: 'ask'; question: string; source: SourceKind; mode?: AnswerMode }
  /**
   * Run a question in every mode side by side. With `runId` (and that answer's `mode`) the
   * question was answered already: the other modes run and join that answer's group.
   */
  | { type: 'compare'; question: string; source: SourceKind; runId?: string; mode?: AnswerMode }
  | { type: 'stop'; runId?: string }
  | { type: 'openCitation'; citation: Citation }
  | { type: 'command'; command: WebviewCommand };

export type ParseResult = { ok: true; message: WebviewMessage } | { ok: false; error: string };

type Plain = Record<string, unknown>;

function isPlainObject(v: unknown): v is Plain {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Extra keys are rejected so that a message means exactly what its type says. */
function onlyKeys(o: Plain, allowed: readonly string[]): string | undefined {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) return `unexpected field "${k}"`;
  return undefined;
}

function isOneOf<T extends string>(v: unknown, values: readonly T[]): v is T {
  return typeof v === 'string' && (values as readonly string[]).includes(v);
}

function checkQuestion(v: unknown): string | undefined {
  if (typeof v !== 'string') return 'question must be a string';
  if (v.length > MAX_QUESTION_LENGTH) return `question longer than ${MAX_QUESTION_LENGTH} characters`;
  return undefined;
}

function isLine(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 10_000_000;
}

function isRunId(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_RUN_ID_LENGTH;
}

function checkCitation(v: unknown): string | undefined {
  if (!isPlainObject(v)) return 'citation must be an object';
  const extra = onlyKeys(v, ['path', 'absPath', 'startLine', 'endLine']);
  if (extra) return `citation: ${extra}`;
  if (typeof v.path !== 'string' || v.path.length === 0 || v.path.length > MAX_PATH_LENGTH) {
    return 'citation.path must be a non-empty string';
  }
  if (v.absPath !== undefined && (typeof v.absPath !== 'string' || v.absPath.length > MAX_PATH_LENGTH)) {
    return 'citation.absPath must be a string';
  }
  if (!isLine(v.startLine) || !isLine(v.endLine) || v.endLine < v.startLine) {
    return 'citation lines must be integers with 1 <= startLine <= endLine';
  }
  return undefined;
}

/**
 * Validate a message posted by a webview. Unknown types, missing or mistyped fields and extra
 * fields are all rejected; the host logs the error and ignores the message.
 */
export function parseWebviewMessage(value: unknown): ParseResult {
  const fail = (error: string): ParseResult => ({ ok: false, error });
  if (!isPlainObject(value)) return fail('message must be a plain object');
  const m = value;
  switch (m.type) {
    case 'ready': {
      const extra = onlyKeys(m, ['type']);
      return extra ? fail(extra) : { ok: true, message: { type: 'ready' } };
    }
    case 'ask': {
      const extra = onlyKeys(m, ['type', 'question', 'source', 'mode']);
      if (extra) return fail(extra);
      const q = checkQuestion(m.question);
      if (q) return fail(q);
      if (!isOneOf(m.source, SOURCE_KINDS)) return fail('source must be one of ' + SOURCE_KINDS.join(', '));
      if (m.mode !== undefined && !isOneOf(m.mode, ANSWER_MODES)) {
        return fail('mode must be one of ' + ANSWER_MODES.join(', '));
      }
      const message: WebviewMessage = { type: 'ask', question: m.question as string, source: m.source };
      if (m.mode !== undefined) message.mode = m.mode as AnswerMode;
      return { ok: true, message };
    }
    case 'compare': {
      const extra = onlyKeys(m, ['type', 'question', 'source', 'runId', 'mode']);
      if (extra) return fail(extra);
      const q = checkQuestion(m.question);
      if (q) return fail(q);
      if (!isOneOf(m.source, SOURCE_KINDS)) return fail('source must be one of ' + SOURCE_KINDS.join(', '));
      const message: Extract<WebviewMessage, { type: 'compare' }> = { type: 'compare', question: m.question as string, source: m.source };
      if (m.runId !== undefined) {
        if (!isRunId(m.runId)) return fail('runId must be a short non-empty string');
        message.runId = m.runId;
      }
      if (m.mode !== undefined) {
        if (m.runId === undefined) return fail('mode names the mode of the answer runId; it needs a runId');
        if (!isOneOf(m.mode, ANSWER_MODES)) return fail('mode must be one of ' + ANSWER_MODES.join(', '));
        message.mode = m.mode;
      }
      return { ok: true, message };
    }
    case 'stop': {
      const extra = onlyKeys(m, ['type', 'runId']);
      if (extra) return fail(extra);
      if (m.runId === undefined) return { ok: true, message: { type: 'stop' } };
      if (!isRunId(m.runId)) return fail('runId must be a short non-empty string');
      return { ok: true, message: { type: 'stop', runId: m.runId } };
    }
    case 'openCitation': {
      const extra = onlyKeys(m, ['type', 'citation']);
      if (extra) return fail(extra);
      const c = checkCitation(m.citation);
      if (c) return fail(c);
      const src = m.citation as Plain;
      const citation: Citation = {
        path: src.path as string,
        startLine: src.startLine as number,
        endLine: src.endLine as number,
      };
      if (src.absPath !== undefined) citation.absPath = src.absPath as string;
      return { ok: true, message: { type: 'openCitation', citation } };
    }
    case 'command': {
      const extra = onlyKeys(m, ['type', 'command']);
      if (extra) return fail(extra);
      if (!isOneOf(m.command, WEBVIEW_COMMANDS)) return fail('unknown command');
      return { ok: true, message: { type: 'command', command: m.command } };
    }
    default:
      return fail(typeof m.type === 'string' ? `unknown message type "${m.type.slice(0, 40)}"` : 'missing type');
  }
}
