// Change notifications for the folders a long-lived host asks about, so that a question on a tree
// nothing has touched since the last scan does not scan it again (a stat per file: about half of
// a warm question's time on a 50 MB tree).
//
// Only a long-lived process (the extension host, `arc-context ask --interactive`, the bench's
// long-lived runs) holds a TreeWatch and passes it to ask() (AskOptions.watch); a one-shot `ask`
// scans every time. The watcher
// (@parcel/watcher, the N-API watcher VS Code itself uses: inotify, FSEvents,
// ReadDirectoryChangesW) is used as a "nothing happened" oracle only: any event under a root,
// whatever the file and whether or not the scan would keep it, ends the trust in every scan of
// that root taken before it. Over-reporting costs one scan; nothing is ever read from an event.
//
// The rules that keep a reused scan correct:
// - A ticket is taken only once a root's subscription is established, and before the scan starts:
//   every change after that reaches the callback (a lost inotify event cannot be alone: the queue
//   overflows only with events, which are delivered).
// - A root being subscribed gives no ticket (that question scans as before); subscribing runs in
//   the background so that the first question does not wait for the watcher's own crawl.
// - A watcher error, a failed subscription or a missing native module gives no ticket: every
//   question scans, as without a watcher (logged once per root).
// - Trust lasts at most `trustMs` (default 5 minutes) after the scan: a filesystem that does not
//   report every change (a network share written by another machine) is scanned again at least
//   that often.
// - Events arrive after the watcher's debounce (50 ms; up to 500 ms under a stream of changes): a
//   file changed less than that before a question may be missed by that question, and is seen by
//   the next one. Unsaved editor text never depends on this (the extension passes it as sources,
//   and a question with caller-given sources always scans).
import { realpathSync } from 'node:fs';
import * as path from 'node:path';

/** The part of @parcel/watcher used here. */
export interface WatcherModule {
  subscribe(dir: string, fn: (err: Error | null, events: { path: string; type: string }[]) => unknown, opts?: { ignore?: string[] }): Promise<{ unsubscribe(): Promise<void> }>;
}

/** What `ticket` hands out: the roots' event generations when the scan began. */
export interface WatchTicket {
  readonly roots: readonly string[];
  readonly generations: readonly number[];
  readonly takenAtMs: number;
}

interface RootWatch {
  /** Bumped by every event batch and every error under the root. */
  generation: number;
  state: 'subscribing' | 'watching' | 'failed';
  /** For 'failed': when subscribing may be tried again. */
  retryAtMs: number;
  subscription?: { unsubscribe(): Promise<void> };
  lastUsedMs: number;
  /** Settles once subscribing succeeded (true) or failed (false). */
  ready: Promise<boolean>;
}

export interface TreeWatchOptions {
  /** How long a scan is trusted without events (default 5 minutes). */
  trustMs?: number;
  /** Most roots watched at once; the least recently asked about is dropped first (default 16). */
  maxRoots?: number;
  log?: (line: string) => void;
  /** The watcher module; tests pass one, null means none (default: @parcel/watcher, if it loads). */
  watcher?: WatcherModule | null;
  /** Clock, for tests. */
  now?: () => number;
}

const DEFAULT_TRUST_MS = 5 * 60_000;
const RETRY_FAILED_MS = 5 * 60_000;
const MAX_REMEMBERED = 8;

let loaded: WatcherModule | null | undefined;
let loadError = '';

/** @parcel/watcher, or null (with the reason in loadError) when its native part does not load. */
function loadWatcher(): WatcherModule | null {
  if (loaded === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      loaded = require('@parcel/watcher') as WatcherModule;
    } catch (e) {
      loaded = null;
      loadError = e instanceof Error ? e.message.split('\n')[0] : String(e);
    }
  }
  return loaded;
}

function realRoot(root: string): string {
  const abs = path.resolve(root);
  try {
    return realpathSync(abs);
  } catch {
    return abs;
  }
}

export class TreeWatch<T = unknown> {
  private readonly roots = new Map<string, RootWatch>();
  private readonly remembered = new Map<string, { ticket: WatchTicket; value: T }>();
  private readonly trustMs: number;
  private readonly maxRoots: number;
  private readonly log: (line: string) => void;
  private readonly now: () => number;
  private readonly watcher: WatcherModule | null;
  private disposed = false;
  private saidUnavailable = false;

  constructor(opts: TreeWatchOptions = {}) {
    this.trustMs = opts.trustMs ?? DEFAULT_TRUST_MS;
    this.maxRoots = Math.max(1, opts.maxRoots ?? 16);
    this.log = opts.log ?? (() => {});
    this.now = opts.now ?? Date.now;
    this.watcher = opts.watcher !== undefined ? opts.watcher : loadWatcher();
  }

  /** Whether change notifications can be had at all in this process. */
  get available(): boolean {
    return this.watcher !== null && !this.disposed;
  }

