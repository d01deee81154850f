// How requests reach a sidecar. Two kinds, one interface:
//   local  — the app port on this host: HTTP/1.1 keep-alive on undici's pool (TCP or the app socket);
//   mesh   — a sidecar's mesh port from another host: HTTP/2 over TLS 1.3 with a client
//            certificate from the client CA (node:http2, one session, reopened when it closes).
// A transport only moves bytes: errors from the network become CONNECTION_FAILED, and the
// caller's AbortSignal cancels the exchange. Retries and deadlines are the client's (client.ts).
import http2 from 'node:http2';
import { PassThrough } from 'node:stream';
import { Pool } from 'undici';
import { ThemisClientError } from './errors.js';

export interface TransportRequest {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  /** Path and query string, already encoded. */
  path: string;
  body?: string;
  signal: AbortSignal;
}

export interface TransportResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The body, as chunks (read it once: text() or stream). */
  body: AsyncIterable<Buffer | string>;
}

export interface Transport {
  request(r: TransportRequest): Promise<TransportResponse>;
  close(): Promise<void>;
}

export async function readText(r: TransportResponse): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of r.body) parts.push(typeof c === 'string' ? Buffer.from(c) : c);
  return Buffer.concat(parts).toString('utf8');
}

function connectionFailed(e: unknown, where: string): ThemisClientError {
  const code = (e as { code?: unknown })?.code;
  return new ThemisClientError('CONNECTION_FAILED', `no answer from ${where}: ${typeof code === 'string' ? `${code} ` : ''}${(e as Error)?.message ?? String(e)}`, { cause: e });
}

export interface LocalTransportOptions {
  /** The sidecar's app port, e.g. http://127.0.0.1:7080 (or https:// with app.tls). */
  url: string;
  /** The app socket (app.socket.path) instead of TCP; `url` then only names the Host. */
  socketPath?: string;
  /** Connections kept to the sidecar (default 16). */
  connections?: number;
}

/** HTTP/1.1 keep-alive to the local sidecar, on undici's pool. */
export class LocalTransport implements Transport {
  private readonly pool: Pool;
  private readonly where: string;

  constructor(o: LocalTransportOptions) {
    const u = new URL(o.url);
    this.where = o.socketPath ?? u.host;
    // Our own deadlines govern (client.ts); undici's would cut long polls and streams.
    this.pool = new Pool(u.origin, { connections: o.connections ?? 16, headersTimeout: 0, bodyTimeout: 0, ...(o.socketPath ? { socketPath: o.socketPath } : {}) });
  }

