// Turns what the user pointed at (open editors, a selection, the workspace, explorer items)
// into SourceInput objects for ask(). Unsaved editor contents are passed as text so the model
// sees what the user sees; saved files are passed by path and read (and checked) by the core.
// A workspace question hands the core its local folders to scan (workspaceScan.ts), as the
// CLI's `ask --root` does; remote and virtual folders are listed file by file.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { filterGitignored } from '../core/context/sources';
import { ArcError } from '../core/errors';
import type { SourceInput } from '../core/types';
import type { SourceKind } from '../protocol';
import type { ArcSettings } from './config';
import { combineGlobs, excludeGlobs } from './config';
import { planRoots, rankEntries, unsavedOverrides, type FolderInfo, type WorkspaceScan } from './workspaceScan';

export interface CollectedSources {
  /** Explicit sources; with `scan`, those that join (and override) the scanned files. */
  sources: SourceInput[];
  /** Short description for the UI and the log, e.g. "3 open files". */
  label: string;
  /** A workspace question: the folders the core scans, with their globs (workspaceScan.ts). */
  scan?: WorkspaceScan;
}

/** Beyond this many workspace files the question is answered from the first ones found. */
export const MAX_WORKSPACE_FILES = 20_000;

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** Workspace-relative with forward slashes; prefixed by the folder name in multi-root workspaces. */
export function displayPath(uri: vscode.Uri): string {
  if (uri.scheme === 'untitled') return uri.path;
  const multiRoot = (vscode.workspace.workspaceFolders?.length ?? 0) > 1;
  return vscode.workspace.asRelativePath(uri, multiRoot).replace(/\\/g, '/');
}

function openDocument(uri: vscode.Uri): vscode.TextDocument | undefined {
  const key = uri.toString();
  return vscode.workspace.textDocuments.find((d) => d.uri.toString() === key);
}

/** A file as a source: by path when the disk copy is current, else with the editor's text. */
function fileSource(uri: vscode.Uri, origin: SourceInput['origin']): SourceInput | undefined {
  const doc = openDocument(uri);
  if (uri.scheme === 'file') {
    const s: SourceInput = { path: displayPath(uri), absPath: uri.fsPath, origin };
    if (doc?.isDirty) s.text = doc.getText();
    return s;
  }
  // Untitled buffers and other in-memory documents only exist as editor text.
  if (doc && (uri.scheme === 'untitled' || uri.scheme === 'vscode-remote' || uri.scheme === 'vscode-userdata')) {
    return { path: displayPath(uri), text: doc.getText(), origin };
  }
  return undefined;
}

export function openFileSources(): CollectedSources {
  const seen = new Set<string>();
  const sources: SourceInput[] = [];
  const uris: vscode.Uri[] = [];
  // Tabs cover editors that are open but not visible; visible editors cover split views.
  for (const group of vscode.window.tabGroups.all) {
    for (const tab of group.tabs) if (tab.input instanceof vscode.TabInputText) uris.push(tab.input.uri);
  }
  for (const e of vscode.window.visibleTextEditors) uris.push(e.document.uri);
  for (const uri of uris) {
    const key = uri.toString();
    if (seen.has(key)) continue;
    seen.add(key);
    const s = fileSource(uri, 'open');
    if (s) sources.push(s);
  }
  if (sources.length === 0) {
    throw new ArcError('no-sources', 'No files are open. Open the files to ask about, or choose "Workspace" as the source.');
  }
  return { sources, label: plural(sources.length, 'open file') };
}

export function selectionSources(): CollectedSources {
  const editor = vscode.window.activeTextEditor;
  const selections = editor?.selections.filter((s) => !s.isEmpty) ?? [];
  if (!editor || selections.length === 0) {
    throw new ArcError('no-sources', 'Nothing is selected. Select some code in an editor first, or choose another source.');
  }
  const doc = editor.document;
  const base: Pick<SourceInput, 'path' | 'absPath'> = { path: displayPath(doc.uri) };
  if (doc.uri.scheme === 'file') base.absPath = doc.uri.fsPath;
  const sources = selections.map((sel) => ({
    ...base,
    // Whole lines: citations are line ranges, and a half line reads badly as context.
    text: doc.getText(new vscode.Range(sel.start.line, 0, sel.end.line, doc.lineAt(sel.end.line).text.length)),
    startLine: sel.start.line + 1,
    origin: 'selection' as const,
  }));
  const lines = selections.reduce((n, s) => n + s.end.line - s.start.line + 1, 0);
  return { sources, label: `selection (${plural(lines, 'line')} of ${base.path})` };
}