  /**
   * A ticket for a scan about to start over `roots`, or null when one of them is not (yet)
   * watched; a root not watched yet starts being subscribed in the background.
   */
  ticket(roots: readonly string[]): WatchTicket | null {
    if (this.watcher === null || this.disposed || roots.length === 0) {
      if (this.watcher === null && !this.saidUnavailable) {
        this.saidUnavailable = true;
        this.log(`file watching unavailable (${loadError || 'no watcher'}): every question scans the tree`);
      }
      return null;
    }
    const real = roots.map(realRoot);
    const generations: number[] = [];
    let ready = true;
    const t = this.now();
    for (const r of real) {
      let w = this.roots.get(r);
      if (w && w.state === 'failed' && t >= w.retryAtMs) {
        this.roots.delete(r);
        w = undefined;
      }
      if (!w) {
        w = this.subscribe(r);
        ready = false;
      }
      w.lastUsedMs = t;
      if (w.state !== 'watching') ready = false;
      generations.push(w.generation);
    }
    return ready ? { roots: real, generations, takenAtMs: t } : null;
  }

  /**
   * Starts watching `roots` (as `ticket` does) and resolves once every one is watched (true) or
   * one of them could not be (false).
   */
  async whenWatching(roots: readonly string[]): Promise<boolean> {
    if (this.watcher === null || this.disposed || roots.length === 0) return false;
    this.ticket(roots);
    const all = await Promise.all(roots.map((r) => this.roots.get(realRoot(r))?.ready ?? Promise.resolve(false)));
    return all.every((ok) => ok);
  }

  /** True when no event or error reached any root of the ticket since it was taken, within trustMs. */
  quiet(ticket: WatchTicket): boolean {
    if (this.disposed || this.now() - ticket.takenAtMs > this.trustMs) return false;
    return ticket.roots.every((r, i) => {
      const w = this.roots.get(r);
      return w !== undefined && w.state === 'watching' && w.generation === ticket.generations[i];
    });
  }

  /** Keeps `value` (what a scan found) for as long as its ticket stays quiet. */
  remember(key: string, ticket: WatchTicket, value: T): void {
    this.remembered.delete(key);
    this.remembered.set(key, { ticket, value });
    while (this.remembered.size > MAX_REMEMBERED) this.remembered.delete(this.remembered.keys().next().value as string);
  }

  /** What was remembered under `key`, if its ticket is still quiet (otherwise it is dropped). */
  recall(key: string): T | undefined {
    const hit = this.remembered.get(key);
    if (!hit) return undefined;
    if (!this.quiet(hit.ticket)) {
      this.remembered.delete(key);
      return undefined;
    }
    return hit.value;
  }

  /** Forgets what was remembered under `key` (its scan turned out to be unusable). */
  forget(key: string): void {
    this.remembered.delete(key);
  }

  /** Stops every subscription; the watch gives no tickets afterwards. */
  async dispose(): Promise<void> {
    this.disposed = true;
    this.remembered.clear();
    const subs = [...this.roots.values()].map((w) => w.subscription).filter((s) => s !== undefined);
    this.roots.clear();
    await Promise.all(subs.map((s) => s.unsubscribe().catch(() => {})));
  }

  /** The number of roots subscribed or being subscribed (for tests and logs). */
  get watchedRoots(): number {
    return [...this.roots.values()].filter((w) => w.state !== 'failed').length;
  }

  private subscribe(root: string): RootWatch {
    let settle: (ok: boolean) => void = () => {};
    const ready = new Promise<boolean>((resolve) => (settle = resolve));
    const w: RootWatch = { generation: 0, state: 'subscribing', retryAtMs: 0, lastUsedMs: this.now(), ready };
    this.roots.set(root, w);
    this.dropLeastUsed();
    const onEvents = (err: Error | null) => {
      w.generation++;
      if (err && w.state !== 'failed') {
        this.fail(root, w, err);
      }
    };
    // git's own store is never scanned, and `git status` touches it all the time.
    (this.watcher as WatcherModule)
      .subscribe(root, onEvents, { ignore: [path.join(root, '.git')] })
      .then(
        (sub) => {
          if (this.disposed || this.roots.get(root) !== w || w.state === 'failed') {
            void sub.unsubscribe().catch(() => {});
            settle(false);
            return;
          }
          w.subscription = sub;
          w.state = 'watching';
          settle(true);
        },
        (e: unknown) => {
          this.fail(root, w, e);
          settle(false);
        },
      );
    return w;
  }

  private fail(root: string, w: RootWatch, e: unknown): void {
    w.generation++;
    w.state = 'failed';
    w.retryAtMs = this.now() + RETRY_FAILED_MS;
    const sub = w.subscription;
    w.subscription = undefined;
    if (sub) void sub.unsubscribe().catch(() => {});
    this.log(`file watching stopped for ${root} (${e instanceof Error ? e.message : String(e)}): questions scan it until watching works again`);
  }

  private dropLeastUsed(): void {
    while (this.roots.size > this.maxRoots) {
      let oldest: [string, RootWatch] | undefined;
      for (const entry of this.roots) if (!oldest || entry[1].lastUsedMs < oldest[1].lastUsedMs) oldest = entry;
      if (!oldest) return;
      this.roots.delete(oldest[0]);
      oldest[1].generation++;
      oldest[1].state = 'failed';
      void oldest[1].subscription?.unsubscribe().catch(() => {});
    }
  }
}
