// Entry point: wires the pieces together and pushes every disposable into the context. The
// behaviour lives in the modules it imports; activation only happens on our commands and view.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { ask } from '../core/ask';
import { TreeWatch } from '../core/context/treeWatch';
import { loadModel } from '../core/model';
import type { WebviewCommand } from '../protocol';
import { AnswerPanel } from './answerPanel';
import { WorkspaceBackground } from './backgroundWork';
import { registerChatParticipant } from './chatParticipant';
import { ChatViewProvider } from './chatView';
import { makeRecompress, registerCommands } from './commands';
import { cacheUsage } from './compressWorkspace';
import { ArcController } from './controller';
import { DecoderBackendGate, registerDecoderCommands } from './decoderBackend';
import { registerChatModelProvider } from './lmProvider';
import { ModelManager } from './modelManager';
import { AskRunner } from './runner';
import { MODEL_SETTINGS, readSettings } from './settings';
import { ArcStatusBar } from './statusBar';
import { WorkspaceWatcher } from './workspaceWatcher';

// ONNX Runtime writes telemetry on every session creation unless told not to; a local-first
// tool must not phone home. Set before the core first loads onnxruntime-node.
process.env.ORT_DISABLE_TELEMETRY = '1';

let models: ModelManager | undefined;
let folderWatch: TreeWatch | undefined;

const COMMAND_IDS: Record<WebviewCommand, string> = {
  selectModel: 'arcContext.selectModel',
  showStats: 'arcContext.showStats',
  compressWorkspace: 'arcContext.compressWorkspace',
  clearCache: 'arcContext.clearCache',
  openLog: 'arcContext.openLog',
};

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('ARC Context', { log: true });
  const cacheDir = path.join(context.globalStorageUri.fsPath, 'vector-cache');
  models = new ModelManager(new DecoderBackendGate(context, log).wrap(loadModel), context.extensionPath, log);
  const modelManager = models;
  // One watch for the extension host's life: questions on folders nothing changed in skip the scan.
  const treeWatch = new TreeWatch({ log: (line) => log.info(line) });
  folderWatch = treeWatch;
  const runner = new AskRunner({
    ask,
    getModel: () => modelManager.get(),
    cacheDir: () => cacheDir,
    watch: () => (readSettings().watchFiles ? treeWatch : undefined),
    cacheMaxBytes: () => readSettings().cacheSizeMB * 1024 * 1024,
    log,
  });
  const controller = new ArcController(runner, log);
  const statusBar = new ArcStatusBar();
  const runCommand = (c: WebviewCommand) => {
    if (c === 'openLog') log.show(true);
    else void vscode.commands.executeCommand(COMMAND_IDS[c]);
  };
  const chat = new ChatViewProvider(context.extensionUri, controller, log, () => modelManager.status, runCommand);
  const panel = new AnswerPanel(context.extensionUri, controller, log, () => modelManager.status, runCommand);
  context.subscriptions.push(
    vscode.window.registerWebviewPanelSerializer(AnswerPanel.viewType, {
      deserializeWebviewPanel: async (restoredPanel) => panel.restore(restoredPanel),
    }),
  );

  let watcher: WorkspaceWatcher | undefined;
  const refreshCache = () => {
    void cacheUsage(cacheDir).then(({ entries, bytes }) => {
      const changed = watcher?.changedCount ?? 0;
      const size = bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : `${Math.round(bytes / 1024)} KB`;
      const text = entries === 0 ? 'cache empty' : `${entries} cached (${size})${changed > 0 ? `, ${changed} changed` : ''}`;
      statusBar.setCache(text);
      chat.postStatus({ ...modelManager.status, cache: text });
    });
  };
  const base = { context, log, controller, models: modelManager, cacheDir, refreshCache };
  watcher = new WorkspaceWatcher(makeRecompress(base));
  // After a workspace question (which encodes only what its window needs) the rest of the tree
  // compresses in the background; questions pause it.
  const background = new WorkspaceBackground({ log, models: modelManager, runner, cacheDir, watcher: () => watcher, refreshCache });
  controller.background = background;

  context.subscriptions.push(
    log,
    modelManager,
    runner,
    statusBar,
    chat,
    panel,
    watcher,
    background,
    vscode.window.registerWebviewViewProvider(ChatViewProvider.viewId, chat),
    ...registerCommands({ ...base, chat, panel, watcher }),
    // VS Code's own Chat view (where the host has it): `@arc` and the ARC model in the model picker.
    ...registerChatParticipant({ ...base, extensionUri: context.extensionUri, watcher, commandIds: COMMAND_IDS }),
    ...registerChatModelProvider({ extensionPath: context.extensionPath, models: modelManager, runner, log }),
    // A question fills the cache (what it compressed): the status bar shows it once the run is done.
    runner.onCompression((s) => {
      if (s.stats) refreshCache();
    }),
    // A new API key takes effect on the next load, as the decoder settings do.
    ...registerDecoderCommands(context, () => void runner.exclusive(() => modelManager.unload('decoder API key changed')).catch(() => undefined)),
    modelManager.onDidChangeStatus((s) => {
      statusBar.setStatus(s);
      chat.postStatus(s);
    }),
    watcher.onDidChange(() => refreshCache()),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (MODEL_SETTINGS.some((k) => e.affectsConfiguration(k)) && modelManager.loaded) {
        // Reload between runs, not under one; the next question (or this reload) loads anew.
        void runner.exclusive(async () => {
          await modelManager.unload('model settings changed');
          await modelManager.get();
        }).catch(() => undefined);
      }
    }),
    vscode.workspace.onDidGrantWorkspaceTrust(() => log.info('workspace trusted: background compression enabled')),
  );
  log.info(`ARC Context activated (workspace ${vscode.workspace.isTrusted ? 'trusted' : 'restricted'}; cache ${cacheDir})`);
  refreshCache();
}

export async function deactivate(): Promise<void> {
  // context.subscriptions dispose synchronously; wait here for the ONNX sessions to close.
  await models?.unload('extension deactivated');
  models = undefined;
  await folderWatch?.dispose();
  folderWatch = undefined;
}
