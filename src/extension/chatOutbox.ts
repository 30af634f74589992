// What the sidebar chat host sends its webview page, and when. A page only takes messages after
// it says 'ready', and VS Code throws the page away whenever the view is hidden, so:
// - while no page is ready, every message waits here, in order (a run that starts and ends
//   before the page loads, e.g. a model that fails at once, still reaches it whole);
// - a ready page gets messages at once;
// - the messages of runs still in progress are kept and replayed to the next page, which
//   restores its history from its saved state and replaces the partial entry of such a run
//   (runStarted resets it), so nothing is shown twice;
// - what a page has received of finished runs and one-off messages is not sent again.
// No `vscode` import: ChatViewProvider wires it to the webview, and the tests drive it directly.
import type { HostMessage } from '../protocol';

/** Finished runs kept for a page that has not loaded yet; the chat shows no more entries. */
export const MAX_WAITING_RUNS = 50;
/** One-off messages (focusQuestion, notice) kept for such a page; older ones are moot. */
export const MAX_WAITING_NOTES = 10;

function runIdOf(m: HostMessage): string | undefined {
  if (m.type === 'runStarted') return m.run.runId;
  if (m.type === 'runEvent' || m.type === 'runEnded') return m.runId;
  return undefined;
}

export class ChatOutbox {
  private ready = false;
  /**
   * In send order: everything the current page has not received, plus every message of the
   * runs in progress (already received or not), which a new page needs from the start.
   */
  private queue: HostMessage[] = [];
  /** Runs started and not ended. */
  private readonly live = new Set<string>();

  constructor(private readonly deliver: (m: HostMessage) => void) {}

  /** Whether a page is loaded and has said 'ready'. */
  get isReady(): boolean {
    return this.ready;
  }

  /** Messages waiting or kept for replay (for tests and diagnostics). */
  get pending(): readonly HostMessage[] {
    return this.queue;
  }

  send(m: HostMessage): void {
    const runId = runIdOf(m);
    if (m.type === 'runStarted') this.live.add(m.run.runId);
    else if (m.type === 'runEnded') this.live.delete(m.runId);
    if (this.ready) {
      this.deliver(m);
      if (runId === undefined) return;
      if (m.type === 'runEnded') this.queue = this.queue.filter((q) => runIdOf(q) !== runId);
      else if (this.live.has(runId)) this.queue.push(m);
      return;
    }
    // The page's init message carries the status current when it loads.
    if (m.type === 'status' || m.type === 'init') return;
    this.queue.push(m);
    // Only an ended run or a note can take the queue past its bounds.
    if (runId === undefined || m.type === 'runEnded') this.trim();
  }

  /**
   * The page is gone (hidden, disposed, or replaced by new HTML): nothing more is delivered
   * until a page says 'ready' again.
   */
  detach(): void {
    this.ready = false;
  }

  /**
   * A page said 'ready'. The caller has already sent it `init`; it now gets every waiting
   * message in order, and later messages at once.
   */
  attach(): void {
    this.ready = true;
    const out = this.queue;
    this.queue = out.filter((m) => {
      const id = runIdOf(m);
      return id !== undefined && this.live.has(id);
    });
    for (const m of out) this.deliver(m);
  }

  /** Bounds what waits for a page that does not come: oldest finished runs and notes go first. */
  private trim(): void {
    const ended: string[] = [];
    const seen = new Set<string>();
    let notes = 0;
    for (const m of this.queue) {
      const id = runIdOf(m);
      if (id === undefined) notes++;
      else if (!this.live.has(id) && !seen.has(id)) {
        seen.add(id);
        ended.push(id);
      }
    }
    const dropRuns = new Set(ended.slice(0, Math.max(0, ended.length - MAX_WAITING_RUNS)));
    let dropNotes = Math.max(0, notes - MAX_WAITING_NOTES);
    if (dropRuns.size === 0 && dropNotes === 0) return;
    this.queue = this.queue.filter((m) => {
      const id = runIdOf(m);
      if (id !== undefined) return !dropRuns.has(id);
      if (dropNotes > 0) {
        dropNotes--;
        return false;
      }
      return true;
    });
  }
}
