// The `@arc` participant in VS Code's own Chat view. The turn itself (chatTurn.ts) runs the
// sidebar's pipeline; this file only speaks VS Code: it turns the request's #file / #selection
// references and the slash command into sources, the response stream into ChatOut, the stop
// button into an AbortSignal, and a failed turn into a chat error with the sidebar's actions.
// Hosts without the Chat API (older VS Code, or a fork without it) get no participant; the
// ARC sidebar and panel work there as before.
import * as vscode from 'vscode';
import { ArcError } from '../core/errors';
import type { Citation, SourceInput } from '../core/types';
import type { WebviewCommand } from '../protocol';
import { CHAT_COMMANDS, followupsFor, runChatTurn, type ChatCommand, type ChatOut, type ChatTurnResult } from './chatTurn';
import { compressSources } from './compressWorkspace';
import type { ArcController } from './controller';
import type { ModelManager } from './modelManager';
import { readSettings } from './settings';
import { displayPath, selectionSources, uriSources, workspaceQuestionSources, workspaceSources, type CollectedSources } from './sources';
import type { WorkspaceWatcher } from './workspaceWatcher';

export const PARTICIPANT_ID = 'arc-context.arc';

export interface ChatParticipantDeps {
  extensionUri: vscode.Uri;
  log: vscode.LogOutputChannel;
  controller: ArcController;
  models: ModelManager;
  cacheDir: string;
  watcher: WorkspaceWatcher;
  refreshCache: () => void;
  commandIds: Record<WebviewCommand, string>;
}

/** Whether this host has the Chat participant API (VS Code 1.90+ with chat enabled). */
export function hasChatApi(): boolean {
  return typeof (vscode as { chat?: { createChatParticipant?: unknown } }).chat?.createChatParticipant === 'function';
}

/** The question without the `#file:…` text of its references (their ranges in the prompt). */
export function questionWithoutReferences(prompt: string, refs: readonly Pick<vscode.ChatPromptReference, 'range'>[]): string {
  let q = prompt;
  const ranges = refs.map((r) => r.range).filter((r): r is [number, number] => !!r).sort((a, b) => b[0] - a[0]);
  for (const [s, e] of ranges) q = q.slice(0, s) + q.slice(e);
  return q.replace(/\s+/g, ' ').trim();
}

/** Implicit context the Chat view attaches on its own (the active editor): a ranking hint, not a restriction. */
function isImplicit(ref: vscode.ChatPromptReference): boolean {
  return ref.id.includes('implicit');
}

interface Referenced {
  /** Whole files and folders (#file, #folder). */
  uris: vscode.Uri[];
  /** Line ranges (#selection, a #file with lines). */
  ranges: vscode.Location[];
  /** Files that only hint at relevance (implicit context). */
  hints: vscode.Uri[];
}

function splitReferences(refs: readonly vscode.ChatPromptReference[]): Referenced {
  const r: Referenced = { uris: [], ranges: [], hints: [] };
  for (const ref of refs) {
    const v = ref.value;
    if (v instanceof vscode.Uri) (isImplicit(ref) ? r.hints : r.uris).push(v);
    else if (v instanceof vscode.Location) (isImplicit(ref) ? r.hints.push(v.uri) : r.ranges.push(v));
  }
  return r;
}

/** A referenced range as a source (whole lines, like the sidebar's selection). */
async function rangeSource(loc: vscode.Location): Promise<SourceInput> {
  const doc = await vscode.workspace.openTextDocument(loc.uri);
  const end = Math.min(loc.range.end.line, doc.lineCount - 1);
  const text = doc.getText(new vscode.Range(loc.range.start.line, 0, end, doc.lineAt(end).text.length));
  const s: SourceInput = { path: displayPath(loc.uri), text, startLine: loc.range.start.line + 1, origin: 'selection' };
  if (loc.uri.scheme === 'file') s.absPath = loc.uri.fsPath;
  return s;
}

async function referencedSources(refs: Referenced, log: vscode.LogOutputChannel): Promise<CollectedSources | undefined> {
  const sources: SourceInput[] = [];
  const labels: string[] = [];
  if (refs.uris.length > 0) {
    const files = await uriSources(refs.uris, readSettings(), log);
    sources.push(...files.sources);
    labels.push(files.label);
  }
  for (const loc of refs.ranges) {
    const s = await rangeSource(loc);
    sources.push(s);
    labels.push(`${s.path}:${loc.range.start.line + 1}-${loc.range.end.line + 1}`);
  }
  return sources.length > 0 ? { sources, label: labels.join(', ') } : undefined;
}

