// Workspace questions through the core's folder scan (issue 13), as the CLI's `ask --root`: each
// local workspace folder is a root, so a warm question stats files against the tree snapshot
// instead of listing the workspace and reading every file. What the editor knows and the disk
// does not joins as explicit sources: unsaved editors (their text wins over the scanned file),
// and the editors in view rank as open (AskRequest.rankAs). No `vscode` import: sources.ts reads
// the folders, settings and editors and hands them in as plain values, so this is unit tested.
import * as path from 'node:path';
import picomatch from 'picomatch';
import { filterGitignored } from '../core/context/sources';
import type { AnswerMode, AskRequest, SourceInput } from '../core/types';
import type { ArcSettings } from './config';

/** A workspace folder as the scan plan needs it. */
export interface FolderInfo {
  name: string;
  /** The folder URI's scheme; only `file` folders can be scanned by the core. */
  scheme: string;
  /** The folder URI's fsPath (meaningful for `file` folders). */
  fsPath: string;
  /** files.exclude + search.exclude globs that are on for this folder (config.ts excludeGlobs). */
  excludes: string[];
}

/** How a workspace question reads the folders. */
export interface RootsPlan {
  /** Folders the core scans (local, none inside another). */
  roots: FolderInfo[];
  /** Folders listed file by file as before (remote or virtual schemes; all of them on fallback). */
  listed: FolderInfo[];
  /** The scan's globs (AskRequest.include / exclude): the same rules findFiles was given. */
  include: string[];
  exclude: string[];
  /** Why nothing is scanned although local folders exist (all listed); for the log. */
  fallback?: string;
}

/** What a workspace question scans: the request fields of the core's folder path. */
export interface WorkspaceScan {
  roots: string[];
  include: string[];
  exclude: string[];
  /** Scanned files that rank as open editors / attached files (AskRequest.rankAs). */
  rankAs: { path: string; origin: 'explicit' | 'open' }[];
}

function isInside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function unique(globs: readonly string[]): string[] {
  return [...new Set(globs.map((g) => g.trim()).filter((g) => g !== ''))];
}

/**
 * Which folders the core scans. One request has one include/exclude list, so local folders whose
 * files.exclude/search.exclude differ fall back to the file list (a union would drop files one
 * folder wants); so do local folders sharing a base name (the scan tells roots apart by it). A
 * folder inside another is scanned as part of the outer one.
 */
export function planRoots(folders: readonly FolderInfo[], settings: Pick<ArcSettings, 'include' | 'exclude'>): RootsPlan {
  const local = folders.filter((f) => f.scheme === 'file');
  const include = unique(settings.include);
  const excludeOf = (f: FolderInfo) => unique([...f.excludes, ...settings.exclude]);
  const exclude = local.length > 0 ? excludeOf(local[0]) : unique(settings.exclude);
  const all = (fallback: string): RootsPlan => ({ roots: [], listed: [...folders], include, exclude, fallback });
  if (local.length === 0) return { roots: [], listed: [...folders], include, exclude };
  const key = (list: string[]) => JSON.stringify([...list].sort());
  const differs = local.find((f) => key(excludeOf(f)) !== key(exclude));
  if (differs) return all(`workspace folders ${local[0].name} and ${differs.name} have different files.exclude / search.exclude settings`);
  const roots = local.filter((f, i) => !local.some((o, j) => j !== i && isInside(o.fsPath, f.fsPath) && (path.resolve(o.fsPath) !== path.resolve(f.fsPath) || j < i)));
  if (roots.length > 1) {
    const seen = new Map<string, string>();
    for (const r of roots) {
      const base = path.basename(path.resolve(r.fsPath));
      if (seen.has(base)) return all(`workspace folders ${seen.get(base)} and ${r.name} are both named "${base}" on disk`);
      seen.set(base, r.name);
    }
  }
  return { roots, listed: folders.filter((f) => f.scheme !== 'file'), include, exclude };
}

/**
 * The path the core's scan shows for `abs` (collectSources: root-relative with '/', after the
 * root's base name when there are several roots); null outside every root.
 */
export function scanPath(roots: readonly string[], abs: string): { root: string; rel: string; shown: string } | null {
  const root = roots.find((r) => isInside(r, abs));
  if (root === undefined) return null;
  const rel = path.relative(root, abs).split(path.sep).join('/');
  if (rel === '') return null;
  const prefix = roots.length > 1 ? `${path.basename(path.resolve(root))}/` : '';
  return { root, rel, shown: prefix + rel };
}

