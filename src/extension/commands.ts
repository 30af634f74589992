// The command handlers. Each is short and delegates: sources.ts lists files, the controller
// runs questions, the panel and the chat view show them.
import { rm } from 'node:fs/promises';
import * as vscode from 'vscode';
import { MANIFEST_FILE } from '../core/manifest';
import type { SourceKind } from '../protocol';
import type { AnswerPanel } from './answerPanel';
import type { ChatViewProvider } from './chatView';
import { compressSources } from './compressWorkspace';
import type { ArcController } from './controller';
import type { ModelManager } from './modelManager';
import { errorCodeOf, errorText } from './runner';
import { readSettings } from './settings';
import { changedFileSources, uriSources, workspaceSources, sourcesFor, type CollectedSources } from './sources';
import type { WorkspaceWatcher } from './workspaceWatcher';

export interface CommandDeps {
  context: vscode.ExtensionContext;
  log: vscode.LogOutputChannel;
  controller: ArcController;
  models: ModelManager;
  chat: ChatViewProvider;
  panel: AnswerPanel;
  watcher: WorkspaceWatcher;
  cacheDir: string;
  refreshCache: () => void;
}

const SOURCE_PICKS: { label: string; description: string; source: SourceKind | 'pick' }[] = [
  { label: 'Open Files', description: 'every file open in an editor tab', source: 'open' },
  { label: 'Selection', description: 'the selected lines of the active editor', source: 'selection' },
  { label: 'Workspace', description: 'all files, minus files.exclude / search.exclude', source: 'workspace' },
  { label: 'Pick Files…', description: 'choose files or folders', source: 'pick' },
];

async function askQuestion(prompt: string): Promise<string | undefined> {
  const q = await vscode.window.showInputBox({
    title: 'ARC Context',
    prompt,
    placeHolder: 'e.g. Which file defines `loadModel`?',
    ignoreFocusOut: true,
    validateInput: (v) => (v.trim() === '' ? 'Type a question.' : undefined),
  });
  return q?.trim() || undefined;
}

/** Problems a user can fix (nothing open, nothing selected) are warnings, not errors. */
function reportSourceProblem(e: unknown, log: vscode.LogOutputChannel): void {
  const code = errorCodeOf(e);
  if (code === 'no-sources') void vscode.window.showWarningMessage(`ARC: ${errorText(e)}`);
  else {
    log.error(`collecting sources failed: ${errorText(e)}`);
    void vscode.window.showErrorMessage(`ARC: ${errorText(e)}`);
  }
}

