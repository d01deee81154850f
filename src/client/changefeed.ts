// Reading a node's change log and its entities in order: the change feed as an async iterator
// that long-polls when caught up and remembers its position (the last sequence handed out, to
// resume from), the same over Server-Sent Events, and the ordered scan following `next`.
// All three are node-local by nature: they read the storage node beside the sidecar asked.
import type { CallOptions } from './call.js';
import { ThemisClientError } from './errors.js';
import { parseKey, parseTable } from './keys.js';
import type { TransportResponse } from './transport.js';

export interface Change {
  operation: 'PUT' | 'DELETE';
  /** `table:uuid` */
  key: string;
  sequence: number;
  old_val: string | null;
  new_val: string | null;
}

export interface ChangesOptions {
  /** Changes after this sequence (default 0: from the start of what the log holds). */
  fromSeq?: number;
  /** Changes per request, 1…1000 (default 100). */
  limit?: number;
  /** How long one request waits for a new change when caught up (default 25,000 ms). */
  longPollMs?: number;
  /** End the iteration once caught up, instead of waiting for more. */
  untilCaughtUp?: boolean;
  /** Ends the iteration (it then throws ABORTED). */
  signal?: AbortSignal;
  /** Deadline of each request (default: longPollMs + 10 s; with the SSE stream, the client's, for its head). */
  timeoutMs?: number;
}

type FeedGet = (path: string, o: CallOptions) => Promise<{ changes: Change[]; last_seq: number; latest_seq?: number }>;

function seq(n: number | undefined, name: string, dflt: number): number {
  const v = n ?? dflt;
  if (!(Number.isSafeInteger(v) && v >= 0)) throw new ThemisClientError('INVALID_PARAMETER', `${name} must be an integer ≥ 0, not ${v}`);
  return v;
}

function checkLimit(n: number | undefined, max: number, name: string): number | undefined {
  if (n !== undefined && !(Number.isInteger(n) && n >= 1 && n <= max)) throw new ThemisClientError('INVALID_PARAMETER', `${name} must be an integer 1…${max}, not ${n}`);
  return n;
}

/** The change feed, pulled page by page. */
export class ChangeFeed implements AsyncIterable<Change> {
  /** The sequence of the last change handed out: pass it as fromSeq to resume after it. */
  position: number;
  private readonly limit: number;
  private readonly longPollMs: number;

  constructor(
    private readonly get: FeedGet,
    private readonly o: ChangesOptions,
  ) {
    this.position = seq(o.fromSeq, 'fromSeq', 0);
    this.limit = checkLimit(o.limit, 1000, 'limit') ?? 100;
    this.longPollMs = seq(o.longPollMs, 'longPollMs', 25_000);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Change> {
    for (;;) {
      const wait = this.o.untilCaughtUp ? 0 : this.longPollMs;
      const path = `/changefeed?from_seq=${this.position}&limit=${this.limit}&long_poll_ms=${wait}`;
      const co: CallOptions = { ...(this.o.signal ? { signal: this.o.signal } : {}), timeoutMs: this.o.timeoutMs ?? wait + 10_000 };
      const page = await this.get(path, co);
      for (const c of page.changes) {
        // Advanced before the yield: a consumer that breaks out after a change resumes after it.
        this.position = c.sequence;
        yield c;
      }
      if (this.o.untilCaughtUp && page.changes.length === 0) return;
    }
  }
}

type StreamGet = (path: string, o: CallOptions) => Promise<TransportResponse>;

/** The change feed over Server-Sent Events; reconnects from its position when the stream ends. */
export class ChangeStream implements AsyncIterable<Change> {
  position: number;

  constructor(
    private readonly get: StreamGet,
    private readonly o: ChangesOptions & { heartbeatMs?: number },
  ) {
    this.position = seq(o.fromSeq, 'fromSeq', 0);
    if (o.heartbeatMs !== undefined && !(Number.isInteger(o.heartbeatMs) && o.heartbeatMs >= 100 && o.heartbeatMs <= 300_000)) {
      throw new ThemisClientError('INVALID_PARAMETER', 'heartbeatMs must be an integer 100…300,000');
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Change> {
    for (let emptyInARow = 0; ; ) {
      const before = this.position;
      const hb = this.o.heartbeatMs ? `&heartbeat_ms=${this.o.heartbeatMs}` : '';
      const res = await this.get(`/changefeed/stream?from_seq=${this.position}${hb}`, { ...(this.o.signal ? { signal: this.o.signal } : {}), ...(this.o.timeoutMs ? { timeoutMs: this.o.timeoutMs } : {}) });
      let buffered = '';
      let event = 'message';
      let data: string[] = [];
      try {
        for await (const chunk of res.body) {
          buffered += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
          let nl: number;
          while ((nl = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, nl).replace(/\r$/, '');
            buffered = buffered.slice(nl + 1);
            if (line === '') {
              // An event ends at a blank line (the SSE spec); comments and retry lines carry none.
              if (data.length > 0) {
                const text = data.join('\n');
                if (event === 'error') throw ThemisClientError.fromAnswer(410, text);
                const c = JSON.parse(text) as Change;
                this.position = c.sequence;
                yield c;
              }
              event = 'message';
              data = [];
            } else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
            else if (line.startsWith('event:')) event = line.slice(6).trim();
          }
        }
      } catch (e) {
        if (e instanceof ThemisClientError) throw e;
        if (this.o.signal?.aborted) throw new ThemisClientError('ABORTED', 'the change stream was aborted by its AbortSignal', { cause: e });
        // The stream broke off (sidecar restarted, connection reset): reconnect from the position.
      }
      if (this.o.untilCaughtUp) return;
      // A stream that keeps ending at once without a change would spin: give up after three.
      emptyInARow = this.position === before ? emptyInARow + 1 : 0;
      if (emptyInARow >= 3) throw new ThemisClientError('CONNECTION_FAILED', 'the change stream ended three times in a row without a change');
    }
  }
}

export interface ScanOptions extends CallOptions {
  /** One table `model.namespace.collection`; without it, every table of the node. */
  table?: string;
  /** Start after this key (either form). */
  after?: string;
  /** Entities per request, 1…1000 (default 100). */
  limit?: number;
}

export interface ScannedEntity {
  /** `table:uuid` */
  key: string;
  blob: string;
}

type ScanGet = (path: string, o: CallOptions) => Promise<{ entities: ScannedEntity[]; next: string | null }>;

export function scanPages(get: ScanGet, o: ScanOptions): AsyncIterable<ScannedEntity> {
  if (o.table !== undefined) parseTable(o.table);
  if (o.after !== undefined) parseKey(o.after);
  const limit = checkLimit(o.limit, 1000, 'limit') ?? 100;
  const co: CallOptions = { ...(o.signal ? { signal: o.signal } : {}), ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}) };
  return {
    async *[Symbol.asyncIterator]() {
      for (let after = o.after; ; ) {
        const q = new URLSearchParams({ limit: String(limit), ...(o.table ? { table: o.table } : {}), ...(after ? { after } : {}) });
        const page = await get(`/entities?${q}`, co);
        yield* page.entities;
        if (page.next === null) return;
        after = page.next;
      }
    },
  };
}
