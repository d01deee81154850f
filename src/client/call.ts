// One call to the API, with its deadline and its retries: the only place that decides whether a
// failed attempt is tried again (retry.ts says how long to wait and whether the budget allows).
import { setTimeout as sleep } from 'node:timers/promises';
import type { RouteId } from '../api/routes.js';
import { ThemisClientError, type RetryStop } from './errors.js';
import { backoffMs, type RetryPolicy } from './retry.js';
import { readText, type Transport, type TransportRequest, type TransportResponse } from './transport.js';

export interface CallOptions {
  /** Cancels the call (every attempt, and the pauses between them). */
  signal?: AbortSignal;
  /** The call's deadline in ms, counting every attempt and pause (default: the client's timeoutMs). */
  timeoutMs?: number;
}

export interface CallSpec {
  route: RouteId;
  method: TransportRequest['method'];
  path: string;
  body?: string;
  /** May be sent again without changing the outcome: PUT, GET, DELETE, reads, a create with its uuid fixed. */
  idempotent: boolean;
}

export interface CallerDeps {
  transport: Transport;
  retry: RetryPolicy;
  timeoutMs: number;
  random: () => number;
}

/** Requests sent (every attempt), per route: what the SDK really put on the wire. */
export type RouteCounts = Partial<Record<RouteId, number>>;

function checkTimeout(ms: number): number {
  if (!(Number.isFinite(ms) && ms > 0 && ms <= 2_147_483_647)) throw new ThemisClientError('INVALID_ARGUMENT', `timeoutMs must be a positive number of milliseconds, not ${ms}`);
  return ms;
}

/** An attempt's signal: aborted by the caller's signal or by the call's deadline (cancellable, for streams). */
function attemptSignal(callerSignal: AbortSignal | undefined, remainingMs: number): { signal: AbortSignal; endDeadline(): void; unlink(): void } {
  const ac = new AbortController();
  const onAbort = () => ac.abort(callerSignal!.reason);
  if (callerSignal?.aborted) ac.abort(callerSignal.reason);
  else callerSignal?.addEventListener('abort', onAbort, { once: true });
  const timer = setTimeout(() => ac.abort(new DOMException('deadline', 'TimeoutError')), Math.max(0, remainingMs));
  return {
    signal: ac.signal,
    endDeadline: () => clearTimeout(timer),
    unlink: () => {
      clearTimeout(timer);
      callerSignal?.removeEventListener('abort', onAbort);
    },
  };
}

/** An abort (deadline or caller) as the client's error. */
function abortError(signal: AbortSignal, timeoutMs: number): ThemisClientError {
  const reason: unknown = signal.reason;
  if (reason instanceof ThemisClientError) return reason;
  if (reason instanceof Error && reason.name === 'TimeoutError') return new ThemisClientError('TIMEOUT', `no answer within the call's deadline of ${timeoutMs} ms`, { cause: reason });
  return new ThemisClientError('ABORTED', 'the call was aborted by its AbortSignal', { cause: reason });
}

const STOP_WORDS: Record<RetryStop, string> = {
  'not-retryable': '',
  'not-idempotent': 'not retried: the call is not idempotent (a create without a fixed uuid)',
  attempts: 'no attempts left',
  budget: 'not retried: the retry budget is spent',
  deadline: "not retried: the deadline is too near",
};

export class Caller {
  readonly sent: RouteCounts = {};

  constructor(private readonly d: CallerDeps) {}

  /** Runs the call with retries; the parsed JSON of a 2xx answer. */
  async json<T>(spec: CallSpec, o: CallOptions = {}): Promise<T> {
    const { text } = await this.run(spec, o, false);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ThemisClientError('BAD_RESPONSE', `${spec.method} ${spec.path.slice(0, 80)} answered something that is not JSON: ${text.slice(0, 120)}`);
    }
  }

  /**
   * Like json(), but hands over a 2xx answer's body unread (for streams). The deadline covers
   * getting the answer's head; the body then lasts until the caller's signal or its end.
   */
  async stream(spec: CallSpec, o: CallOptions = {}): Promise<TransportResponse> {
    return (await this.run(spec, o, true)).res;
  }

  private async run(spec: CallSpec, o: CallOptions, stream: boolean): Promise<{ text: string; res: TransportResponse }> {
    const timeoutMs = checkTimeout(o.timeoutMs ?? this.d.timeoutMs);
    const startedAt = performance.now();
    const remaining = () => timeoutMs - (performance.now() - startedAt);
    const { retry } = this.d;
    retry.budget.onRequest();
    for (let attempt = 1; ; attempt++) {
      let err: ThemisClientError;
      const a = attemptSignal(o.signal, remaining());
      try {
        this.sent[spec.route] = (this.sent[spec.route] ?? 0) + 1;
        const res = await this.d.transport.request({ method: spec.method, path: spec.path, signal: a.signal, ...(spec.body === undefined ? {} : { body: spec.body }) });
        if (stream && res.status >= 200 && res.status < 300) {
          a.endDeadline();
          return { text: '', res };
        }
        let text: string;
        try {
          text = await readText(res);
        } catch (e) {
          if (a.signal.aborted) throw e;
          throw new ThemisClientError('CONNECTION_FAILED', `the answer broke off: ${(e as Error).message}`, { cause: e });
        }
        a.unlink();
        if (res.status >= 200 && res.status < 300) return { text, res };
        err = ThemisClientError.fromAnswer(res.status, text);
      } catch (e) {
        a.unlink();
        if (a.signal.aborted) err = abortError(a.signal, timeoutMs);
        else if (e instanceof ThemisClientError) err = e;
        else err = new ThemisClientError('CONNECTION_FAILED', `no answer: ${(e as Error)?.message ?? String(e)}`, { cause: e });
      }
      err.attempts = attempt;
      const stop = this.stopReason(err, spec, attempt, remaining());
      if (stop !== undefined) {
        err.stoppedBy = stop;
        const why = STOP_WORDS[stop];
        if (attempt > 1 || why !== '') err.message += ` (${spec.method} ${spec.route}, ${attempt} attempt${attempt > 1 ? 's' : ''}${why ? `; ${why}` : ''})`;
        throw err;
      }
      const pause = attemptSignal(o.signal, remaining());
      try {
        await sleep(backoffMs(retry, attempt, this.d.random), undefined, { signal: pause.signal });
      } catch {
        const e = abortError(pause.signal, timeoutMs);
        e.attempts = attempt;
        throw e;
      } finally {
        pause.unlink();
      }
    }
  }

  /** Why the failed attempt is the last one; undefined to try again (a budget token is taken then). */
  private stopReason(err: ThemisClientError, spec: CallSpec, attempt: number, remainingMs: number): RetryStop | undefined {
    if (!err.retryable) return 'not-retryable';
    if (!spec.idempotent) return 'not-idempotent';
    if (attempt >= this.d.retry.maxAttempts) return 'attempts';
    // The longest pause the next retry could draw must still leave time to ask.
    if (remainingMs <= Math.min(this.d.retry.maxDelayMs, this.d.retry.baseDelayMs * 2 ** (attempt - 1))) return 'deadline';
    if (!this.d.retry.budget.tryRetry()) return 'budget';
    return undefined;
  }
}
