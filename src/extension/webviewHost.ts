// What the chat view and the answer panel share: webview options limited to our own folders,
// the HTML, and validated message intake.
import * as vscode from 'vscode';
import { parseWebviewMessage, type HostMessage, type WebviewMessage } from '../protocol';
import { renderWebviewHtml, type WebviewKind } from './webviewHtml';

export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions {
  return {
    enableScripts: true,
    // The bundle and the stylesheet are all a webview may load: nothing from the workspace.
    localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist'), vscode.Uri.joinPath(extensionUri, 'media')],
  };
}

export function webviewHtml(webview: vscode.Webview, extensionUri: vscode.Uri, kind: WebviewKind): string {
  return renderWebviewHtml({
    kind,
    cspSource: webview.cspSource,
    scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'webview.js')).toString(),
    styleUri: webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'media', 'arc.css')).toString(),
  });
}

/** Subscribe to a webview's messages; anything that fails validation is logged and dropped. */
export function onValidMessage(
  webview: vscode.Webview,
  log: vscode.LogOutputChannel,
  handler: (m: WebviewMessage) => void | Promise<void>,
): vscode.Disposable {
  return webview.onDidReceiveMessage(async (raw: unknown) => {
    const parsed = parseWebviewMessage(raw);
    if (!parsed.ok) {
      log.warn(`ignored a malformed message from the webview: ${parsed.error}`);
      return;
    }
    try {
      await handler(parsed.message);
    } catch (e) {
      log.error(`handling "${parsed.message.type}" failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    }
  });
}

export function post(webview: vscode.Webview | undefined, message: HostMessage): void {
  // postMessage resolves false when the webview is gone or hidden; the callers keep a replay
  // buffer for what matters, so a dropped message is not an error.
  void webview?.postMessage(message).then(undefined, () => undefined);
}
