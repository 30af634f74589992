// The loaded arc-model/1 package as a model in the Chat view's model picker, through the
// Language Model Chat Provider API (VS Code 1.104+). Plain chat with it is answered by the
// decoder over the conversation's text (lmChat.ts); `@arc` works with it selected, and other
// extensions reach it through vscode.lm.selectChatModels({ vendor: 'arc-context' }).
//
// package.json keeps engines.vscode at ^1.95 so that older hosts still install the extension
// and get the sidebar; the provider API is therefore looked up at run time and its types (as
// published in @types/vscode 1.104+, the parts used here) are declared below.
import * as os from 'node:os';
import * as vscode from 'vscode';
import type { ArcModel } from '../core/api';
import { readManifest } from '../core/manifest';
import { chooseModelDir } from './config';
import type { AskRunner } from './runner';
import { answerConversation, chatWindow, countTokens, type ChatTurnText } from './lmChat';
import type { ModelManager } from './modelManager';
import { readSettings } from './settings';

/** package.json contributes.languageModelChatProviders[0].vendor */
export const LM_VENDOR = 'arc-context';

// --- the provider API's shapes (vscode.d.ts 1.104+), for hosts and typings older than that ---
interface LmChatInformation {
  readonly id: string;
  readonly name: string;
  readonly family: string;
  readonly tooltip?: string;
  readonly detail?: string;
  readonly version: string;
  readonly maxInputTokens: number;
  readonly maxOutputTokens: number;
  readonly capabilities: { readonly imageInput?: boolean; readonly toolCalling?: boolean | number };
}
interface LmRequestMessage {
  readonly role: number;
  readonly content: ReadonlyArray<unknown>;
  readonly name: string | undefined;
}
interface LmResponseOptions {
  readonly tools?: readonly unknown[];
}
interface LmChatProvider {
  readonly onDidChangeLanguageModelChatInformation?: vscode.Event<void>;
  provideLanguageModelChatInformation(options: { readonly silent: boolean }, token: vscode.CancellationToken): vscode.ProviderResult<LmChatInformation[]>;
  provideLanguageModelChatResponse(model: LmChatInformation, messages: readonly LmRequestMessage[], options: LmResponseOptions, progress: vscode.Progress<unknown>, token: vscode.CancellationToken): Thenable<void>;
  provideTokenCount(model: LmChatInformation, text: string | LmRequestMessage, token: vscode.CancellationToken): Thenable<number>;
}
type RegisterProvider = (vendor: string, provider: LmChatProvider) => vscode.Disposable;

/** registerLanguageModelChatProvider when the host has it (VS Code 1.104+). */
function providerApi(): RegisterProvider | undefined {
  const lm = (vscode as { lm?: { registerLanguageModelChatProvider?: RegisterProvider } }).lm;
  return typeof lm?.registerLanguageModelChatProvider === 'function' ? lm.registerLanguageModelChatProvider.bind(lm) : undefined;
}

/** The text of a message's parts (text parts, and the text inside tool results). */
export function messageText(content: ReadonlyArray<unknown>): string {
  const out: string[] = [];
  for (const part of content) {
    if (part instanceof vscode.LanguageModelTextPart) out.push(part.value);
    else if (typeof part === 'object' && part !== null && Array.isArray((part as { content?: unknown }).content)) {
      out.push(messageText((part as { content: unknown[] }).content));
    }
  }
  return out.join('');
}

function roleOf(role: number): ChatTurnText['role'] {
  // LanguageModelChatMessageRole: User = 1, Assistant = 2, System = 3 (newer hosts).
  return role === 1 ? 'user' : role === 2 ? 'assistant' : 'system';
}

export interface LmProviderDeps {
  extensionPath: string;
  models: ModelManager;
  runner: AskRunner;
  log: vscode.LogOutputChannel;
}

class ArcChatModelProvider implements LmChatProvider {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeLanguageModelChatInformation = this.changed.event;

  constructor(private readonly d: LmProviderDeps) {}

  /** The model list may change with the model settings. */
  refresh(): void {
    this.changed.fire();
  }

