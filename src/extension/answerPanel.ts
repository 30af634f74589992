// The editor-area answer panel of "ARC: Compress and Ask…" and "ARC: Show Compression Stats":
// the streamed answer plus the compression picture. One panel, reused; it keeps the messages of
// what it shows so that a hidden panel (whose webview is recreated) is redrawn exactly.
import * as vscode from 'vscode';
import type { CompressionSnapshot, HostMessage, ModelStatus, WebviewCommand, WebviewMessage } from '../protocol';
import type { ArcController } from './controller';
import { readSettings } from './settings';
import { onValidMessage, post, webviewHtml, webviewOptions } from './webviewHost';

/** An answer is bounded by maxNewTokens, but keep the transcript bounded regardless. */
const MAX_TRANSCRIPT = 20_000;

export class AnswerPanel implements vscode.Disposable {
  static readonly viewType = 'arcContext.answer';
  private panel: vscode.WebviewPanel | undefined;
  private ready = false;
  /** Restored by VS Code after a restart and not reused since: the page shows its saved state. */
  private restored = false;
  private transcript: HostMessage[] = [];

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly controller: ArcController,
    private readonly log: vscode.LogOutputChannel,
    private readonly status: () => ModelStatus,
    private readonly runCommand: (command: WebviewCommand) => void,
  ) {}

  /** Start showing new content: the panel is created or revealed and its transcript reset. */
  open(title: string): void {
    this.transcript = [];
    this.restored = false;
    if (this.panel) {
      this.panel.title = title;
      this.panel.reveal(vscode.ViewColumn.Beside, false);
      // A fresh document is simpler than clearing the old one in place.
      this.ready = false;
      this.panel.webview.html = webviewHtml(this.panel.webview, this.extensionUri, 'panel');
      return;
    }
    const panel = vscode.window.createWebviewPanel(
      AnswerPanel.viewType,
      title,
      { viewColumn: vscode.ViewColumn.Beside, preserveFocus: false },
      { ...webviewOptions(this.extensionUri), retainContextWhenHidden: false },
    );
    this.adopt(panel);
  }

  /**
   * The panel VS Code brought back after a restart (registered as the serializer of
   * `viewType`): it has no run behind it, so the page shows what it saved (a streaming answer as
   * stopped). A second restored panel is closed: this panel is a single reused one.
   */
  restore(panel: vscode.WebviewPanel): void {
    if (this.panel) {
      panel.dispose();
      return;
    }
    this.transcript = [];
    this.restored = true;
    panel.webview.options = webviewOptions(this.extensionUri);
    this.adopt(panel);
  }

  private adopt(panel: vscode.WebviewPanel): void {
    panel.iconPath = vscode.Uri.joinPath(this.extensionUri, 'media', 'arc.svg');
    this.panel = panel;
    this.ready = false;
    panel.webview.html = webviewHtml(panel.webview, this.extensionUri, 'panel');
    const msgSub = onValidMessage(panel.webview, this.log, (m) => this.onMessage(m));
    // A hidden webview is destroyed; when shown again it loads afresh and asks for a replay.
    const viewSub = panel.onDidChangeViewState(() => {
      if (!panel.visible) this.ready = false;
    });
    panel.onDidDispose(() => {
      msgSub.dispose();
      viewSub.dispose();
      if (this.panel === panel) {
        this.panel = undefined;
        // Closing the panel stops what it was showing: nobody is watching the answer.
        for (const m of this.transcript) if (m.type === 'runStarted') this.controller.runner.stop(m.run.runId);
      }
    });
  }

  readonly sink = (m: HostMessage): void => {
    if (this.transcript.length < MAX_TRANSCRIPT) this.transcript.push(m);
    if (this.panel && this.ready) post(this.panel.webview, m);
  };

  showSnapshot(snapshot: CompressionSnapshot): void {
    this.open('ARC: Compression Stats');
    this.sink({ type: 'showCompression', snapshot });
  }

  dispose(): void {
    this.panel?.dispose();
  }

  private onMessage(m: WebviewMessage): void {
    switch (m.type) {
      case 'ready':
        this.ready = true;
        post(this.panel?.webview, {
          type: 'init',
          view: 'panel',
          defaultMode: readSettings().answerMode,
          status: this.status(),
          restore: this.restored && this.transcript.length === 0,
        });
        for (const t of this.transcript) post(this.panel?.webview, t);
        return;
      case 'stop':
        this.controller.runner.stop(m.runId);
        return;
      case 'openCitation':
        void this.controller.openCitation(m.citation);
        return;
      case 'command':
        this.runCommand(m.command);
        return;
      case 'ask':
      case 'compare':
        // The panel has no question box; these come only from the chat view.
        this.log.warn(`answer panel: ignored "${m.type}"`);
        return;
    }
  }
}
