// The one place where answers and errors become HTTP responses: JSON bodies, ThemisDB's
// error shape `{error, message, status_code, code}`, and unknown errors → 500 INTERNAL + warn.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ThemisError, errorBody } from '../src/errors.js';
import type { Logger } from '../src/log.js';

/** What a handler returns: a value to serialize, or JSON text that is already serialized. */
/** `streamed`: the handler wrote the response itself (GET /changefeed/stream). */
export type Answer = { status: number; body: unknown } | { status: number; json: string } | { streamed: true };

export function json(status: number, body: unknown): Answer {
  return { status, body };
}

/** Turns a LevelDB failure we understand into a typed error; anything else stays as it is. */
export function classify(err: unknown): unknown {
  if (err instanceof ThemisError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'LEVEL_DATABASE_NOT_OPEN' || code === 'LEVEL_DATABASE_NOT_CLOSED') {
    return new ThemisError('STORAGE_UNAVAILABLE', 'the storage engine is not open; retry when the node is up');
  }
  return err;
}

export function sendAnswer(req: IncomingMessage, res: ServerResponse, answer: Answer, closing: boolean): void {
  if ('streamed' in answer) return;
  const text = 'json' in answer ? answer.json : JSON.stringify(answer.body);
  write(res, answer.status, text, {}, closing);
}

export function sendError(req: IncomingMessage, res: ServerResponse, error: unknown, log: Logger, closing: boolean): void {
  const err = classify(error);
  const body = errorBody(err);
  const headers: Record<string, string> = {};
  if (err instanceof ThemisError) {
    log.debug({ code: err.code, method: req.method }, 'request rejected');
    const allow = err.details?.allow;
    if (err.code === 'METHOD_NOT_ALLOWED' && typeof allow === 'string') headers.allow = allow;
  } else {
    log.warn({ err, method: req.method }, 'unexpected error while serving a request');
  }
  write(res, body.status_code, JSON.stringify(body), headers, closing);
}

function write(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string>,
  closing: boolean,
): void {
  if (res.headersSent || res.destroyed) return;
  const out: Record<string, string | number> = {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text, 'utf8'),
  };
  // While the node shuts down, no connection is kept for a next request.
  if (closing) out.connection = 'close';
  res.writeHead(status, out);
  res.end(text);
}
