// The only place the sidecar writes answers: errors become `{error, message, status_code,
// code}` (unknown ones → 500 and a warn log); upstream answers stream through with
// hop-by-hop headers removed and the mesh's own headers (who served, at which epoch) added.
import type { IncomingMessage, ServerResponse, OutgoingHttpHeaders } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse, ServerHttp2Stream } from 'node:http2';
import type { Writable } from 'node:stream';
import { ThemisError, errorBody, type ErrorBody } from '../src/errors.js';
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

/** The JSON answer for a failed request (unexpected errors are logged); `headers` are added. */
function errorAnswer(err: unknown, method: string | undefined, log: Logger, headers: OutgoingHttpHeaders): { body: ErrorBody; headers: OutgoingHttpHeaders } {
  const body = errorBody(err);
  if (err instanceof ThemisError) {
    log.debug({ code: err.code, method }, 'request rejected');
    if (err.code === 'METHOD_NOT_ALLOWED' && typeof err.details?.allow === 'string') headers = { ...headers, allow: err.details.allow };
  } else {
    log.warn({ err, method }, 'unexpected error while serving a request');
  }
  return { body, headers };
}

export function sendError(req: AnyRequest, res: AnyResponse, err: unknown, log: Logger, headers: OutgoingHttpHeaders = {}): void {
  const a = errorAnswer(err, req.method, log, headers);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(req, res, a.body.status_code, a.body, a.headers);
}

// The same answers on the core HTTP/2 API (the mesh port's shard-peer entity path).

// A stream the peer has closed (RST_STREAM) may not be destroyed yet, and respond() throws on it.
const gone = (stream: ServerHttp2Stream) => stream.destroyed || stream.closed;

export function respondJson(stream: ServerHttp2Stream, status: number, body: unknown, headers: OutgoingHttpHeaders = {}): void {
  if (stream.headersSent || gone(stream)) return;
  const text = JSON.stringify(body);
  stream.respond({ ...headers, ':status': status, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  stream.end(text);
}

export function respondError(stream: ServerHttp2Stream, method: string, err: unknown, log: Logger, headers: OutgoingHttpHeaders = {}): void {
  const a = errorAnswer(err, method, log, headers);
  if (stream.headersSent) {
    stream.destroy();
    return;
  }
  respondJson(stream, a.body.status_code, a.body, a.headers);
}

export function respondUpstream(stream: ServerHttp2Stream, up: UpstreamResponse, headers: OutgoingHttpHeaders): void {
  if (gone(stream)) {
    up.body.destroy();
    return;
  }
  try {
    stream.respond({ ...endToEndHeaders(up.headers, false), ...headers, ':status': up.status });
  } catch (err) {
    up.body.destroy(); // it would hold its storage-node connection until the body timeout
    throw err;
  }
  relay(up, stream, () => stream.end(), () => stream.destroy(cut()));
}

/**
 * Resetting with an error sends RST_STREAM(INTERNAL_ERROR). Without one, Node sends NO_ERROR,
 * which the peer's client takes for a complete answer.
 */
const cut = () => new Error('the upstream answer was cut short');

/** Streams an upstream answer to the client; a failure mid-body resets the client's stream. */
export function sendUpstream(res: AnyResponse, up: UpstreamResponse, headers: OutgoingHttpHeaders): void {
  if (res.destroyed || (res as Http2ServerResponse).stream?.destroyed) {
    up.body.destroy();
    return;
  }
  (res as ServerResponse).writeHead(up.status, { ...endToEndHeaders(up.headers, false), ...headers });
  relay(up, res as ServerResponse, () => res.end(), () => res.destroy(cut()));
}

/**
 * Pipes an upstream body to the client. pipe() rather than stream.pipeline(): pipeline builds
 * an AbortController (and a DOMException on finish) per call, a measurable cost on the hot
 * path. The answer is ended only when the upstream body arrived whole; a cut one resets the
 * client's stream instead, and a client that goes away stops the upstream body.
 */
function relay(up: UpstreamResponse, sink: Writable, end: () => void, destroy: () => void): void {
  up.body.pipe(sink, { end: false });
  up.body.once('close', () => (up.complete() ? end() : destroy()));
  up.body.once('error', destroy);
  sink.once('close', () => {
    if (!up.body.readableEnded) up.body.destroy();
  });
}
