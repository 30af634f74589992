// Default places on disk for the CLI: the bundled model package and the user's cache folder.
// (The extension passes its own: extensionPath/models and globalStorageUri.)
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import envPaths from 'env-paths';

export const DEFAULT_MODEL_NAME = 'arc-tiny-code';

/**
 * The package root is the nearest folder above `fromDir` whose package.json is ours. This finds
 * models/ both from the bundle (dist/cli.js) and from sources run directly (src/cli/*.ts).
 */
export function packageRoot(fromDir: string): string | null {
  let dir = path.resolve(fromDir);
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: unknown }).name === 'arc-context') return dir;
      } catch {
        // Not ours or unreadable: keep walking up.
      }
    }
    const up = path.dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

export function defaultModelDir(fromDir: string): string {
  const root = packageRoot(fromDir) ?? path.resolve(fromDir, '..');
  return path.join(root, 'models', DEFAULT_MODEL_NAME);
}

/** The per-user cache folder (XDG cache on Linux, ~/Library/Caches on macOS, %LOCALAPPDATA% on Windows). */
export function defaultCacheDir(): string {
  return path.join(envPaths('arc-context', { suffix: '' }).cache, 'vectors');
}
