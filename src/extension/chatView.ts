// The sidebar chat: one webview view. History lives in the webview's own state (getState /
// setState); the host queues what a page has not received yet and keeps the messages of runs
// still in progress, to replay them when a hidden view is shown again (its webview is
// recreated, not retained). The queueing rules live in ChatOutbox.
import * as vscode from 'vscode';
import type { HostMessage, ModelStatus, SourceKind, WebviewCommand, WebviewMessage } from '../protocol';
import { ChatOutbox } from './chatOutbox';
import type { ArcController } from './controller';
import { onValidMessage, post, webviewHtml, webviewOptions } from './webviewHost';
import { readSettings } from './settings';

export class ChatViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  static readonly viewId = 'arcContext.chat';
  private view: vscode.WebviewView | undefined;
  private readonly outbox = new ChatOutbox((m) => post(this.view?.webview, m));
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly controller: ArcController,
    private readonly log: vscode.LogOutputChannel,
    private readonly status: () => ModelStatus,
    private readonly runCommand: (command: WebviewCommand) => void,
  ) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    this.outbox.detach();
    view.webview.options = webviewOptions(this.extensionUri);
    view.webview.html = webviewHtml(view.webview, this.extensionUri, 'chat');
    const subs = [
      onValidMessage(view.webview, this.log, (m) => {
        // A 'ready' from a view that has since been replaced must not open the new one.
        if (this.view === view) return this.onMessage(m);
      }),
      // Hiding the view throws its page away; showing it loads a new page, which says 'ready'.
      view.onDidChangeVisibility(() => {
        if (this.view === view && !view.visible) this.outbox.detach();
      }),
      view.onDidDispose(() => {
        if (this.view === view) {
          this.view = undefined;
          this.outbox.detach();
        }
        for (const s of subs) s.dispose();
      }),
    ];
  }

  /** Sink for runs shown in the chat. */
  readonly sink = (m: HostMessage): void => {
    this.send(m);
  };

  postStatus(status: ModelStatus): void {
    this.send({ type: 'status', status });
  }

  /** Reveal the chat and hand it a question (and source) from a command. */
  async focus(source?: SourceKind, question?: string): Promise<void> {
    await vscode.commands.executeCommand(`${ChatViewProvider.viewId}.focus`);
    const m: HostMessage = { type: 'focusQuestion' };
    if (source) m.source = source;
    if (question) m.question = question;
    this.send(m);
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }

  /** Messages wait until the webview says it is ready, so none is lost while it loads. */
  private send(m: HostMessage): void {
    this.outbox.send(m);
  }

  private async onMessage(m: WebviewMessage): Promise<void> {
    switch (m.type) {
      case 'ready': {
        post(this.view?.webview, { type: 'init', view: 'chat', defaultMode: readSettings().answerMode, status: this.status() });
        this.outbox.attach();
        return;
      }
      case 'ask':
        if (m.question.trim() === '') {
          this.send({ type: 'notice', level: 'error', message: 'Type a question first.' });
          return;
        }
        await this.controller.askAbout(m.source, m.question.trim(), this.sink, m.mode ? { mode: m.mode } : {});
        return;
      case 'compare':
        if (m.question.trim() === '') return;
        await this.controller.compare(m.source, m.question.trim(), this.sink, m.runId, m.mode);
        return;
      case 'stop':
        this.controller.runner.stop(m.runId);
        return;
      case 'openCitation':
        await this.controller.openCitation(m.citation);
        return;
      case 'command':
        this.runCommand(m.command);
        return;
    }
  }
}
