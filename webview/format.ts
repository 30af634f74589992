// Number formatting for the stats line and the compression picture. Pure (no DOM), unit tested.
import type { AskStats } from '../src/core/types';

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function formatInt(n: number): string {
  return int.format(Math.round(n));
}

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

export function formatRatio(ratio: number): string {
  if (!Number.isFinite(ratio) || ratio <= 0) return '—';
  return `${ratio.toFixed(ratio >= 10 ? 0 : 1)}×`;
}

export function formatRate(tokensPerSecond: number): string {
  if (!Number.isFinite(tokensPerSecond) || tokensPerSecond <= 0) return '—';
  return `${tokensPerSecond.toFixed(tokensPerSecond >= 100 ? 0 : 1)} tok/s`;
}

/** Source tokens -> vectors, encode ms, TTFT, tokens/s, provider, cache hits (the ratio is shown on its own). */
export function statsParts(s: AskStats): string[] {
  const parts: string[] = [];
  if (s.mode === 'arc') {
    parts.push(`${formatInt(s.sourceTokens)} tokens → ${formatInt(s.compressedVectors)} vectors`);
    parts.push(`encode ${formatMs(s.encodeMs)}`);
  } else if (s.mode === 'full') {
    parts.push(`${formatInt(s.sourceTokens)} tokens, full text`);
  } else {
    parts.push('no context');
  }
  parts.push(`TTFT ${formatMs(s.ttftMs)}`);
  parts.push(formatRate(s.tokensPerSecond));
  parts.push(s.provider);
  if (s.mode === 'arc') parts.push(`cache ${formatInt(s.cacheHits)}/${formatInt(s.cacheHits + s.cacheMisses)} hits`);
  if (s.chunksLeftOut > 0) parts.push(`${s.chunksIncluded}/${s.chunksIncluded + s.chunksLeftOut} chunks fit`);
  return parts;
}

/** The whole line as text, ratio first (what the chat shows, and what screen readers read). */
export function formatStatsLine(s: AskStats): string {
  return [...(s.mode === 'arc' ? [formatRatio(s.ratio)] : []), ...statsParts(s)].join(' · ');
}

/** Bar widths in percent of the largest file's token count (tokens bar, vectors bar). */
export function barWidths(tokens: number, vectors: number, maxTokens: number): [number, number] {
  if (maxTokens <= 0) return [0, 0];
  const pct = (n: number) => Math.max(0, Math.min(100, (100 * n) / maxTokens));
  // A file with any vectors keeps a visible sliver even next to a huge file.
  const v = pct(vectors);
  return [pct(tokens), vectors > 0 ? Math.max(v, 0.5) : 0];
}

export const MODE_LABEL: Record<AskStats['mode'], string> = {
  arc: 'ARC (compressed)',
  full: 'Full text',
  none: 'No context',
};