/** The sources of a turn: what the command names, else the attached references, else the workspace. */
async function collectFor(command: ChatCommand | undefined, refs: Referenced, log: vscode.LogOutputChannel, token: vscode.CancellationToken): Promise<CollectedSources> {
  const settings = readSettings();
  if (command === 'selection') {
    if (refs.ranges.length > 0) return (await referencedSources({ uris: [], ranges: refs.ranges, hints: [] }, log))!;
    return selectionSources();
  }
  if (command === 'file') {
    const files = [...refs.uris, ...refs.ranges.map((l) => l.uri)];
    const active = vscode.window.activeTextEditor?.document.uri;
    if (files.length === 0 && active) files.push(active);
    if (files.length === 0) throw new ArcError('no-sources', 'No file attached. Attach one with `#file` (or the paperclip), or open it in an editor, then ask `@arc /file …`.');
    return uriSources(files, settings, log);
  }
  if (command !== 'workspace') {
    const attached = await referencedSources(refs, log);
    if (attached) return attached;
  }
  // Files the user attached or has in front of them rank first (the core's boost for explicit files).
  return workspaceQuestionSources(settings, log, token, [...refs.uris, ...refs.ranges.map((l) => l.uri), ...refs.hints]);
}

function locationOf(c: Citation): vscode.Location | undefined {
  let uri: vscode.Uri | undefined;
  if (c.absPath) uri = vscode.Uri.file(c.absPath);
  else {
    const folder = vscode.workspace.workspaceFolders?.[0];
    if (folder && !c.path.startsWith('Untitled-')) uri = vscode.Uri.joinPath(folder.uri, c.path);
  }
  if (!uri) return undefined;
  return new vscode.Location(uri, new vscode.Range(c.startLine - 1, 0, c.endLine - 1, Number.MAX_SAFE_INTEGER));
}

function streamOut(stream: vscode.ChatResponseStream, commandIds: Record<WebviewCommand, string>): ChatOut {
  return {
    progress: (m) => stream.progress(m),
    markdown: (t) => stream.markdown(t),
    anchor: (c, title) => {
      const loc = locationOf(c);
      if (loc) stream.anchor(loc, title);
      else stream.markdown(`\`${title}\``);
    },
    reference: (c) => {
      const loc = locationOf(c);
      if (loc) stream.reference(loc);
    },
    button: (command, title) => stream.button({ command: commandIds[command], title }),
  };
}

export function registerChatParticipant(d: ChatParticipantDeps): vscode.Disposable[] {
  if (!hasChatApi()) {
    d.log.info('this host has no Chat participant API: @arc is not registered (the ARC sidebar works as before)');
    return [];
  }
  const { log, controller } = d;
  const handler: vscode.ChatRequestHandler = async (request, _context, stream, token) => {
    const abort = new AbortController();
    if (token.isCancellationRequested) abort.abort();
    const sub = token.onCancellationRequested(() => {
      log.info('@arc: stop pressed in the Chat view');
      abort.abort();
    });
    const command = CHAT_COMMANDS.find((c) => c === request.command);
    const refs = splitReferences(request.references);
    const question = questionWithoutReferences(request.prompt, request.references);
    try {
      const result = await runChatTurn(
        {
          log,
          collect: () => collectFor(command, refs, log, token),
          ask: (collected, q, sink, opts) => controller.ask(collected, q, sink, opts),
          compress: (onProgress, signal) => compress(d, onProgress, signal, token),
        },
        { command, question },
        streamOut(stream, d.commandIds),
        abort.signal,
      );
      d.refreshCache();
      return chatResult(result);
    } finally {
      sub.dispose();
    }
  };
  const participant = vscode.chat.createChatParticipant(PARTICIPANT_ID, handler);
  participant.iconPath = vscode.Uri.joinPath(d.extensionUri, 'media', 'arc.svg');
  participant.followupProvider = {
    provideFollowups: (result) =>
      followupsFor(result.metadata as ChatTurnResult | undefined).map((f) => ({ prompt: f.prompt, label: f.label, ...(f.command ? { command: f.command } : {}) })),
  };
  log.info('@arc chat participant registered');
  // The chat's "Open Log" button (the sidebar opens the log itself).
  return [participant, vscode.commands.registerCommand(d.commandIds.openLog, () => log.show(true))];
}

function chatResult(r: ChatTurnResult): vscode.ChatResult {
  const metadata = { ...r };
  if (r.outcome === 'error') return { errorDetails: { message: r.message ?? 'The question could not be answered.' }, metadata };
  return { metadata };
}

/** /compress: the same work as "ARC: Compress Workspace", reported in the chat. */
async function compress(d: ChatParticipantDeps, onProgress: (m: string) => void, signal: AbortSignal, token: vscode.CancellationToken) {
  if (!vscode.workspace.isTrusted) {
    throw new ArcError('no-sources', 'The workspace is not trusted, so it is not compressed as a whole. Ask a question to compress what it needs.');
  }
  const settings = readSettings();
  onProgress('Reading files');
  const collected = await workspaceSources(settings, d.log, token);
  const model = await d.models.get();
  const snapshot = await d.controller.runner.exclusive(() =>
    compressSources(model, collected.sources, `Workspace: ${collected.label}`, {
      cacheDir: d.cacheDir,
      cacheMaxBytes: settings.cacheSizeMB * 1024 * 1024,
      include: settings.include,
      exclude: settings.exclude,
      signal,
      log: (line) => d.log.info(line),
      onProgress: (message) => onProgress(message),
    }),
  );
  d.controller.runner.setCompression(snapshot);
  d.watcher.reset();
  d.watcher.keepCompressed = true;
  return snapshot;
}
