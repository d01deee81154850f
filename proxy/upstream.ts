// The interface between the request path and whatever answers it — the local storage
// node over plaintext HTTP/1.1 or a peer sidecar over the mesh — and the mapping of
// upstream failures to stable codes (503 unavailable, 504 timeout, 502 protocol).
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { ThemisError } from '../src/errors.js';
import { readWhole } from '../src/read-whole.js';
import type { RequestObs } from './observability/request-record.js';
import type { StageSpan } from './observability/tracing.js';

export interface UpstreamRequest {
  method: string;
  /** Path with query string, as the client sent it. */
  path: string;
  headers: OutgoingHttpHeaders;
  /** A buffered body, a stream to pipe, or nothing. */
  body?: Buffer | Readable;
  /** For the mesh: the body's SHA-256 (hex); the peer session signs the request with it. */
  contentSha256?: string;
  /** Extra time the upstream may take on purpose (a change-feed long poll), on top of the request timeout. */
  extraTimeoutMs?: number;
  /** Replaces the request timeout (a scatter-gather shard call has its own). */
  timeoutMs?: number;
  /** The app's or peer's request this one serves: its time upstream, retries and trace (spans, traceparent). */
  obs?: RequestObs;
  /** The span this exchange's spans go under (default: the request's server span). */
  parent?: StageSpan;
}

export interface UpstreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Readable;
  /** After the body closed: did it arrive whole? (A reset stream may still emit 'end'.) */
  complete(): boolean;
}

export interface Upstream {
  readonly name: string;
  request(req: UpstreamRequest): Promise<UpstreamResponse>;
}

const UNAVAILABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN']);

/** Maps a transport error to UPSTREAM_UNAVAILABLE / UPSTREAM_TIMEOUT / UPSTREAM_PROTOCOL_ERROR. */
export function upstreamError(err: unknown, upstream: string): ThemisError {
  if (err instanceof ThemisError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  if (code === 'ETIMEDOUT' || code === 'UPSTREAM_TIMEOUT') {
    return new ThemisError('UPSTREAM_TIMEOUT', `${upstream} did not answer in time`, { upstream });
  }
  if (UNAVAILABLE.has(code)) {
    return new ThemisError('UPSTREAM_UNAVAILABLE', `${upstream} is unavailable (${code})`, { upstream });
  }
  return new ThemisError('UPSTREAM_PROTOCOL_ERROR', `${upstream} failed mid-request (${code || (err as Error)?.message || 'unknown'})`, { upstream });
}

/** A write's answer (the stored entity's key and metadata) is read whole up to this. */
export const MAX_WRITE_ANSWER_BYTES = 1024 * 1024;

/**
 * Reads a whole upstream answer body, refusing one larger than `limit` bytes or one that broke
 * off (an HTTP/2 stream whose session went away part-way still emits 'end'). Not by async
 * iteration: see read-whole.ts.
 */
export async function readAnswer(up: UpstreamResponse, limit: number): Promise<Buffer> {
  const body = await readWhole(up.body, limit);
  if (!up.complete()) throw new Error('the answer broke off before its end');
  return body;
}

export class TimeoutError extends Error {
  readonly code = 'UPSTREAM_TIMEOUT';
}
