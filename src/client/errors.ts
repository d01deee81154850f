// The client's one error class. Server codes, their statuses and retryability come from the
// server's own table (src/errors.ts), so there is one source; the few codes only a client can
// meet (no answer at all, a deadline, a bad argument) are listed here beside them.
import { ERRORS, type ErrorCode } from '../errors.js';

export const CLIENT_ERRORS = {
  INVALID_ARGUMENT: { retryable: false, summary: 'A call argument is malformed; refused before any request was sent.' },
  CONNECTION_FAILED: { retryable: true, summary: 'No answer: the connection could not be made or broke before the answer arrived.' },
  TIMEOUT: { retryable: false, summary: "The call's deadline (timeoutMs) passed, counting every attempt." },
  ABORTED: { retryable: false, summary: "The caller's AbortSignal fired." },
  BAD_RESPONSE: { retryable: false, summary: 'The answer is not what the API describes (not JSON, or an error without a known code).' },
} as const satisfies Record<string, { retryable: boolean; summary: string }>;

export type ClientErrorCode = keyof typeof CLIENT_ERRORS;
export type { ErrorCode } from '../errors.js';
export type AnyErrorCode = ErrorCode | ClientErrorCode;

/** Why a failed call was not tried again. */
export type RetryStop = 'not-retryable' | 'not-idempotent' | 'attempts' | 'budget' | 'deadline';

export interface ThemisClientErrorInit {
  /** The HTTP status, when an answer arrived. */
  status?: number;
  /** The answer's other fields (oldest_seq, missing_copies, allow, …). */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export function isServerCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERRORS, code);
}

export function isKnownCode(code: string): code is AnyErrorCode {
  return isServerCode(code) || Object.hasOwn(CLIENT_ERRORS, code);
}

export class ThemisClientError extends Error {
  readonly code: AnyErrorCode;
  /** HTTP status of the answer; undefined when none arrived (client-side codes). */
  readonly status: number | undefined;
  /** Whether the server's table (or ours, for client-side codes) says that trying again may succeed. */
  readonly retryable: boolean;
  /** For SHARDS_UNAVAILABLE: the shards that did not answer. */
  readonly missingShards: readonly string[];
  readonly details: Readonly<Record<string, unknown>>;
  /** Requests sent for this call (0: refused before the network). */
  attempts = 0;
  /** Set when the call failed after attempts: why it stopped there. */
  stoppedBy: RetryStop | undefined;

  constructor(code: AnyErrorCode, message: string, init: ThemisClientErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'ThemisClientError';
    this.code = code;
    this.status = init.status ?? (isServerCode(code) ? ERRORS[code].status : undefined);
    this.retryable = isServerCode(code) ? ERRORS[code].retryable : CLIENT_ERRORS[code].retryable;
    this.details = Object.freeze({ ...init.details });
    const missing = init.details?.missing_shards;
    this.missingShards = Array.isArray(missing) ? missing.filter((s): s is string => typeof s === 'string') : [];
  }

  /** The error an answer with a non-2xx status stands for. */
  static fromAnswer(status: number, text: string): ThemisClientError {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (typeof body === 'object' && body !== null && typeof (body as { code?: unknown }).code === 'string') {
      const { code, message, error: _e, status_code: _s, ...details } = body as Record<string, unknown> & { code: string };
      const msg = typeof message === 'string' ? message : `status ${status}`;
      if (isServerCode(code)) return new ThemisClientError(code, msg, { status, details });
      return new ThemisClientError('BAD_RESPONSE', `unknown error code ${code.slice(0, 64)} (status ${status}): ${msg}`, { status, details: { ...details, code } });
    }
    return new ThemisClientError('BAD_RESPONSE', `status ${status} without an error body: ${text.slice(0, 200)}`, { status });
  }
}
