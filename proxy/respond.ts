// The only place the sidecar writes answers: errors become `{error, message, status_code,
// code}` (unknown ones → 500 and a warn log); upstream answers stream through with
// hop-by-hop headers removed and the mesh's own headers (who served, at which epoch) added.
import type { IncomingMessage, ServerResponse, OutgoingHttpHeaders } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { ThemisError, errorBody } from '../src/errors.js';
import type { Logger } from '../src/log.js';
import { endToEndHeaders } from './headers.js';
import type { UpstreamResponse } from './upstream.js';

export type AnyRequest = IncomingMessage | Http2ServerRequest;
export type AnyResponse = ServerResponse | Http2ServerResponse;

export function sendJson(req: AnyRequest, res: AnyResponse, status: number, body: unknown, headers: OutgoingHttpHeaders = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  const out: OutgoingHttpHeaders = { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) };
  // An HTTP/1.1 request whose body we did not read to the end cannot share its connection.
  if (req.httpVersionMajor === 1 && !(req as IncomingMessage).complete) out.connection = 'close';
  (res as ServerResponse).writeHead(status, out);
  res.end(text);
}

export function sendError(req: AnyRequest, res: AnyResponse, err: unknown, log: Logger, headers: OutgoingHttpHeaders = {}): void {
  const body = errorBody(err);
  if (err instanceof ThemisError) {
    log.debug({ code: err.code, method: req.method }, 'request rejected');
    if (err.code === 'METHOD_NOT_ALLOWED' && typeof err.details?.allow === 'string') headers = { ...headers, allow: err.details.allow };
  } else {
    log.warn({ err, method: req.method }, 'unexpected error while serving a request');
  }
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(req, res, body.status_code, body, headers);
}

/** Streams an upstream answer to the client; a failure mid-body resets the client's stream. */
export function sendUpstream(res: AnyResponse, up: UpstreamResponse, headers: OutgoingHttpHeaders): void {
  if (res.destroyed || (res as Http2ServerResponse).stream?.destroyed) {
    up.body.destroy();
    return;
  }
  (res as ServerResponse).writeHead(up.status, { ...endToEndHeaders(up.headers, false), ...headers });
  // pipe() rather than stream.pipeline(): pipeline builds an AbortController (and a
  // DOMException on finish) per call, a measurable cost on the hot path. The answer is ended
  // only when the upstream body arrived whole; a cut one resets the client's stream instead.
  up.body.pipe(res as ServerResponse, { end: false });
  up.body.once('close', () => {
    if (up.complete()) res.end();
    else res.destroy();
  });
  up.body.once('error', () => res.destroy());
  res.once('close', () => {
    if (!up.body.readableEnded) up.body.destroy();
  });
}