  async request(r: TransportRequest): Promise<TransportResponse> {
    try {
      const res = await this.pool.request({
        method: r.method,
        path: r.path,
        signal: r.signal,
        headers: r.body === undefined ? {} : { 'content-type': 'application/json' },
        ...(r.body === undefined ? {} : { body: r.body }),
      });
      return { status: res.statusCode, headers: res.headers, body: res.body };
    } catch (e) {
      if (r.signal.aborted) throw r.signal.reason;
      throw connectionFailed(e, this.where);
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

export interface MeshTransportOptions {
  /** A sidecar's mesh port, e.g. https://10.0.0.5:7443. */
  url: string;
  /** The client certificate chain (PEM, leaf first) and its key, issued by the client CA. */
  cert: string;
  key: string;
  /** The cluster's root certificate (PEM), to verify the sidecar. */
  ca: string;
  /** The name the sidecar's certificate is checked against (default: the url's host). */
  servername?: string;
}

/** HTTP/2 over TLS 1.3 with a client certificate, to a sidecar's mesh port. */
export class MeshTransport implements Transport {
  private session: http2.ClientHttp2Session | undefined;
  private active = 0;
  private closed = false;

  constructor(private readonly o: MeshTransportOptions) {
    const u = new URL(o.url);
    if (u.protocol !== 'https:') throw new ThemisClientError('INVALID_ARGUMENT', `mesh.url must be https://HOST:PORT, not ${o.url}`);
  }

  private connect(): http2.ClientHttp2Session {
    const live = this.session;
    if (live && !live.closed && !live.destroyed) return live;
    const s = http2.connect(this.o.url, {
      cert: this.o.cert,
      key: this.o.key,
      ca: this.o.ca,
      minVersion: 'TLSv1.3',
      ...(this.o.servername ? { servername: this.o.servername } : {}),
    });
    // Errors surface on the streams; a session that ends is replaced on the next request.
    s.on('error', () => undefined);
    s.on('close', () => {
      if (this.session === s) this.session = undefined;
    });
    s.on('goaway', () => {
      if (this.session === s) this.session = undefined;
    });
    this.session = s;
    return s;
  }

  /** The session keeps the process alive only while a stream is open. */
  private hold(s: http2.ClientHttp2Session, delta: 1 | -1): void {
    this.active += delta;
    if (s.destroyed) return;
    if (this.active > 0) s.ref();
    else s.unref();
  }

  request(r: TransportRequest): Promise<TransportResponse> {
    if (this.closed) return Promise.reject(new ThemisClientError('INVALID_ARGUMENT', 'the client is closed'));
    const s = this.connect();
    const where = this.o.url;
    return new Promise((resolve, reject) => {
      const headers: http2.OutgoingHttpHeaders = { ':method': r.method, ':path': r.path };
      if (r.body !== undefined) headers['content-type'] = 'application/json';
      let stream: http2.ClientHttp2Stream;
      try {
        stream = s.request(headers, { endStream: r.body === undefined, signal: r.signal });
      } catch (e) {
        reject(connectionFailed(e, where));
        return;
      }
      this.hold(s, 1);
      let released = false;
      const release = () => {
        if (!released) this.hold(s, -1);
        released = true;
      };
      stream.on('close', release);
      stream.on('error', (e) => {
        release();
        reject(r.signal.aborted ? r.signal.reason : connectionFailed(e, where));
      });
      stream.on('close', () => {
        // Closed before any answer: a reset stream or a session gone (GOAWAY, socket closed).
        reject(r.signal.aborted ? r.signal.reason : connectionFailed(new Error(`stream closed without an answer (code ${stream.rstCode})`), where));
      });
      stream.on('response', (h) => {
        const { ':status': status, ...rest } = h;
        resolve({ status: Number(status), headers: rest as TransportResponse['headers'], body: answerBody(stream) });
      });
      if (r.body !== undefined) stream.end(r.body);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const s = this.session;
    this.session = undefined;
    if (s && !s.destroyed) await new Promise<void>((done) => s.close(() => done()));
  }
}

/**
 * The answer's body as a stream that is safe to iterate with `for await` whenever the caller
 * gets to it. The HTTP/2 stream itself is not: since Node 24, end-of-stream takes a stream whose
 * answer arrived whole before it was read for one closed early (ERR_STREAM_PREMATURE_CLOSE) and
 * the answer is lost (src/read-whole.ts). pipe() reads it with events, from the moment the
 * headers arrive; a reset stream ends the body with its error, and a body given up cancels it.
 */
function answerBody(stream: http2.ClientHttp2Stream): PassThrough {
  const body = new PassThrough();
  // Ended only once the stream has closed cleanly: a reset one also emits 'end', after part of it.
  stream.pipe(body, { end: false });
  stream.once('close', () => {
    if (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) body.destroy(Object.assign(new Error(`the answer was reset (code ${stream.rstCode})`), { code: 'ERR_HTTP2_STREAM_ERROR' }));
    else if (stream.readableEnded) body.end();
    else stream.once('end', () => body.end());
  });
  // A caller that stops reading (breaks out of `for await`) ends the exchange, as before.
  body.once('close', () => {
    if (!stream.readableEnded && !stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
  });
  return body;
}
