// Turns what the user pointed at (open editors, a selection, the workspace, explorer items)
// into SourceInput objects for ask(). Unsaved editor contents are passed as text so the model
// sees what the user sees; saved files are passed by path and read (and checked) by the core.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { filterGitignored } from '../core/context/sources';
import { ArcError } from '../core/errors';
import type { SourceInput } from '../core/types';
import type { SourceKind } from '../protocol';
import type { ArcSettings } from './config';
import { combineGlobs, excludeGlobs } from './config';

export interface CollectedSources {
  sources: SourceInput[];
  /** Short description for the UI and the log, e.g. "3 open files". */
  label: string;
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

export async function workspaceSources(
  settings: ArcSettings,
  log: vscode.LogOutputChannel,
  token?: vscode.CancellationToken,
): Promise<CollectedSources> {
  const folders = vscode.workspace.workspaceFolders ?? [];
  if (folders.length === 0) {
    throw new ArcError('no-sources', 'No folder is open. Open a folder (File > Open Folder…) or ask about open files instead.');
  }
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
  // Unsaved new files are part of what the user is working on too.
  for (const doc of vscode.workspace.textDocuments) {
    if (doc.uri.scheme === 'untitled' && doc.getText().trim() !== '' && !seen.has(doc.uri.toString())) {
      sources.push({ path: displayPath(doc.uri), text: doc.getText(), origin: 'open' });
    }
  }
  // Open editors get the core's ranking boost for being open.
  const open = new Set(vscode.window.visibleTextEditors.map((e) => e.document.uri.fsPath));
  for (const s of sources) if (s.absPath && open.has(s.absPath)) s.origin = 'open';
  if (sources.length === 0) {
    throw new ArcError('no-sources', 'The workspace has no files to use (after .gitignore, files.exclude, search.exclude and arcContext.include/exclude).');
  }
  const where = folders.length > 1 ? `workspace (${plural(folders.length, 'folder')}, ` : 'workspace (';
  return { sources, label: `${where}${plural(sources.length, 'file')})` };
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
      return workspaceSources(settings, log, token);
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
