// What an HTTP/2 listener limits about the request bodies it receives: a deadline for the whole
// body, counted from the stream's headers, and a byte budget shared by every body the listener
// holds at once. The listener attaches them to each stream that carries a body; readBody
// (http-body.ts) enforces them wherever the body is read, so the refusal is answered like any
// other error (proxy/respond.ts). The deadline's timer belongs to the listener, so a body that
// nobody reads is cut off too: once the answer is out (or a second after the deadline) the
// stream is reset (RST_STREAM CANCEL).
import { constants, type ServerHttp2Stream } from 'node:http2';
import { ThemisError } from './errors.js';

/** Bytes of request bodies held at once: taken as they are declared or arrive, given back when their stream closes. */
export class BodyBudget {
  private used = 0;

  constructor(
    readonly maxBytes: number,
    /** Told of each body refused (a metric). */
    private readonly onExceeded?: () => void,
  ) {}

  /** Takes `n` bytes, or takes nothing and returns false when they would pass the budget. */
  take(n: number): boolean {
    if (this.used + n > this.maxBytes) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used -= n;
  }

  get inUse(): number {
    return this.used;
  }

  exceeded(): ThemisError {
    this.onExceeded?.();
    return new ThemisError('BODY_BUDGET_EXCEEDED', `request bodies in flight would exceed this listener's budget of ${this.maxBytes} bytes; retry shortly`, { budget_bytes: this.maxBytes });
  }
}

export interface BodyLimits {
  /** The whole body must have arrived within this of the stream's headers. */
  timeoutMs: number;
  budget?: BodyBudget;
  /** Told when a stream's body missed its deadline (a metric). */
  onTimeout?: () => void;
}

/** One stream's limits, as the reader of its body sees them. */
export interface StreamBodyLimits {
  readonly timeoutMs: number;
  readonly budget: BodyBudget | undefined;
  /** The deadline passed before the body ended. */
  expired: boolean;
  /** Set by the reader while it reads; called when the deadline passes. */
  onExpire: (() => void) | undefined;
}

const attached = new WeakMap<object, StreamBodyLimits>();

/** How long the answer to a late body may take before its stream is reset anyway. */
const ANSWER_GRACE_MS = 1000;

/** Puts `limits` on `stream` (a stream without a body is left alone). */
export function limitBody(stream: ServerHttp2Stream, limits: BodyLimits): void {
  if (stream.endAfterHeaders) return;
  const s: StreamBodyLimits = { timeoutMs: limits.timeoutMs, budget: limits.budget, expired: false, onExpire: undefined };
  attached.set(stream, s);
  const timer = setTimeout(() => {
    // A body that arrived whole (END_STREAM) but is not read yet is not late.
    if (stream.closed || stream.destroyed || stream.state.remoteClose) return;
    s.expired = true;
    limits.onTimeout?.();
    s.onExpire?.();
    const reset = (): void => {
      if (!stream.closed && !stream.destroyed) stream.close(constants.NGHTTP2_CANCEL);
    };
    if (stream.writableFinished) return reset();
    // The answer (408 when the body was being read) goes out whole first: RST_STREAM would overtake its DATA.
    stream.once('finish', reset);
    setTimeout(reset, ANSWER_GRACE_MS).unref();
  }, limits.timeoutMs);
  timer.unref();
  const clear = (): void => clearTimeout(timer);
  stream.once('end', clear);
  stream.once('close', clear);
}

/** The limits on a request's body: of a core-API stream, or of a compatibility request's stream. */
export function bodyLimitsOf(source: object): StreamBodyLimits | undefined {
  return attached.get(source) ?? ('stream' in source && typeof source.stream === 'object' && source.stream !== null ? attached.get(source.stream) : undefined);
}

export function bodyTimedOut(limits: StreamBodyLimits): ThemisError {
  return new ThemisError('REQUEST_TIMEOUT', `the request body did not arrive whole within ${limits.timeoutMs} ms`, { timeout_ms: limits.timeoutMs });
}
