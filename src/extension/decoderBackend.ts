// The decoder backend in VS Code: when the (machine-scoped) settings name a vLLM or SGLang
// server, the loaded model's generate() runs there. The API key lives in SecretStorage only,
// and the first use of each host asks for consent, naming it: the compressed context and the
// question leave the machine only after the user said yes.
import * as vscode from 'vscode';
import type { ArcModel, LoadOptions } from '../core/api';
import { ArcError } from '../core/errors';
import { withEngineDecoder } from '../core/remote/backend';
import { engineHost } from '../core/remote/engine';
import { engineSettings } from './config';
import type { LoadModelFn } from './modelManager';
import { readSettings } from './settings';

export const API_KEY_SECRET = 'arcContext.decoderApiKey';
const CONSENT_KEY = 'arcContext.decoderConsent';
const ALLOW = 'Allow';

/**
 * The user said no to sending anything to the server. Not a model error: the question's own
 * answer (sidebar card, panel, chat response) says what happened, and the next question asks
 * again.
 */
export class ConsentDeclinedError extends ArcError {
  constructor(message: string) {
    super('decoder-server', message);
    this.name = 'ConsentDeclinedError';
  }
}

/** Hosts the user allowed, stored per machine (globalState), keyed by backend and host. */
function consentId(kind: string, url: string): string {
  return `${kind} ${engineHost(url)}`;
}

export class DecoderBackendGate {
  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  /** loadModel, then the engine decoder when one is configured and allowed. */
  wrap(load: LoadModelFn): LoadModelFn {
    return async (dir: string, opts: LoadOptions): Promise<ArcModel> => {
      const settings = readSettings();
      const apiKey = await this.context.secrets.get(API_KEY_SECRET);
      const choice = engineSettings(settings, apiKey);
      if (!choice.ok) throw new ArcError('decoder-server', choice.reason);
      const engine = choice.engine;
      if (engine) await this.ensureConsent(engine.kind, engine.url);
      // With an engine, decoder.onnx is neither needed nor opened: the package may lack it.
      const model = await load(dir, engine ? { ...opts, decoderGraph: false } : opts);
      if (!engine) return model;
      try {
        const wrapped = withEngineDecoder(model, engine);
        this.log.info(`decoder: ${engine.kind} at ${engineHost(engine.url)}${engine.servedModel ? ` (model ${engine.servedModel})` : ''}${apiKey ? ', with API key' : ''}; the encoder stays local`);
        return wrapped;
      } catch (e) {
        await model.dispose().catch(() => undefined);
        throw e;
      }
    };
  }

  private async ensureConsent(kind: string, url: string): Promise<void> {
    const allowed = this.context.globalState.get<string[]>(CONSENT_KEY, []);
    const id = consentId(kind, url);
    if (allowed.includes(id)) return;
    const host = engineHost(url);
    const insecure = url.trim().toLowerCase().startsWith('http://') && !/^(127\.|localhost|\[::1\])/.test(host);
    const pick = await vscode.window.showWarningMessage(
      `ARC Context will send every question's decoder input to the ${kind} server at ${host}: the compressed vectors of the selected code, the code chunks read as text (mixed and full modes) and the question, as embeddings.${insecure ? ' The connection is plain http: anyone on the network path can read it.' : ''} Allow?`,
      { modal: true },
      ALLOW,
    );
    if (pick !== ALLOW) {
      throw new ConsentDeclinedError(`Nothing was sent: using the ${kind} server at ${host} was not allowed. Allow it on the next question, or set arcContext.decoderBackend to onnx.`);
    }
    await this.context.globalState.update(CONSENT_KEY, [...allowed, id]);
  }
}

/** "ARC: Set Decoder Server API Key" (empty input removes it). */
export function registerDecoderCommands(context: vscode.ExtensionContext, onChange: () => void): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand('arcContext.setDecoderApiKey', async () => {
      const value = await vscode.window.showInputBox({
        title: 'ARC: decoder server API key',
        prompt: 'Sent as "Authorization: Bearer …" to the vLLM / SGLang server. Stored in VS Code\'s secret storage. Leave empty to remove it.',
        password: true,
        ignoreFocusOut: true,
      });
      if (value === undefined) return;
      if (value.trim() === '') await context.secrets.delete(API_KEY_SECRET);
      else await context.secrets.store(API_KEY_SECRET, value.trim());
      onChange();
    }),
  ];
}
