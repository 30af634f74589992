// Connects the views and commands to the pipeline: collects sources for a question, starts the
// run, reports errors in words a user can act on, and opens citations.
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { AnswerMode, Citation } from '../core/types';
import { ANSWER_MODES, type RunInfo, type SourceKind } from '../protocol';
import { newRunId, errorCodeOf, errorText, type AskRunner, type RunOutcome, type RunSink } from './runner';
import { readSettings } from './settings';
import { sourcesFor, type CollectedSources } from './sources';
import { questionRequest } from './workspaceScan';

export interface AskOptions {
  mode?: AnswerMode;
  compareGroup?: string;
  signal?: AbortSignal;
}

/** What the controller needs of the background compression (backgroundCompression.ts). */
export interface BackgroundWork {
  /** A question starts: background encoding stops between batches. */
  pause(): Promise<void>;
  resume(): void;
  /** A workspace question was answered (it encoded only its own chunks): compress the rest. */
  afterWorkspaceQuestion(): void;
}

export class ArcController {
  /** Absolute paths the pipeline has cited or selected this session: always openable. */
  private readonly citedPaths = new Set<string>();
  /** Set by activate() in a trusted workspace. */
  background: BackgroundWork | null = null;

  constructor(
    readonly runner: AskRunner,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  /** Collect the sources of `kind` and ask. Source problems come back as a failed outcome. */
  async askAbout(kind: SourceKind, question: string, sink: RunSink, opts: AskOptions = {}): Promise<RunOutcome> {
    let collected: CollectedSources;
    try {
      collected = await sourcesFor(kind, readSettings(), this.log);
    } catch (e) {
      return this.failBeforeRun(question, opts, sink, e);
    }
    const outcome = await this.ask(collected, question, sink, opts);
    if (kind === 'workspace' && outcome.outcome === 'done') this.background?.afterWorkspaceQuestion();
    return outcome;
  }

  ask(collected: CollectedSources, question: string, sink: RunSink, opts: AskOptions = {}): Promise<RunOutcome> {
    const settings = readSettings();
    const mode = opts.mode ?? settings.answerMode;
    const info: RunInfo = { runId: newRunId(), question, mode, sourceLabel: collected.label };
    if (opts.compareGroup) info.compareGroup = opts.compareGroup;
    // A workspace question carries its folders (collected.scan): the core scans them, as `ask --root`.
    const request = questionRequest(collected, question, mode, settings);
    return this.withBackgroundPaused(() => this.runner.start(info, request, this.remember(sink), opts.signal));
  }

  /** Questions go first: the background compression waits while one runs. */
  private async withBackgroundPaused<T>(fn: () => Promise<T>): Promise<T> {
    const bg = this.background;
    if (!bg) return fn();
    await bg.pause();
    try {
      return await fn();
    } finally {
      bg.resume();
    }
  }

  /**
   * The question in every mode, one after the other, as one group. `group` names an answer
   * already given in mode `answered`: only the other modes run.
   */
  async compare(kind: SourceKind, question: string, sink: RunSink, group?: string, answered?: AnswerMode): Promise<void> {
    const compareGroup = group ?? newRunId();
    // An answer named without its mode is taken to be in the default mode, as asked from the chat.
    const done = group ? (answered ?? readSettings().answerMode) : undefined;
    for (const mode of ANSWER_MODES.filter((m) => m !== done)) {
      const r = await this.askAbout(kind, question, sink, { mode, compareGroup });
      if (r.outcome === 'cancelled') break;
    }
  }

  /** Opens a cited file at the cited lines, if the path is one we produced or lies in the workspace. */
  async openCitation(c: Citation): Promise<void> {
    const uri = this.resolveCitation(c);
    if (!uri) {
      void vscode.window.showWarningMessage(`ARC: cannot open ${c.path}: it is not part of this workspace.`);
      return;
    }
    try {
      const doc = await vscode.workspace.openTextDocument(uri);
      const last = Math.max(0, doc.lineCount - 1);
      const start = Math.min(c.startLine - 1, last);
      const end = Math.min(c.endLine - 1, last);
      const range = new vscode.Range(start, 0, end, doc.lineAt(end).text.length);
      await vscode.window.showTextDocument(doc, { selection: range, preview: true, viewColumn: vscode.ViewColumn.One });
    } catch (e) {
      void vscode.window.showWarningMessage(`ARC: cannot open ${c.path}: ${errorText(e)}`);
    }
  }

  private resolveCitation(c: Citation): vscode.Uri | undefined {
    const folders = vscode.workspace.workspaceFolders ?? [];
    const inside = (p: string) =>
      folders.some((f) => {
        const rel = path.relative(f.uri.fsPath, p);
        return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
      });
    if (c.absPath && path.isAbsolute(c.absPath)) {
      const abs = path.normalize(c.absPath);
      // A restored history entry may cite a file we have not cited in this session.
      if (this.citedPaths.has(abs) || inside(abs)) return vscode.Uri.file(abs);
      return undefined;
    }
    if (c.path.startsWith('Untitled-') || c.path.startsWith('untitled')) return undefined;
    // Display paths are workspace-relative; multi-root ones start with the folder name.
    const [first, ...rest] = c.path.split('/');
    const named = folders.find((f) => f.name === first);
    const candidates = named && rest.length > 0 ? [path.join(named.uri.fsPath, ...rest)] : folders.map((f) => path.join(f.uri.fsPath, c.path));
    const hit = candidates.map((p) => path.normalize(p)).find((p) => inside(p));
    return hit ? vscode.Uri.file(hit) : undefined;
  }

  /** Wraps a sink to note the paths the pipeline cites. */
  private remember(sink: RunSink): RunSink {
    return (m) => {
      if (m.type === 'runEvent') {
        const e = m.event;
        const list = e.type === 'citations' ? e.citations : e.type === 'selection' ? [...e.included, ...e.leftOut] : [];
        for (const c of list) if (c.absPath) this.citedPaths.add(path.normalize(c.absPath));
      }
      sink(m);
    };
  }

  /** A run that could not start (no sources, nothing selected): the view still gets an answer entry. */
  private failBeforeRun(question: string, opts: AskOptions, sink: RunSink, e: unknown): RunOutcome {
    const code = errorCodeOf(e);
    const message = errorText(e);
    const info: RunInfo = { runId: newRunId(), question, mode: opts.mode ?? readSettings().answerMode, sourceLabel: '—' };
    if (opts.compareGroup) info.compareGroup = opts.compareGroup;
    sink({ type: 'runStarted', run: info });
    sink({ type: 'runEvent', runId: info.runId, event: { type: 'error', code, message } });
    sink({ type: 'runEnded', runId: info.runId, outcome: 'error' });
    if (code === 'internal') this.log.error(`collecting sources failed: ${message}`);
    else this.log.info(`not asked: ${message}`);
    return { outcome: 'error', code, message };
  }
}
