// Runs inside a real VS Code extension host (test-electron). Checks what only a real host can:
// the manifest is accepted, activation registers every command, and the native inference
// stack (onnxruntime-node on Electron's Node) answers a question through the core pipeline.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { ask } from '../../../src/core/ask';
import { loadModel } from '../../../src/core/model';
import type { AskEvent } from '../../../src/core/types';

const EXTENSION_ID = 'arc-context.arc-context';

/** The command titles users see; the palette and the e2e tests rely on them verbatim. */
const TITLES: Record<string, string> = {
  'arcContext.compressAndAsk': 'ARC: Compress and Ask…',
  'arcContext.askWorkspace': 'ARC: Ask About Workspace',
  'arcContext.askOpenFiles': 'ARC: Ask About Open Files',
  'arcContext.askSelection': 'ARC: Ask About Selection',
  'arcContext.compressWorkspace': 'ARC: Compress Workspace',
  'arcContext.selectModel': 'ARC: Select Model…',
  'arcContext.showStats': 'ARC: Show Compression Stats',
  'arcContext.clearCache': 'ARC: Clear Compressed Cache',
  'arcContext.focusChat': 'ARC: Focus Chat',
};

interface ContributedCommand { command: string; title: string }

function extension(): vscode.Extension<unknown> {
  const ext = vscode.extensions.getExtension(EXTENSION_ID);
  assert.ok(ext, `${EXTENSION_ID} is not loaded in the extension host`);
  return ext;
}

describe('ARC Context in the VS Code extension host', () => {
  it('declares activation on its own commands, chat view and answer panel only', () => {
    // activationEvents lists only our commands, the chat view and the restorable answer panel.
    const events: string[] = (extension().packageJSON as { activationEvents: string[] }).activationEvents;
    assert.ok(events.length > 0, 'no activation events');
    for (const e of events) {
      assert.match(e, /^(onCommand:arcContext\.|onView:arcContext\.|onWebviewPanel:arcContext\.answer$)/, `unexpected activation event ${e}`);
    }
  });

  it('activates without error', async () => {
    const ext = extension();
    await ext.activate();
    assert.equal(ext.isActive, true);
  });

  it('registers every command of its manifest, with the titles the UI promises', async () => {
    const contributed = (extension().packageJSON as { contributes: { commands: ContributedCommand[] } })
      .contributes.commands;
    const byId = new Map(contributed.map((c) => [c.command, c.title]));
    for (const [id, title] of Object.entries(TITLES)) {
      assert.equal(byId.get(id), title, `manifest title of ${id}`);
    }
    const registered = new Set(await vscode.commands.getCommands(true));
    const missing = contributed.map((c) => c.command).filter((id) => !registered.has(id));
    assert.deepEqual(missing, [], 'contributed but not registered by activate()');
  });

  it('opens its chat view from the activity bar container', async () => {
    await vscode.commands.executeCommand('workbench.view.extension.arcContext');
    await vscode.commands.executeCommand('arcContext.focusChat');
  });

  it('bundles the default model package where the extension looks for it', () => {
    const dir = path.join(extension().extensionPath, 'models', 'arc-tiny-code');
    const manifest = vscode.Uri.file(path.join(dir, 'arc-model.json'));
    return vscode.workspace.fs.stat(manifest).then(
      (s) => assert.ok(s.size > 0),
      () => assert.fail(`${manifest.fsPath} is missing`),
    );
  });

  it('runs the ask() pipeline with onnxruntime-node on the extension host\'s Node', async () => {
    // The real question here is whether the native binding loads under Electron (N-API), so
    // the small random fixture model is enough; it answers with arbitrary tokens.
    const root = process.env.ARC_TEST_ROOT ?? path.resolve(__dirname, '../..');
    const model = await loadModel(path.join(root, 'test', 'fixtures', 'tiny-arc'), { provider: 'cpu' });
    try {
      const ws = path.join(root, 'test', 'e2e', 'workspace');
      const events: AskEvent[] = [];
      for await (const e of ask(model, {
        question: 'Which file defines `applyDiscount`?',
        mode: 'arc',
        sources: [
          { path: 'src/pricing.ts', absPath: path.join(ws, 'src', 'pricing.ts'), origin: 'explicit' },
          { path: 'src/inventory.py', absPath: path.join(ws, 'src', 'inventory.py'), origin: 'explicit' },
        ],
        maxNewTokens: 8,
      }, { cacheDir: null })) {
        events.push(e);
      }
      const error = events.find((e) => e.type === 'error');
      assert.equal(error, undefined, JSON.stringify(error));
      const done = events.find((e): e is Extract<AskEvent, { type: 'done' }> => e.type === 'done');
      assert.ok(done, `no done event in ${events.map((e) => e.type).join(',')}`);
      assert.equal(done.stats.provider, 'cpu');
      assert.ok(done.stats.sourceTokens > 0, 'no source tokens were read');
      assert.ok(done.stats.generatedTokens > 0 && done.stats.generatedTokens <= 8);
    } finally {
      await model.dispose();
    }
  });
});