/**
 * Drops the files that .gitignore files exclude, with the core's rules (those of the CLI's folder
 * scan): every .gitignore from `root` down to the file counts. Only local folders have
 * .gitignore files the extension host can read; other schemes pass through unchanged.
 */
async function withoutGitignored(root: vscode.Uri, uris: vscode.Uri[], log: vscode.LogOutputChannel): Promise<vscode.Uri[]> {
  if (root.scheme !== 'file' || uris.length === 0) return uris;
  const byRel = new Map<string, vscode.Uri>();
  for (const uri of uris) if (uri.scheme === 'file') byRel.set(path.relative(root.fsPath, uri.fsPath), uri);
  const { ignored } = await filterGitignored(root.fsPath, [...byRel.keys()]);
  if (ignored.length === 0) return uris;
  const drop = new Set(ignored.map((rel) => byRel.get(rel)!.toString()));
  log.info(`${root.fsPath}: ${plural(ignored.length, 'file')} left out by .gitignore (e.g. ${ignored.slice(0, 3).map((p) => p.replace(/\\/g, '/')).join(', ')})`);
  return uris.filter((u) => !drop.has(u.toString()));
}

/**
 * findFiles with files.exclude + search.exclude + arcContext.exclude merged per folder (giving
 * findFiles an exclude turns off its own files.exclude handling, so all three go in together),
 * then without what .gitignore files exclude. `truncated`: findFiles stopped at `limit`.
 */
async function findWorkspaceFiles(
  folder: vscode.WorkspaceFolder,
  settings: ArcSettings,
  limit: number,
  log: vscode.LogOutputChannel,
  token?: vscode.CancellationToken,
): Promise<{ uris: vscode.Uri[]; truncated: boolean }> {
  const cfg = vscode.workspace.getConfiguration(undefined, folder.uri);
  const ex = excludeGlobs(cfg.get('files.exclude'), cfg.get('search.exclude'));
  if (ex.conditional.length > 0) {
    log.info(`${folder.name}: exclude patterns with "when" conditions are not applied: ${ex.conditional.join(', ')}`);
  }
  const exclude = combineGlobs([...ex.globs, ...settings.exclude]);
  const include = combineGlobs(settings.include) ?? '**/*';
  const found = await vscode.workspace.findFiles(
    new vscode.RelativePattern(folder, include),
    exclude ? new vscode.RelativePattern(folder, exclude) : null,
    limit,
    token,
  );
  // findFiles knows files.exclude and search.exclude but not .gitignore; the CLI scan does.
  return { uris: await withoutGitignored(folder.uri, found, log), truncated: found.length >= limit };
}

/** The files of `folders` as sources, found by findFiles (at most MAX_WORKSPACE_FILES in all). */
async function listFolders(
  folders: readonly vscode.WorkspaceFolder[],
  settings: ArcSettings,
  log: vscode.LogOutputChannel,
  token?: vscode.CancellationToken,
): Promise<SourceInput[]> {
  const sources: SourceInput[] = [];
  const seen = new Set<string>();
  for (const folder of folders) {
    const { uris, truncated } = await findWorkspaceFiles(folder, settings, MAX_WORKSPACE_FILES - sources.length, log, token);
    for (const uri of uris) {
      if (seen.has(uri.toString())) continue; // nested workspace folders list a file twice
      seen.add(uri.toString());
      const s = fileSource(uri, 'workspace');
      if (s) sources.push(s);
    }
    if (truncated || sources.length >= MAX_WORKSPACE_FILES) {
      log.warn(`workspace has more than ${MAX_WORKSPACE_FILES} files; using the ${sources.length} usable ones among the first ${MAX_WORKSPACE_FILES} found. Narrow it with arcContext.include/exclude.`);
      break;
    }
  }
  return sources;
}

/** Unsaved new files are part of what the user is working on too. */
function untitledSources(): SourceInput[] {
  return vscode.workspace.textDocuments
    .filter((doc) => doc.uri.scheme === 'untitled' && doc.getText().trim() !== '')
    .map((doc) => ({ path: displayPath(doc.uri), text: doc.getText(), origin: 'open' as const }));
}

