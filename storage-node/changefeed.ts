// GET /changefeed: the node's change log after `from_seq`, with long polling — a request that
// finds nothing new waits (up to a cap) until the writer commits a later sequence number.
import { ThemisError } from '../src/errors.js';
import type { Clock } from '../src/runtime.js';
import { intParam, rejectUnknownParams } from './params.js';
import type { Answer } from './respond.js';
import type { Store } from './store.js';

/** Timer source for long polls; tests pass a fake one driven by a fake clock. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** Wakes long polls when a newer sequence number is committed, on timeout, or on shutdown. */
export class ChangeWaiters {
  private readonly waiting = new Set<{ after: number; wake: () => void }>();
  private head: number;
  private closed = false;

  constructor(
    lastSeq: number,
    private readonly clock: Clock,
    private readonly timers: Timers = systemTimers,
  ) {
    this.head = lastSeq;
  }

  /** The writer calls this after each durable batch. */
  committed(lastSeq: number): void {
    this.head = lastSeq;
    for (const w of [...this.waiting]) if (lastSeq > w.after) w.wake();
  }

  /** Wakes every waiter now and makes later waits return at once (shutdown). */
  close(): void {
    this.closed = true;
    for (const w of [...this.waiting]) w.wake();
  }

  /**
   * Resolves true once a sequence number > `after` is committed, false when `ms` passed
   * (measured on the clock), the node is closing, or `signal` aborted.
   */
  async wait(after: number, ms: number, signal?: AbortSignal): Promise<boolean> {
    const deadline = this.clock.monotonic() + ms;
    while (!this.closed && !signal?.aborted && this.head <= after) {
      const left = deadline - this.clock.monotonic();
      if (left <= 0) return false;
      await this.park(after, left, signal);
    }
    return this.head > after;
  }

  /** One wait: until woken by a commit or close, the timer, or the signal. */
  private park(after: number, ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve) => {
      let handle: unknown;
      const done = (): void => {
        this.waiting.delete(entry);
        this.timers.clearTimeout(handle);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const entry = { after, wake: done };
      this.waiting.add(entry);
      signal?.addEventListener('abort', done);
      handle = this.timers.setTimeout(done, ms);
    });
  }

  /** How many requests are parked in a long poll. */
  get size(): number {
    return this.waiting.size;
  }
}

export interface ChangefeedParams {
  fromSeq: number;
  limit: number;
  longPollMs: number;
}

export const CHANGEFEED_DEFAULT_LIMIT = 100;
export const CHANGEFEED_MAX_LIMIT = 1000;
const KNOWN = ['from_seq', 'limit', 'long_poll_ms'];

/** Validates the query string; `long_poll_ms` above the cap is lowered to the cap. */
export function parseChangefeedParams(q: URLSearchParams, maxLongPollMs: number): ChangefeedParams {
  rejectUnknownParams(q, KNOWN);
  return {
    fromSeq: intParam(q, 'from_seq', 0, 0, Number.MAX_SAFE_INTEGER),
    limit: intParam(q, 'limit', CHANGEFEED_DEFAULT_LIMIT, 1, CHANGEFEED_MAX_LIMIT),
    longPollMs: Math.min(intParam(q, 'long_poll_ms', 0, 0, Number.MAX_SAFE_INTEGER), maxLongPollMs),
  };
}

/**
 * Answers `{changes, last_seq, latest_seq}`. `last_seq` is the sequence of the last change
 * returned (pass it as the next from_seq); with no changes, the newest sequence the node had
 * before reading (never more than from_seq then, so nothing can be skipped — and less than
 * from_seq tells the client it is ahead of this node). The records are served as stored.
 */
export async function changefeed(
  store: Store,
  waiters: ChangeWaiters,
  params: ChangefeedParams,
  budgetBytes: number,
  signal?: AbortSignal,
): Promise<Answer> {
  // Below the horizon: refused before reading (not walking the trimmed records' tombstones).
  checkHorizon(store, params.fromSeq, []);
  // The head is read before the records: every change up to it is in the iterator's snapshot.
  let head = store.lastSeq;
  let records = await store.changes(params.fromSeq, params.limit, budgetBytes);
  if (records.length === 0 && params.longPollMs > 0) {
    if (await waiters.wait(params.fromSeq, params.longPollMs, signal)) {
      head = store.lastSeq;
      records = await store.changes(params.fromSeq, params.limit, budgetBytes);
    }
  }
  checkHorizon(store, params.fromSeq, records);
  const last = records.length > 0 ? records[records.length - 1]!.seq : Math.min(head, params.fromSeq);
  const json = `{"changes":[${records.map((r) => r.json).join(',')}],"last_seq":${last},"latest_seq":${store.lastSeq}}`;
  return { status: 200, json };
}

/**
 * Refuses a read from below the retention horizon: the records after `fromSeq` must start at
 * fromSeq + 1. Checked after reading, so a trim racing the read is caught: an iterator snapshot
 * taken before the trim still holds them (and is served), one taken after does not (410).
 */
export function checkHorizon(store: Store, fromSeq: number, records: readonly { seq: number }[]): void {
  const trimmed = store.log.trimmedThrough;
  if (fromSeq >= trimmed || records[0]?.seq === fromSeq + 1) return;
  throw trimmedError(fromSeq, trimmed);
}

export function trimmedError(fromSeq: number, trimmed: number): ThemisError {
  return new ThemisError(
    'CHANGEFEED_TRIMMED',
    `the change log no longer holds the changes after ${fromSeq}: it is trimmed through ${trimmed}; make a full copy and follow from its head`,
    { oldest_seq: trimmed + 1, trimmed_through: trimmed, from_seq: fromSeq },
  );
}
