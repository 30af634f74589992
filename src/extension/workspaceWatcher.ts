// Tracks files that changed since the workspace was last compressed. Cache entries are keyed by
// chunk content, so a stale vector is never served; what a change costs is a re-encode at the
// next question. After a "Compress Workspace" (in a trusted workspace) the changed files are
// recompressed in the background, a few seconds after the edits settle.
import * as vscode from 'vscode';

const IGNORED = /[\\/](\.git|node_modules)[\\/]/;
const SETTLE_MS = 3000;

export class WorkspaceWatcher implements vscode.Disposable {
  private readonly watcher = vscode.workspace.createFileSystemWatcher('**/*');
  private readonly changed = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly emitter = new vscode.EventEmitter<number>();
  /** Fires with the number of files changed since the last compression. */
  readonly onDidChange = this.emitter.event;
  /** Set once the user compressed the workspace: from then on it is kept compressed. */
  keepCompressed = false;

  constructor(private readonly recompress: (uris: vscode.Uri[]) => Promise<void>) {
    const note = (uri: vscode.Uri) => this.note(uri);
    this.disposables.push(
      this.watcher,
      this.watcher.onDidChange(note),
      this.watcher.onDidCreate(note),
      this.watcher.onDidDelete((uri) => {
        this.changed.delete(uri.toString());
        this.emitter.fire(this.changed.size);
      }),
      this.emitter,
    );
  }

  get changedCount(): number {
    return this.changed.size;
  }

  /** The whole workspace was just compressed: nothing is outstanding. */
  reset(): void {
    this.changed.clear();
    this.emitter.fire(0);
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    for (const d of this.disposables) d.dispose();
  }

  private note(uri: vscode.Uri): void {
    if (uri.scheme !== 'file' || IGNORED.test(uri.fsPath)) return;
    this.changed.add(uri.toString());
    this.emitter.fire(this.changed.size);
    if (!this.keepCompressed || !vscode.workspace.isTrusted) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.flush(), SETTLE_MS);
  }

  private async flush(): Promise<void> {
    this.timer = undefined;
    const uris = [...this.changed].map((s) => vscode.Uri.parse(s));
    if (uris.length === 0) return;
    for (const u of uris) this.changed.delete(u.toString());
    try {
      await this.recompress(uris);
    } catch {
      // The caller logs; keep the files marked so the status bar stays honest.
      for (const u of uris) this.changed.add(u.toString());
    }
    this.emitter.fire(this.changed.size);
  }
}
