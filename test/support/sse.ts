// A small Server-Sent Events reader for tests: opens a stream with fetch, parses events
// (`id`, `event`, `data`) and comments (`: heartbeat`) as they arrive, and can be cut off.
export interface SseEvent {
  id?: string;
  event?: string;
  data?: string;
  /** A comment line (without the colon), e.g. "heartbeat". */
  comment?: string;
}

export interface SseStream {
  status: number;
  headers: Headers;
  /** The body text when the answer is not a stream (an error). */
  text?: string;
  /** Reads until `until` is true of the events so far (or the stream ends / times out). */
  read(until: (events: SseEvent[]) => boolean, timeoutMs?: number): Promise<SseEvent[]>;
  close(): void;
}

export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
  const abort = new AbortController();
  const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: abort.signal });
  if (!res.headers.get('content-type')?.startsWith('text/event-stream')) {
    return { status: res.status, headers: res.headers, text: await res.text(), read: async () => [], close: () => abort.abort() };
  }
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const events: SseEvent[] = [];
  let buf = '';
  let ended = false;
  const parse = () => {
    for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const ev: SseEvent = {};
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) events.push({ comment: line.slice(1).trim() });
        else {
          const c = line.indexOf(':');
          const field = line.slice(0, c);
          const value = line.slice(c + 1).replace(/^ /, '');
          if (field === 'id' || field === 'event') ev[field] = value;
          if (field === 'data') ev.data = ev.data === undefined ? value : `${ev.data}\n${value}`;
        }
      }
      if (ev.id !== undefined || ev.data !== undefined || ev.event !== undefined) events.push(ev);
    }
  };
  return {
    status: res.status,
    headers: res.headers,
    async read(until, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!ended && !until(events) && Date.now() < deadline) {
        const chunk = await Promise.race([reader.read(), new Promise<null>((r) => setTimeout(() => r(null), Math.max(1, deadline - Date.now())))]);
        if (chunk === null) break;
        if (chunk.done) ended = true;
        else {
          buf += decoder.decode(chunk.value, { stream: true });
          parse();
        }
      }
      return events;
    },
    close() {
      abort.abort();
    },
  };
}
