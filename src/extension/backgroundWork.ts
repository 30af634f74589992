// The VS Code side of the background compression: after the first workspace question the rest of
// the workspace compresses through the same compressSources path as "ARC: Compress Workspace"
// and the file watcher, with a cancellable progress notification. Questions pause it (see
// ArcController); what finished stays cached, so cancelling or closing the window loses nothing.
import * as vscode from 'vscode';
import type { ArcModel } from '../core/api';
import { BackgroundCompressor, type BackgroundState } from './backgroundCompression';
import { compressSources } from './compressWorkspace';
import type { BackgroundWork } from './controller';
import type { AskRunner } from './runner';
import { errorText } from './runner';
import { readSettings } from './settings';
import { workspaceSources } from './sources';
import type { WorkspaceWatcher } from './workspaceWatcher';

export interface BackgroundDeps {
  log: vscode.LogOutputChannel;
  models: { get(): Promise<ArcModel> };
  runner: AskRunner;
  cacheDir: string;
  watcher: () => WorkspaceWatcher | undefined;
  refreshCache: () => void;
}

export class WorkspaceBackground implements BackgroundWork, vscode.Disposable {
  private readonly compressor: BackgroundCompressor;
  private ui: { report: (s: BackgroundState) => void; close: () => void } | null = null;

  constructor(private readonly d: BackgroundDeps) {
    this.compressor = new BackgroundCompressor(
      async (signal, onProgress) => {
        const settings = readSettings();
        const collected = await workspaceSources(settings, d.log);
        const model = await d.models.get();
        const snapshot = await compressSources(model, collected.sources, `Workspace: ${collected.label}`, {
          cacheDir: d.cacheDir,
          cacheMaxBytes: settings.cacheSizeMB * 1024 * 1024,
          include: settings.include,
          exclude: settings.exclude,
          signal,
          onProgress,
          log: (line) => d.log.info(line),
        });
        d.runner.setCompression(snapshot);
        const w = d.watcher();
        if (w) {
          w.reset();
          w.keepCompressed = true;
        }
        const c = snapshot.compress;
        if (c) d.log.info(`background compression done: ${c.chunks} chunks, ${c.encoded} encoded, ${c.cacheHits} from cache`);
      },
      (s) => this.onState(s),
    );
  }

  afterWorkspaceQuestion(): void {
    const w = this.d.watcher();
    if (!vscode.workspace.isTrusted || (w?.keepCompressed && w.changedCount === 0) || this.compressor.running) return;
    this.compressor.start();
  }

  pause(): Promise<void> {
    return this.compressor.pause();
  }

  resume(): void {
    this.compressor.resume();
  }

  dispose(): void {
    void this.compressor.cancel();
    this.ui?.close();
  }

  private onState(s: BackgroundState): void {
    if (s.kind === 'running' && !this.ui) this.openUi();
    this.ui?.report(s);
    if (s.kind === 'done' || s.kind === 'cancelled' || s.kind === 'failed') {
      this.ui?.close();
      this.ui = null;
      this.d.refreshCache();
      if (s.kind === 'failed') this.d.log.warn(`background compression failed: ${s.message}`);
      if (s.kind === 'cancelled') this.d.log.info('background compression cancelled; what was compressed stays cached');
    }
  }

  private openUi(): void {
    let report: (s: BackgroundState) => void = () => {};
    let close: () => void = () => {};
    const closed = new Promise<void>((resolve) => (close = resolve));
    this.ui = { report: (s) => report(s), close: () => close() };
    void vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'ARC: compressing the rest of the workspace (questions go first)', cancellable: true },
      async (progress, token) => {
        token.onCancellationRequested(() => void this.compressor.cancel());
        let last = 0;
        report = (s) => {
          if (s.kind === 'paused') progress.report({ message: 'paused for a question' });
          else if (s.kind === 'running') {
            const pct = s.done !== undefined && s.total ? (100 * s.done) / s.total : undefined;
            progress.report({ message: s.message, increment: pct !== undefined && pct > last ? pct - last : undefined });
            if (pct !== undefined) last = Math.max(last, pct);
          }
        };
        await closed;
      },
    );
  }
}
