// The one HTML document both webviews (sidebar chat and compression panel) load. No `vscode`
// import: the caller passes the already-converted webview URIs, so the CSP is unit tested.
import { randomBytes } from 'node:crypto';

export type WebviewKind = 'chat' | 'panel';

export interface WebviewHtmlOptions {
  kind: WebviewKind;
  /** `webview.cspSource`. */
  cspSource: string;
  /** `webview.asWebviewUri(dist/webview.js)` as a string. */
  scriptUri: string;
  /** `webview.asWebviewUri(media/arc.css)` as a string. */
  styleUri: string;
  /** Fresh per load; tests pass a fixed one. */
  nonce?: string;
}

/** 128 random bits, base64 without padding: unguessable by content the webview renders. */
export function makeNonce(): string {
  return randomBytes(16).toString('base64').replace(/=+$/, '');
}

export function contentSecurityPolicy(cspSource: string, nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    // The toolkit (FAST) probes :focus-visible support with a <style> element that it tags
    // with the page's csp-nonce meta value; without the nonce here that probe is a CSP error.
    `style-src ${cspSource} 'nonce-${nonce}'`,
    `font-src ${cspSource}`,
    `img-src ${cspSource} data:`,
  ].join('; ');
}

function escapeAttr(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * The CSP meta tag comes first in <head>, before anything that could load. The body is empty:
 * webview/main.ts builds the DOM for `data-view` so the markup lives in one place.
 */
export function renderWebviewHtml(o: WebviewHtmlOptions): string {
  const nonce = o.nonce ?? makeNonce();
  const title = o.kind === 'chat' ? 'ARC Chat' : 'ARC Answer';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta http-equiv="Content-Security-Policy" content="${escapeAttr(contentSecurityPolicy(o.cspSource, nonce))}">
<meta property="csp-nonce" content="${nonce}">
<meta charset="UTF-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${escapeAttr(o.styleUri)}">
<title>${title}</title>
</head>
<body data-view="${o.kind}">
<noscript>ARC Context needs JavaScript in its webview.</noscript>
<script nonce="${nonce}" src="${escapeAttr(o.scriptUri)}"></script>
</body>
</html>
`;
}
