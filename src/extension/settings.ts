// Reads `arcContext.*` from VS Code. Machine-scoped settings are read from user/machine level
// only (inspect().globalValue), even though VS Code already ignores workspace values for them:
// a workspace must never choose which model files are loaded or how the machine is used.
import * as vscode from 'vscode';
import { CONFIG_SECTION, normalizeSettings, type ArcSettings } from './config';

const USER_LEVEL_ONLY = new Set(['modelPath', 'executionProvider', 'threads', 'cacheSizeMB', 'decoderBackend', 'decoderUrl', 'servedModel']);

export function readSettings(): ArcSettings {
  const cfg = vscode.workspace.getConfiguration(CONFIG_SECTION);
  return normalizeSettings((key) => {
    if (USER_LEVEL_ONLY.has(key)) {
      const i = cfg.inspect(key);
      return i?.globalValue ?? i?.defaultValue;
    }
    return cfg.get(key);
  });
}

/** Settings whose change means the loaded model must be reloaded. */
export const MODEL_SETTINGS = ['modelPath', 'executionProvider', 'threads', 'decoderBackend', 'decoderUrl', 'servedModel'].map((k) => `${CONFIG_SECTION}.${k}`);
