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

/** "2 text / 7 compressed chunks": in which form the included chunks reached the decoder. */
export function chunkForms(s: Pick<AskStats, 'textChunks' | 'compressedChunks'>): string {
  const text = s.textChunks ?? 0;
  const compressed = s.compressedChunks ?? 0;
  const forms = [...(text > 0 ? [`${formatInt(text)} text`] : []), ...(compressed > 0 ? [`${formatInt(compressed)} compressed`] : [])];
  return forms.length > 0 ? `${forms.join(' / ')} ${text + compressed === 1 ? 'chunk' : 'chunks'}` : 'no chunks';
}

/** Modes that read compressed vectors (encode time and cache hits mean something there). */
function readsVectors(mode: AskStats['mode']): boolean {
  return mode === 'mixed' || mode === 'arc';
}

/** Source tokens -> positions, chunk forms, encode ms, TTFT, tokens/s, provider, cache hits (the ratio is shown on its own). */
export function statsParts(s: AskStats): string[] {
  const parts: string[] = [];
  if (s.mode === 'none') parts.push('no context');
  else {
    parts.push(`${formatInt(s.sourceTokens)} source tokens → ${formatInt(s.contextPositions)} positions`);
    parts.push(chunkForms(s));
  }
  if (readsVectors(s.mode)) parts.push(`encode ${formatMs(s.encodeMs)}`);
  parts.push(`TTFT ${formatMs(s.ttftMs)}`);
  parts.push(formatRate(s.tokensPerSecond));
  parts.push(s.provider);
  if (s.decoderBackend) parts.push(`decoder ${s.decoderBackend} (server TTFT ${formatMs(s.serverTtftMs ?? 0)})`);
  if (readsVectors(s.mode)) parts.push(`cache ${formatInt(s.cacheHits)}/${formatInt(s.cacheHits + s.cacheMisses)} hits`);
  if (s.chunksLeftOut > 0) parts.push(`${s.chunksIncluded}/${s.chunksIncluded + s.chunksLeftOut} chunks fit`);
  return parts;
}

/** Whether a stats line leads with the ratio (every mode that read context). */
export function showsRatio(s: AskStats): boolean {
  return s.mode !== 'none';
}

/** The whole line as text, ratio first (what the chat shows, and what screen readers read). */
export function formatStatsLine(s: AskStats): string {
  return [...(showsRatio(s) ? [formatRatio(s.ratio)] : []), ...statsParts(s)].join(' · ');
}

/** What the ratio means, for its tooltip. */
export const RATIO_TITLE = 'source tokens per decoder position of context (vectors, <Cont> and text tokens)';

/** Bar widths in percent of the largest file's token count (tokens bar, vectors bar). */
export function barWidths(tokens: number, vectors: number, maxTokens: number): [number, number] {
  if (maxTokens <= 0) return [0, 0];
  const pct = (n: number) => Math.max(0, Math.min(100, (100 * n) / maxTokens));
  // A file with any vectors keeps a visible sliver even next to a huge file.
  const v = pct(vectors);
  return [pct(tokens), vectors > 0 ? Math.max(v, 0.5) : 0];
}

export const MODE_LABEL: Record<AskStats['mode'], string> = {
  mixed: 'Mixed (text + compressed)',
  arc: 'ARC (compressed)',
  full: 'Full text',
  none: 'No context',
};
