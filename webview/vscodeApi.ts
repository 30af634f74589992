// Typed access to the webview API VS Code injects. Messages out are the protocol's
// WebviewMessage union, so the compiler checks them against what the host validates.
import type { WebviewMessage } from '../src/protocol';

interface VsCodeApi<S> {
  postMessage(message: WebviewMessage): void;
  getState(): S | undefined;
  setState(state: S): void;
}

declare function acquireVsCodeApi<S>(): VsCodeApi<S>;

let api: VsCodeApi<unknown> | undefined;

/** acquireVsCodeApi may only be called once per page. */
export function vscodeApi<S>(): VsCodeApi<S> {
  api ??= acquireVsCodeApi<unknown>();
  return api as VsCodeApi<S>;
}