function workspaceFolders(): readonly vscode.WorkspaceFolder[] {
  const folders = vscode.workspace.workspaceFolders ?? [];
  if (folders.length === 0) {
    throw new ArcError('no-sources', 'No folder is open. Open a folder (File > Open Folder…) or ask about open files instead.');
  }
  return folders;
}

/**
 * Every workspace file as a source, found by findFiles. "Compress Workspace" and the background
 * compression use this list; questions use workspaceQuestionSources (the core scans the folders).
 */
export async function workspaceSources(
  settings: ArcSettings,
  log: vscode.LogOutputChannel,
  token?: vscode.CancellationToken,
): Promise<CollectedSources> {
  const folders = workspaceFolders();
  const sources = await listFolders(folders, settings, log, token);
  sources.push(...untitledSources());
  // Open editors get the core's ranking boost for being open.
  const open = new Set(vscode.window.visibleTextEditors.map((e) => e.document.uri.fsPath));
  for (const s of sources) if (s.absPath && open.has(s.absPath)) s.origin = 'open';
  if (sources.length === 0) {
    throw new ArcError('no-sources', 'The workspace has no files to use (after .gitignore, files.exclude, search.exclude and arcContext.include/exclude).');
  }
  const where = folders.length > 1 ? `workspace (${plural(folders.length, 'folder')}, ` : 'workspace (';
  return { sources, label: `${where}${plural(sources.length, 'file')})` };
}

/** A workspace folder with the files.exclude / search.exclude globs that are on for it. */
function folderInfo(folder: vscode.WorkspaceFolder, log: vscode.LogOutputChannel): FolderInfo {
  const cfg = vscode.workspace.getConfiguration(undefined, folder.uri);
  const ex = excludeGlobs(cfg.get('files.exclude'), cfg.get('search.exclude'));
  if (ex.conditional.length > 0) {
    log.info(`${folder.name}: exclude patterns with "when" conditions are not applied: ${ex.conditional.join(', ')}`);
  }
  return { name: folder.name, scheme: folder.uri.scheme, fsPath: folder.uri.fsPath, excludes: ex.globs };
}

/**
 * The workspace for a question. Local folders are scanned by the core (AskRequest.roots, with
 * the globs findFiles is given: files.exclude, search.exclude, arcContext.include/exclude, and
 * .gitignore), so a warm question reuses the tree snapshot in the cache folder; unsaved editors
 * override the disk text, editors in view rank as open, and `boost` files (attached in the Chat
 * view) rank as explicit. Remote and virtual folders are listed as before (workspaceSources).
 */
export async function workspaceQuestionSources(
  settings: ArcSettings,
  log: vscode.LogOutputChannel,
  token?: vscode.CancellationToken,
  boost: readonly vscode.Uri[] = [],
): Promise<CollectedSources> {
  const folders = workspaceFolders();
  const plan = planRoots(folders.map((f) => folderInfo(f, log)), settings);
  if (plan.fallback) log.info(`${plan.fallback}: the workspace is listed file by file for this question`);
  if (plan.roots.length === 0) {
    const ws = await workspaceSources(settings, log, token);
    const boosted = new Set(boost.filter((u) => u.scheme === 'file').map((u) => u.fsPath));
    for (const s of ws.sources) if (s.absPath && boosted.has(s.absPath)) s.origin = 'explicit';
    return ws;
  }
  const roots = plan.roots.map((f) => f.fsPath);
  const visible = new Set(vscode.window.visibleTextEditors.filter((e) => e.document.uri.scheme === 'file').map((e) => e.document.uri.fsPath));
  const docs = vscode.workspace.textDocuments.map((d) => ({ scheme: d.uri.scheme, fsPath: d.uri.fsPath, isDirty: d.isDirty, getText: () => d.getText() }));
  const boosted = boost.filter((u) => u.scheme === 'file').map((u) => u.fsPath);
  const scan: WorkspaceScan = {
    roots,
    include: plan.include,
    exclude: plan.exclude,
    // Explicit last: the core takes the last entry for a path.
    rankAs: [...rankEntries(roots, visible, 'open'), ...rankEntries(roots, boosted, 'explicit')],
  };
  const unsaved = await unsavedOverrides(scan, docs, visible);
  const explicit = new Set(boosted);
  for (const s of unsaved) if (explicit.has(s.absPath as string)) s.origin = 'explicit';
  // Remote and virtual folders of a mixed workspace: listed as before (only open editors there have text).
  const listed = plan.listed.length > 0 ? await listFolders(folders.filter((f) => f.uri.scheme !== 'file'), settings, log, token) : [];
  const sources = [...unsaved, ...listed, ...untitledSources()];
  // The file count is known once the core has scanned; the label names the folders.
  const named = folders.length === 1 ? folders[0].name : plural(folders.length, 'folder');
  const extra = [unsaved.length > 0 ? plural(unsaved.length, 'unsaved file') : '', listed.length > 0 ? `${plural(listed.length, 'file')} of non-local folders` : ''].filter((t) => t !== '');
  return { sources, scan, label: `workspace (${[named, ...extra].join(', ')})` };
}