export function registerCommands(d: CommandDeps): vscode.Disposable[] {
  const { log, controller, models, chat, panel } = d;

  /** "Ask About …": question in an input box, answer streamed in the chat view. */
  const askInChat = (kind: SourceKind, prompt: string) => async () => {
    const settings = readSettings();
    let collected: CollectedSources;
    try {
      // Resolve the sources first: "nothing selected" should not wait for a typed question.
      collected = await sourcesFor(kind, settings, log);
    } catch (e) {
      reportSourceProblem(e, log);
      return;
    }
    const question = await askQuestion(`${prompt} (${collected.label})`);
    if (!question) return;
    await chat.focus(kind);
    await controller.ask(collected, question, chat.sink);
  };

  const compressAndAsk = async (uri?: vscode.Uri, uris?: vscode.Uri[]) => {
    const settings = readSettings();
    let collected: CollectedSources | undefined;
    try {
      if (uri instanceof vscode.Uri) {
        // From the explorer (all selected items) or an editor's context menu.
        collected = await uriSources(uris && uris.length > 0 ? uris : [uri], settings, log);
      } else {
        const pick = await vscode.window.showQuickPick(SOURCE_PICKS, {
          title: 'ARC: Compress and Ask… (1/2) what to read',
          placeHolder: 'Choose the context',
        });
        if (!pick) return;
        if (pick.source === 'pick') {
          const chosen = await vscode.window.showOpenDialog({
            canSelectFiles: true,
            canSelectFolders: true,
            canSelectMany: true,
            openLabel: 'Use as Context',
            defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
          });
          if (!chosen || chosen.length === 0) return;
          collected = await uriSources(chosen, settings, log);
        } else {
          collected = await sourcesFor(pick.source, settings, log);
        }
      }
    } catch (e) {
      reportSourceProblem(e, log);
      return;
    }
    const question = await askQuestion(`ARC: Compress and Ask… (2/2) question about ${collected.label}`);
    if (!question) return;
    panel.open(`ARC: ${question.length > 40 ? question.slice(0, 39) + '…' : question}`);
    const outcome = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'ARC', cancellable: true },
      (progress, token) => {
        const abort = new AbortController();
        token.onCancellationRequested(() => abort.abort());
        const sink = panel.sink;
        return controller.ask(collected, question, (m) => {
          if (m.type === 'runEvent' && m.event.type === 'progress') progress.report({ message: m.event.message });
          else if (m.type === 'runEvent' && m.event.type === 'token') progress.report({ message: 'answering…' });
          sink(m);
        }, { signal: abort.signal });
      },
    );
    if (outcome.outcome === 'cancelled') void vscode.window.showInformationMessage('ARC: cancelled. The partial answer stays in the panel.');
    else if (outcome.outcome === 'error' && outcome.code !== 'model-missing' && outcome.code !== 'model-corrupt') {
      void vscode.window.showErrorMessage(`ARC: ${outcome.message}`);
    }
    d.refreshCache();
  };

  const compressWorkspace = async () => {
    if (!vscode.workspace.isTrusted) {
      void vscode.window.showWarningMessage('ARC: the workspace is not trusted, so it is not compressed in the background. Ask a question to compress what it needs.');
      return;
    }
    const settings = readSettings();
    await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'ARC: compressing workspace', cancellable: true },
      async (progress, token) => {
        const abort = new AbortController();
        token.onCancellationRequested(() => abort.abort());
        try {
          const collected = await workspaceSources(settings, log, token);
          const model = await models.get();
          const started = Date.now();
          let last = 0;
          const snapshot = await controller.runner.exclusive(() =>
            compressSources(model, collected.sources, `Workspace: ${collected.label}`, {
              cacheDir: d.cacheDir,
              cacheMaxBytes: settings.cacheSizeMB * 1024 * 1024,
              include: settings.include,
              exclude: settings.exclude,
              signal: abort.signal,
              log: (line) => log.info(line),
              onProgress: (message, done, total) => {
                const pct = done !== undefined && total ? (100 * done) / total : undefined;
                // The total is an estimate until every file is chunked: the share may dip, the bar does not.
                progress.report({ message, increment: pct !== undefined && pct > last ? pct - last : undefined });
                if (pct !== undefined) last = Math.max(last, pct);
              },
            }),
          );
          controller.runner.setCompression(snapshot);
          d.watcher.reset();
          d.watcher.keepCompressed = true;
          const c = snapshot.compress!;
          log.info(`compressed workspace: ${c.chunks} chunks, ${c.encoded} encoded, ${c.cacheHits} from cache, ${c.skippedFiles} files skipped, ${((Date.now() - started) / 1000).toFixed(1)} s`);
          void vscode.window.showInformationMessage(
            `ARC: workspace compressed: ${c.chunks} chunks (${c.encoded} encoded, ${c.cacheHits} already cached).`,
            'Show Stats',
          ).then((p) => p && vscode.commands.executeCommand('arcContext.showStats'));
        } catch (e) {
          const code = abort.signal.aborted ? 'cancelled' : errorCodeOf(e);
          if (code === 'cancelled') void vscode.window.showInformationMessage('ARC: workspace compression cancelled. What was compressed stays cached.');
          else if (code === 'no-sources') void vscode.window.showWarningMessage(`ARC: ${errorText(e)}`);
          else if (code !== 'model-missing' && code !== 'model-corrupt') {
            log.error(`compressing the workspace failed: ${errorText(e)}`);
            void vscode.window.showErrorMessage(`ARC: compressing the workspace failed: ${errorText(e)}`);
          }
        } finally {
          d.refreshCache();
        }
      },
    );
  };

  const selectModel = async () => {
    const bundled = vscode.Uri.joinPath(d.context.extensionUri, 'models', 'arc-tiny-code');
    const current = readSettings().modelPath;
    const items: (vscode.QuickPickItem & { value: string | null })[] = [
      { label: 'arc-tiny-code', description: 'bundled default', detail: bundled.fsPath, value: '' },
      { label: 'Browse…', description: 'a folder with arc-model.json', value: null },
    ];
    if (current) items.splice(1, 0, { label: 'Current', description: current, value: current });
    const pick = await vscode.window.showQuickPick(items, { title: 'ARC: Select Model…' });
    if (!pick) return;
    let value = pick.value;
    if (value === null) {
      const dir = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: 'Use This Model' });
      if (!dir?.[0]) return;
      try {
        await vscode.workspace.fs.stat(vscode.Uri.joinPath(dir[0], MANIFEST_FILE));
      } catch {
        void vscode.window.showErrorMessage(`ARC: ${dir[0].fsPath} has no ${MANIFEST_FILE}; it is not an arc-model/1 package.`);
        return;
      }
      value = dir[0].fsPath;
    }
    // Machine-scoped: written to user settings, never to the workspace.
    await vscode.workspace.getConfiguration('arcContext').update('modelPath', value, vscode.ConfigurationTarget.Global);
    await models.unload('model selection changed');
    try {
      await controller.runner.exclusive(() => models.get());
    } catch {
      // ModelManager already showed the error with a way out.
    }
  };

  const showStats = () => {
    const snapshot = controller.runner.lastCompression;
    if (!snapshot) {
      void vscode.window.showInformationMessage('ARC: nothing compressed yet in this window. Ask a question or run "ARC: Compress Workspace".', 'Compress Workspace').then(
        (p) => p && vscode.commands.executeCommand('arcContext.compressWorkspace'),
      );
      return;
    }
    panel.showSnapshot(snapshot);
  };

  const clearCache = async () => {
    try {
      await controller.runner.exclusive(() => rm(d.cacheDir, { recursive: true, force: true }));
      log.info(`cleared the compressed cache at ${d.cacheDir}`);
      void vscode.window.showInformationMessage('ARC: compressed cache cleared. The next question compresses again.');
    } catch (e) {
      void vscode.window.showErrorMessage(`ARC: could not clear the cache at ${d.cacheDir}: ${errorText(e)}`);
    } finally {
      d.refreshCache();
    }
  };

  const reg = vscode.commands.registerCommand;
  return [
    reg('arcContext.compressAndAsk', compressAndAsk),
    reg('arcContext.askWorkspace', askInChat('workspace', 'Ask about the workspace')),
    reg('arcContext.askOpenFiles', askInChat('open', 'Ask about the open files')),
    reg('arcContext.askSelection', askInChat('selection', 'Ask about the selection')),
    reg('arcContext.compressWorkspace', compressWorkspace),
    reg('arcContext.selectModel', selectModel),
    reg('arcContext.showStats', showStats),
    reg('arcContext.clearCache', clearCache),
    reg('arcContext.focusChat', () => chat.focus()),
  ];
}

/** Background recompression of files changed after "Compress Workspace" (see WorkspaceWatcher). */
export function makeRecompress(d: Omit<CommandDeps, 'watcher' | 'chat' | 'panel'>): (uris: vscode.Uri[]) => Promise<void> {
  return async (uris) => {
    const settings = readSettings();
    const sources = await changedFileSources(uris, settings, d.log);
    if (sources.length === 0) return;
    try {
      const model = await d.models.get();
      await d.controller.runner.exclusive(() =>
        compressSources(model, sources, 'changed files', {
          cacheDir: d.cacheDir,
          cacheMaxBytes: settings.cacheSizeMB * 1024 * 1024,
          log: (line) => d.log.info(line),
        }),
      );
      d.log.info(`recompressed ${sources.length} changed file(s)`);
    } catch (e) {
      d.log.warn(`background recompression of ${sources.length} file(s) failed: ${errorText(e)}`);
      throw e;
    } finally {
      d.refreshCache();
    }
  };
}
