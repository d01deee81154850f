// GET /changefeed/stream: the change log as Server-Sent Events (`id: seq`, `data: record`),
// resumable with Last-Event-ID, `: heartbeat` comments while idle, and back-pressure: at most
// one page is read ahead of what the socket has taken, so a reader that stops costs a bound.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ThemisError } from '../src/errors.js';
import { ChangeWaiters, checkHorizon, trimmedError } from './changefeed.js';
import { intParam, rejectUnknownParams } from './params.js';
import type { Store } from './store.js';

/** Records and bytes read per page while streaming. */
export const SSE_PAGE = { limit: 256, bytes: 1024 * 1024 };
const KNOWN = ['from_seq', 'heartbeat_ms'];

export interface StreamParams {
  fromSeq: number;
  heartbeatMs: number;
}

/** Query string and Last-Event-ID (which wins: it is where the client's previous stream ended). */
export function parseStreamParams(q: URLSearchParams, lastEventId: string | string[] | undefined, defaultHeartbeatMs: number): StreamParams {
  rejectUnknownParams(q, KNOWN);
  let fromSeq = intParam(q, 'from_seq', 0, 0, Number.MAX_SAFE_INTEGER);
  if (lastEventId !== undefined) {
    const text = Array.isArray(lastEventId) ? lastEventId.join(',') : lastEventId.trim();
    const n = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(n)) {
      throw new ThemisError('INVALID_PARAMETER', `Last-Event-ID must be the sequence number of the last event received (an integer ≥ 0), got ${JSON.stringify(text.slice(0, 32))}`);
    }
    fromSeq = n;
  }
  return { fromSeq, heartbeatMs: intParam(q, 'heartbeat_ms', defaultHeartbeatMs, 100, 300_000) };
}

/** Open streams and what they hold in memory, for /health. */
export class StreamStats {
  readonly open = new Set<ServerResponse>();
  get bufferedBytes(): number {
    let n = 0;
    for (const r of this.open) n += r.writableLength;
    return n;
  }
}

export interface StreamDeps {
  store: Store;
  waiters: ChangeWaiters;
  stats: StreamStats;
  closing: () => boolean;
}

/** Streams until the client goes, the node shuts down, or the trimmer overtakes the reader. */
export async function streamChangefeed(d: StreamDeps, req: IncomingMessage, res: ServerResponse, p: StreamParams, signal: AbortSignal): Promise<void> {
  let pos = p.fromSeq;
  // Below the horizon: answered as a plain 410 before the stream starts.
  checkHorizon(d.store, pos, []);
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
  d.stats.open.add(res);
  try {
    await send(res, `retry: 1000\n: from ${pos}\n\n`, signal);
    while (!signal.aborted && !d.closing()) {
      const records = await d.store.changes(pos, SSE_PAGE.limit, SSE_PAGE.bytes);
      if (pos < d.store.log.trimmedThrough && records[0]?.seq !== pos + 1) {
        // A reader slower than the retention window: tell it, then end (it resumes with a full copy).
        const e = trimmedError(pos, d.store.log.trimmedThrough);
        await send(res, `event: error\ndata: ${JSON.stringify({ error: true, code: e.code, message: e.message, ...e.details })}\n\n`, signal);
        break;
      }
      for (const r of records) {
        if (signal.aborted) break;
        await send(res, `id: ${r.seq}\ndata: ${r.json}\n\n`, signal);
        pos = r.seq;
      }
      if (records.length === 0 && !(await d.waiters.wait(pos, p.heartbeatMs, signal)) && !signal.aborted && !d.closing()) {
        await send(res, ': heartbeat\n\n', signal);
      }
    }
  } finally {
    d.stats.open.delete(res);
    if (!res.destroyed) res.end();
  }
}

/** Writes, and when the socket's buffer is full waits for it to drain (or for the client to go). */
export function send(res: ServerResponse, text: string, signal: AbortSignal): Promise<void> {
  if (res.write(text) || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    res.on('drain', done);
    signal.addEventListener('abort', done);
  });
}