  dispose(): void {
    this.changed.dispose();
  }

  async provideLanguageModelChatInformation(): Promise<LmChatInformation[]> {
    // Read the manifest only: the picker must not wait for the ONNX sessions.
    const choice = chooseModelDir({
      userValue: readSettings().modelPath,
      extensionPath: this.d.extensionPath,
      trusted: vscode.workspace.isTrusted,
      workspaceFolders: (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath),
      homeDir: os.homedir(),
    });
    if (!choice.ok) return [];
    try {
      const { manifest } = await readManifest(choice.dir);
      const win = chatWindow({ manifest });
      if (!win) return [];
      return [
        {
          id: manifest.name,
          name: `ARC ${manifest.name}`,
          family: 'arc',
          version: '1',
          detail: 'local',
          tooltip: `${manifest.description ?? manifest.name}: a small local question-answering decoder with a ${win.contextLength}-token window, no tools. Ask @arc to use it with your workspace compressed.`,
          maxInputTokens: win.maxInputTokens,
          maxOutputTokens: win.maxOutputTokens,
          // toolCalling: VS Code (1.139) lists only tool-calling models in Agent mode, its default
          // mode, and a participant's request needs a selected model: without this, `@arc` on a fresh
          // profile ends in "Language model unavailable". The model never calls a tool; a request
          // with tools is answered as text if it fits the window and refused (naming @arc) if not.
          capabilities: { imageInput: false, toolCalling: true },
        },
      ];
    } catch (e) {
      this.d.log.warn(`the model picker gets no ARC model: ${e instanceof Error ? e.message : String(e)}`);
      return [];
    }
  }

  async provideLanguageModelChatResponse(_info: LmChatInformation, messages: readonly LmRequestMessage[], options: LmResponseOptions, progress: vscode.Progress<unknown>, token: vscode.CancellationToken): Promise<void> {
    const turns = messages.map((m) => ({ role: roleOf(m.role), text: messageText(m.content) }));
    const abort = new AbortController();
    const sub = token.onCancellationRequested(() => abort.abort());
    try {
      // Through the runner's queue: one model, one run at a time (as the sidebar's questions).
      await this.d.runner.exclusive(async () => {
        const model = await this.d.models.get();
        await answerConversation(model, turns, {
          signal: abort.signal,
          toolCount: options.tools?.length ?? 0,
          temperature: readSettings().temperature,
          onText: (piece) => progress.report(new vscode.LanguageModelTextPart(piece)),
        });
      });
    } catch (e) {
      if (abort.signal.aborted) return;
      this.d.log.info(`chat model request refused or failed: ${e instanceof Error ? e.message : String(e)}`);
      throw e;
    } finally {
      sub.dispose();
    }
  }

  async provideTokenCount(_info: LmChatInformation, text: string | LmRequestMessage): Promise<number> {
    const model: ArcModel = await this.d.models.get();
    return countTokens(model, typeof text === 'string' ? text : messageText(text.content));
  }
}

/**
 * Registers the ARC model with the Chat view's model picker when the host supports it, and asks
 * for the chat models once so the Chat view has a model (and `@arc` works) on a profile with no
 * other model provider and nobody signed in.
 */
export function registerChatModelProvider(d: LmProviderDeps): vscode.Disposable[] {
  const register = providerApi();
  if (!register) {
    d.log.info('this host has no Language Model Chat Provider API (VS Code < 1.104): no ARC model in the Chat view\'s model picker');
    return [];
  }
  const provider = new ArcChatModelProvider(d);
  const disposables: vscode.Disposable[] = [provider, register(LM_VENDOR, provider)];
  void Promise.resolve(vscode.lm.selectChatModels({ vendor: LM_VENDOR })).then(
    (models) => d.log.info(`chat models from ARC: ${models.map((m) => m.name).join(', ') || 'none'}`),
    (e: unknown) => d.log.warn(`selecting the ARC chat model failed: ${e instanceof Error ? e.message : String(e)}`),
  );
  disposables.push(
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('arcContext.modelPath')) provider.refresh();
    }),
  );
  return disposables;
}