/**
 * Explorer items or picked files; folders are expanded with the workspace exclude rules and the
 * .gitignore files from their workspace folder (or the folder itself) down. A file chosen on its
 * own is used even when ignored: the user asked for it.
 */
export async function uriSources(
  uris: vscode.Uri[],
  settings: ArcSettings,
  log: vscode.LogOutputChannel,
): Promise<CollectedSources> {
  const sources: SourceInput[] = [];
  for (const uri of uris) {
    let isDir = false;
    try {
      isDir = (await vscode.workspace.fs.stat(uri)).type === vscode.FileType.Directory;
    } catch {
      log.warn(`cannot read ${uri.toString()}; skipped`);
      continue;
    }
    if (!isDir) {
      const s = fileSource(uri, 'explicit');
      if (s) sources.push(s);
      continue;
    }
    const cfg = vscode.workspace.getConfiguration(undefined, uri);
    const ex = excludeGlobs(cfg.get('files.exclude'), cfg.get('search.exclude'));
    const exclude = combineGlobs([...ex.globs, ...settings.exclude]);
    const found = await vscode.workspace.findFiles(
      new vscode.RelativePattern(uri, combineGlobs(settings.include) ?? '**/*'),
      exclude ? new vscode.RelativePattern(uri, exclude) : null,
      MAX_WORKSPACE_FILES,
    );
    const root = vscode.workspace.getWorkspaceFolder(uri)?.uri ?? uri;
    for (const f of await withoutGitignored(root, found, log)) {
      const s = fileSource(f, 'explicit');
      if (s) sources.push(s);
    }
  }
  if (sources.length === 0) throw new ArcError('no-sources', 'The chosen files and folders contain no files to use.');
  return { sources, label: sources.length === 1 ? sources[0]!.path : plural(sources.length, 'file') };
}

export async function sourcesFor(
  kind: SourceKind,
  settings: ArcSettings,
  log: vscode.LogOutputChannel,
  token?: vscode.CancellationToken,
): Promise<CollectedSources> {
  switch (kind) {
    case 'open':
      return openFileSources();
    case 'selection':
      return selectionSources();
    case 'workspace':
      return workspaceQuestionSources(settings, log, token);
  }
}

/**
 * Changed files that belong in the workspace's context: findFiles with the changed paths as the
 * include and the usual excludes (and .gitignore), so a rebuilt `dist/` or an excluded folder is
 * not recompressed.
 */
export async function changedFileSources(
  uris: vscode.Uri[],
  settings: ArcSettings,
  log: vscode.LogOutputChannel,
): Promise<SourceInput[]> {
  const out: SourceInput[] = [];
  const byFolder = new Map<vscode.WorkspaceFolder, string[]>();
  for (const uri of uris) {
    const folder = vscode.workspace.getWorkspaceFolder(uri);
    if (!folder) continue;
    const rel = vscode.workspace.asRelativePath(uri, false).replace(/\\/g, '/');
    // Glob metacharacters in a name would change the pattern's meaning; such files wait for the
    // next full compression or question.
    if (/[*?[\]{},]/.test(rel)) continue;
    byFolder.set(folder, [...(byFolder.get(folder) ?? []), rel]);
  }
  for (const [folder, rels] of byFolder) {
    const { uris: found } = await findWorkspaceFiles(folder, { ...settings, include: rels }, rels.length, log);
    for (const uri of found) {
      const s = fileSource(uri, 'workspace');
      if (s) out.push(s);
    }
  }
  return out;
}
