// Server-sent events as both engines stream them: events separated by a blank line, the payload
// in `data:` lines (several are joined with "\n"); comments and other fields are ignored.

/** The `data` payload of each event in a response body, in order. */
export async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<string, void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buf += done ? decoder.decode() : decoder.decode(value, { stream: true });
      buf = buf.replace(/\r\n?/g, '\n');
      let cut: number;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const data = dataOf(buf.slice(0, cut));
        buf = buf.slice(cut + 2);
        if (data !== null) yield data;
      }
      if (done) {
        const data = dataOf(buf);
        if (data !== null) yield data;
        return;
      }
    }
  } finally {
    // Stops the download when the consumer leaves early (stop string, cancellation).
    await reader.cancel().catch(() => {});
  }
}

function dataOf(event: string): string | null {
  const lines = event.split('\n').filter((l) => l.startsWith('data:'));
  if (lines.length === 0) return null;
  return lines.map((l) => l.slice(5).replace(/^ /, '')).join('\n');
}