/** An editor's document as the override rule needs it. */
export interface EditorDoc {
  /** The document URI's scheme and fsPath. */
  scheme: string;
  fsPath: string;
  isDirty: boolean;
  getText(): string;
}

/**
 * Unsaved editors inside the roots as explicit sources (their text wins over the scanned file of
 * the same path, core collectSources), only where the scan would keep the file: its include and
 * exclude globs (exclude on the file and every folder above it, as the scan prunes folders) and
 * the .gitignore files. `origin` is `open` for the editors in `visible`, else `workspace`.
 */
export async function unsavedOverrides(scan: Pick<WorkspaceScan, 'roots' | 'include' | 'exclude'>, docs: readonly EditorDoc[], visible: ReadonlySet<string>): Promise<SourceInput[]> {
  const include = scan.include.length > 0 ? picomatch(scan.include, { dot: true }) : null;
  const exclude = scan.exclude.length > 0 ? picomatch(scan.exclude, { dot: true }) : null;
  const candidates = new Map<string, { doc: EditorDoc; root: string; rel: string; shown: string }>();
  for (const doc of docs) {
    if (doc.scheme !== 'file' || !doc.isDirty) continue;
    const at = scanPath(scan.roots, doc.fsPath);
    if (!at || candidates.has(at.shown)) continue;
    const parts = at.rel.split('/');
    const excluded = exclude !== null && parts.some((_, i) => exclude(parts.slice(0, i + 1).join('/')));
    if (excluded || (include !== null && !include(at.rel))) continue;
    candidates.set(at.shown, { doc, ...at });
  }
  const out: SourceInput[] = [];
  for (const root of scan.roots) {
    const here = [...candidates.values()].filter((c) => c.root === root);
    if (here.length === 0) continue;
    const { kept } = await filterGitignored(root, here.map((c) => c.rel));
    const keep = new Set(kept);
    for (const c of here) {
      if (!keep.has(c.rel)) continue;
      out.push({ path: c.shown, absPath: c.doc.fsPath, text: c.doc.getText(), origin: visible.has(c.doc.fsPath) ? 'open' : 'workspace' });
    }
  }
  return out;
}

/**
 * rankAs entries for files by absolute path (the scan's display paths); files outside the roots
 * are left out. Later entries win in the core, so pass the stronger origin last.
 */
export function rankEntries(roots: readonly string[], files: Iterable<string>, origin: 'explicit' | 'open'): WorkspaceScan['rankAs'] {
  const out: WorkspaceScan['rankAs'] = [];
  const seen = new Set<string>();
  for (const abs of files) {
    const at = scanPath(roots, abs);
    if (at && !seen.has(at.shown)) {
      seen.add(at.shown);
      out.push({ path: at.shown, origin });
    }
  }
  return out;
}

/** What a question is asked about: explicit sources, plus the folders to scan for a workspace question. */
export interface QuestionSources {
  sources: SourceInput[];
  scan?: WorkspaceScan;
}

/** The AskRequest of a question (controller.ask): the scan's folders and globs when it has them. */
export function questionRequest(
  collected: QuestionSources,
  question: string,
  mode: AnswerMode,
  settings: Pick<ArcSettings, 'include' | 'exclude' | 'maxNewTokens' | 'temperature' | 'mixedTextBudget'> & Partial<Pick<ArcSettings, 'decoding'>>,
): AskRequest {
  const request: AskRequest = { question, mode, sources: collected.sources };
  if (settings.maxNewTokens > 0) request.maxNewTokens = settings.maxNewTokens;
  if (settings.temperature > 0) request.temperature = settings.temperature;
  if (settings.mixedTextBudget > 0) request.textBudget = settings.mixedTextBudget;
  if (settings.decoding === 'extractive' || settings.decoding === 'free') request.extractive = settings.decoding === 'extractive';
  const scan = collected.scan;
  if (scan) {
    // The folders' own rules (files.exclude, search.exclude, arcContext.include/exclude): they
    // pick the scanned files and key the tree snapshot. Explicit sources are not filtered by them
    // (unsavedOverrides applied them already).
    request.roots = [...scan.roots];
    if (scan.include.length > 0) request.include = [...scan.include];
    if (scan.exclude.length > 0) request.exclude = [...scan.exclude];
    if (scan.rankAs.length > 0) request.rankAs = [...scan.rankAs];
    return request;
  }
  // The lister already applied include/exclude; the core only applies them to a folder scan.
  if (settings.include.length > 0) request.include = settings.include;
  if (settings.exclude.length > 0) request.exclude = settings.exclude;
  return request;
}
