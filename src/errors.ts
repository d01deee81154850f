// The one error table: every stable error code, its HTTP status and whether a client may
// retry. `respond.ts`-style writers turn a ThemisError into `{error, message, status_code, code}`.
// docs/errors.md documents every code; a unit test keeps the two in step.

export const ERRORS = {
  // Input the caller can fix (4xx).
  INVALID_KEY: { status: 400, retryable: false, summary: 'The entity key is neither a valid URN nor a valid ThemisDB key.' },
  INVALID_JSON: { status: 400, retryable: false, summary: 'The request body is not valid JSON.' },
  INVALID_BODY: { status: 400, retryable: false, summary: 'The JSON body lacks a required field or has a field of the wrong type.' },
  INVALID_BLOB: { status: 400, retryable: false, summary: 'The `blob` string is not itself valid JSON.' },
  INVALID_QUERY: { status: 400, retryable: false, summary: 'A /query or /vector/search body is malformed.' },
  INVALID_PARAMETER: { status: 400, retryable: false, summary: 'A query-string parameter is malformed or out of range.' },
  ENTITY_NOT_FOUND: { status: 404, retryable: false, summary: 'No entity is stored under this key.' },
  ROUTE_NOT_FOUND: { status: 404, retryable: false, summary: 'No such path in the API.' },
  METHOD_NOT_ALLOWED: { status: 405, retryable: false, summary: 'The path exists but not for this HTTP method.' },
  PAYLOAD_TOO_LARGE: { status: 413, retryable: false, summary: 'The body or blob exceeds the configured size limit.' },
  // The server's side (5xx).
  INTERNAL: { status: 500, retryable: false, summary: 'An unexpected error; the server logged it at warn level.' },
  STORAGE_UNAVAILABLE: { status: 503, retryable: true, summary: 'The storage engine is not open (starting or stopping).' },
} as const satisfies Record<string, { status: number; retryable: boolean; summary: string }>;

export type ErrorCode = keyof typeof ERRORS;

export class ThemisError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'ThemisError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.details = details;
  }
}

export interface ErrorBody {
  error: true;
  message: string;
  status_code: number;
  code: string;
  [extra: string]: unknown;
}

/** The ThemisDB error shape plus our stable code; unknown errors become INTERNAL. */
export function errorBody(err: unknown): ErrorBody {
  if (err instanceof ThemisError) {
    return { ...err.details, error: true, message: err.message, status_code: err.status, code: err.code };
  }
  return { error: true, message: 'internal error', status_code: 500, code: 'INTERNAL' };
}
