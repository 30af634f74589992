// Owns the loaded model: lazy load on first use (with progress in the status bar), reload when the
// model settings change, dispose on deactivate. One load at a time; callers share its promise.
import * as os from 'node:os';
import * as vscode from 'vscode';
import type { ArcModel, LoadOptions } from '../core/api';
import { ArcError } from '../core/errors';
import type { ModelStatus } from '../protocol';
import { chooseModelDir } from './config';
import { ConsentDeclinedError } from './decoderBackend';
import { errorCodeOf, errorText } from './runner';
import { readSettings } from './settings';

export type LoadModelFn = (dir: string, opts: LoadOptions) => Promise<ArcModel>;

const SELECT_MODEL = 'Select Model…';

export class ModelManager implements vscode.Disposable {
  private model: ArcModel | undefined;
  private loading: Promise<ArcModel> | undefined;
  /** Bumped on every invalidation so a load that finishes late is not kept. */
  private generation = 0;
  private current: ModelStatus = { state: 'not-loaded' };
  private readonly changed = new vscode.EventEmitter<ModelStatus>();
  readonly onDidChangeStatus = this.changed.event;

  constructor(
    private readonly load: LoadModelFn,
    private readonly extensionPath: string,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  get status(): ModelStatus {
    return this.current;
  }

  get loaded(): ArcModel | undefined {
    return this.model;
  }

  /** The loaded model, loading it first if needed. Throws ArcError on a missing/corrupt model. */
  get(): Promise<ArcModel> {
    if (this.model) return Promise.resolve(this.model);
    if (!this.loading) {
      const gen = this.generation;
      this.loading = this.loadWithProgress().then(
        async (m) => {
          if (gen !== this.generation) {
            // Settings changed while loading: this model is already out of date.
            await m.dispose().catch(() => undefined);
            this.loading = undefined;
            return this.get();
          }
          this.model = m;
          this.loading = undefined;
          this.setStatus({ state: 'ready', model: m.manifest.name, provider: m.provider });
          return m;
        },
        (e: unknown) => {
          this.loading = undefined;
          if (e instanceof ConsentDeclinedError) {
            // The user's own choice, not a broken model: no error status or notification.
            this.setStatus({ state: 'not-loaded' });
            this.log.info(`decoder server not allowed: ${e.message}`);
          } else this.reportLoadError(e);
          throw e;
        },
      );
    }
    return this.loading;
  }

  /** Drop the loaded model (settings changed, or "Select Model…"); the next use loads again. */
  async unload(reason: string): Promise<void> {
    this.generation += 1;
    const old = this.model;
    this.model = undefined;
    this.setStatus({ state: 'not-loaded' });
    if (old) {
      this.log.info(`unloading model ${old.manifest.name}: ${reason}`);
      await old.dispose().catch((e: unknown) => this.log.warn(`disposing the model failed: ${errorText(e)}`));
    }
  }

  dispose(): void {
    void this.unload('extension deactivated');
    this.changed.dispose();
  }

  private setStatus(s: ModelStatus): void {
    this.current = s;
    this.changed.fire(s);
  }

  private async loadWithProgress(): Promise<ArcModel> {
    const settings = readSettings();
    const choice = chooseModelDir({
      userValue: settings.modelPath,
      extensionPath: this.extensionPath,
      trusted: vscode.workspace.isTrusted,
      workspaceFolders: (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath),
      homeDir: os.homedir(),
    });
    if (!choice.ok) throw new ArcError('model-missing', choice.reason);
    this.setStatus({ state: 'loading' });
    const skipped: string[] = [];
    const started = Date.now();
    // Window progress (the status bar), not a notification: a finished progress notification
    // stays on screen for a while in current VS Code, so "loading model…" outlived the answer.
    const model = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Window, title: 'ARC: loading model' },
      () =>
        this.load(choice.dir, {
          provider: settings.provider,
          threads: settings.threads > 0 ? settings.threads : undefined,
          log: (line) => skipped.push(line),
        }),
    );
    // One informational line, including any provider fallback, rather than one per attempt.
    const fallback = skipped.length > 0 ? ` (${skipped.join('; ')})` : '';
    this.log.info(
      `model ${model.manifest.name} loaded from ${choice.dir} on ${model.provider} in ${Date.now() - started} ms${fallback}`,
    );
    return model;
  }

  private reportLoadError(e: unknown): void {
    const code = errorCodeOf(e);
    const message = errorText(e);
    this.setStatus({ state: 'error', message });
    this.log.error(`loading the model failed (${code}): ${message}`);
    if (code === 'model-missing' || code === 'model-corrupt' || code === 'provider-unavailable') {
      void vscode.window.showErrorMessage(`ARC: ${message}`, SELECT_MODEL, 'Open Log').then((pick) => {
        if (pick === SELECT_MODEL) void vscode.commands.executeCommand('arcContext.selectModel');
        else if (pick === 'Open Log') this.log.show(true);
      });
    } else {
      void vscode.window.showErrorMessage(`ARC: could not load the model: ${message}`, 'Open Log').then((pick) => {
        if (pick) this.log.show(true);
      });
    }
  }
}
