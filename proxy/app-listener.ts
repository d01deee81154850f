// The app port: plaintext HTTP/1.1 and h2c (prior knowledge) on one loopback port. The
// first bytes of a connection decide: the HTTP/2 connection preface goes to an h2c server,
// anything else to the HTTP/1.1 server. Both call the same request handler.
// Connections that dawdle are closed, the same way for both protocols (ConnectionLimits):
// a new connection's first request headers within headersTimeoutMs of its accept (then, on
// HTTP/1.1, Node's headersTimeout from each request's start); the whole request within
// requestTimeoutMs (HTTP/1.1: Node's requestTimeout, 408; HTTP/2: each stream's body, 408
// REQUEST_TIMEOUT and a reset); no request in progress for idleTimeoutMs (HTTP/1.1 keep-alive,
// an HTTP/2 session without streams: GOAWAY); at most maxConnections at once.
import http from 'node:http';
import http2 from 'node:http2';
import { chmodSync, chownSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import tls, { type SecureContextOptions, type TLSSocket } from 'node:tls';
import { limitBody } from '../src/body-limits.js';
import type { ConnectionLimits } from '../src/config/sidecar.js';
import type { AnyRequest, AnyResponse } from './respond.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n');

export type Handler = (req: AnyRequest, res: AnyResponse) => void;

/** The app port's defaults (src/config/sidecar.ts). */
export const APP_LIMITS: ConnectionLimits = Object.freeze({ headersTimeoutMs: 10_000, requestTimeoutMs: 60_000, idleTimeoutMs: 65_000, maxConnections: 4096 });

/** Which limit closed a connection or refused a request (the themis_listener_limits_total label). */
export type Limit = 'max_connections' | 'first_request_timeout' | 'idle_timeout' | 'body_timeout';

/**
 * How often Node's HTTP/1.1 server looks for connections past headersTimeout or requestTimeout
 * (30 s by default, far coarser than the limits themselves).
 */
export function checkEvery(l: ConnectionLimits): number {
  return Math.max(50, Math.min(1000, Math.floor(Math.min(l.headersTimeoutMs, l.requestTimeoutMs) / 4)));
}

/** The timer of a connection's first request, on the socket (an HTTP/2 session's socket proxy reads it through). */
const FIRST_REQUEST = Symbol('themis.firstRequest');
/** The admitted peer, on the TLS socket (an HTTP/2 session's socket proxy reads it through). */
const PEER = Symbol('themis.appPeer');
/** Set on connections of the app socket (app.socket), which are plaintext in every mode. */
const UNIX = Symbol('themis.appUnix');
type Tracked = { [FIRST_REQUEST]?: NodeJS.Timeout; [PEER]?: unknown; [UNIX]?: true };

/** app.tls: the TLS options and how a connection's client certificate is admitted. */
export interface AppTls {
  options: SecureContextOptions;
  /** The peer to serve, or undefined to close the connection (the refusal already reported). */
  admit(socket: TLSSocket): unknown;
  /** A handshake that failed before admission. */
  refused?(reason: string, message: string, address: string | undefined): void;
}
const firstRequestArrived = (socket: object): void => clearTimeout((socket as Tracked)[FIRST_REQUEST]);

export class AppServer {
  readonly server: net.Server;
  /** The same API on a Unix-domain socket (app.socket), when configured. */
  private readonly unixServer: net.Server;
  private unixListening = false;
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly sockets = new Set<net.Socket>();
  /** app.tls: admitted connections, to close those whose certificate is revoked. */
  private readonly tlsSockets = new Set<TLSSocket>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();

  constructor(handler: Handler, limits: ConnectionLimits = APP_LIMITS, onLimit: (limit: Limit) => void = () => undefined, o: { tls?: AppTls } = {}) {
    this.h1 = http.createServer(
      {
        keepAliveTimeout: limits.idleTimeoutMs,
        headersTimeout: limits.headersTimeoutMs,
        requestTimeout: limits.requestTimeoutMs,
        connectionsCheckingInterval: checkEvery(limits),
      },
      handler,
    );
    this.h1.on('request', (req: http.IncomingMessage) => firstRequestArrived(req.socket));
    // This server never calls listen() (connections are handed to it), but Node starts its
    // connection tracking — needed by closeIdleConnections(), headersTimeout and requestTimeout — on 'listening'.
    this.h1.emit('listening');
    this.h2 = http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, handler);
    // Before Node's own listener, which hands the stream to the handler (it may read the body at once).
    this.h2.prependListener('stream', (stream: http2.ServerHttp2Stream) => limitBody(stream, { timeoutMs: limits.requestTimeoutMs, onTimeout: () => onLimit('body_timeout') }));
    this.h2.on('session', (s) => {
      this.sessions.add(s);
      // Idle: no stream open for idleTimeoutMs (until the first stream, the first-request timer runs).
      let open = 0;
      let idle: NodeJS.Timeout | undefined;
      s.on('stream', (stream: http2.ServerHttp2Stream) => {
        firstRequestArrived(s.socket);
        open++;
        clearTimeout(idle);
        stream.once('close', () => {
          if (--open > 0 || s.closed || s.destroyed) return;
          idle = setTimeout(() => {
            onLimit('idle_timeout');
            s.close();
          }, limits.idleTimeoutMs);
          idle.unref();
        });
      });
      s.once('close', () => {
        clearTimeout(idle);
        this.sessions.delete(s);
      });
    });
    /** Counts the connection and starts its first-request timer (the limits), for either protocol. */
    const track = (socket: net.Socket) => {
      this.sockets.add(socket);
      // Silence, or headers trickled byte by byte (slowloris), end here whatever the protocol.
      const firstRequest = setTimeout(() => {
        onLimit('first_request_timeout');
        socket.destroy();
      }, limits.headersTimeoutMs);
      firstRequest.unref();
      (socket as Tracked)[FIRST_REQUEST] = firstRequest;
      socket.once('close', () => {
        clearTimeout(firstRequest);
        this.sockets.delete(socket);
      });
      socket.on('error', () => socket.destroy());
    };
    /** Plaintext: the first bytes decide the protocol. */
    const accept = (socket: net.Socket) => {
      track(socket);
      socket.once('data', (first: Buffer) => {
        socket.pause();
        socket.unshift(first);
        const n = Math.min(first.length, PREFACE.length);
        if (first.subarray(0, n).equals(PREFACE.subarray(0, n))) {
          // The HTTP/2 session takes the bytes already buffered, then reads the socket itself.
          this.h2.emit('connection', socket);
        } else {
          this.h1.emit('connection', socket);
          socket.resume();
        }
      });
    };
    if (o.tls) {
      const appTls = o.tls;
      // TLS 1.3 with a client certificate: ALPN decides the protocol, admission the peer.
      this.server = tls.createServer(
        { ...appTls.options, requestCert: true, rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1'], handshakeTimeout: limits.headersTimeoutMs, noDelay: true },
        (socket: TLSSocket) => {
          track(socket);
          const peer = appTls.admit(socket);
          if (peer === undefined) return void socket.destroy();
          (socket as Tracked)[PEER] = peer;
          this.tlsSockets.add(socket);
          socket.once('close', () => this.tlsSockets.delete(socket));
          if (socket.alpnProtocol === 'h2') this.h2.emit('connection', socket);
          else this.h1.emit('connection', socket);
        },
      );
      this.server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => appTls.refused?.(err.code ?? 'tls_error', err.message, socket.remoteAddress));
    } else {
      this.server = net.createServer({ noDelay: true }, accept);
    }
    this.unixServer = net.createServer((socket) => {
      (socket as Tracked)[UNIX] = true;
      accept(socket);
    });
    // Past the cap, Node closes a new connection as soon as it is accepted (per listener).
    for (const srv of [this.server, this.unixServer]) {
      srv.maxConnections = limits.maxConnections;
      srv.on('drop', () => onLimit('max_connections'));
    }
  }

  /** The admitted peer of a request's TLS connection (app.tls), or undefined (plaintext). */
  static peerOf(socket: object | null | undefined): unknown {
    return socket ? (socket as Tracked)[PEER] : undefined;
  }

  /** Whether a request's connection came through the app socket. */
  static viaUnixSocket(socket: object | null | undefined): boolean {
    return Boolean(socket && (socket as Tracked)[UNIX]);
  }

  /** app.tls: new handshakes use `options` (certificate rotation, new CRLs). */
  rotate(options: SecureContextOptions): void {
    if (this.server instanceof tls.Server) this.server.setSecureContext(options);
  }

  /** app.tls: closes the connections whose peer no longer passes `stillValid`; returns how many. */
  closeWhere(stillValid: (peer: unknown) => boolean): number {
    let n = 0;
    for (const s of this.tlsSockets) {
      if (!stillValid((s as Tracked)[PEER])) {
        s.destroy();
        n++;
      }
    }
    return n;
  }

  listen(port: number, host: string): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  /**
   * Listens on a Unix-domain socket file, then gives it `mode` and the owner and group given.
   * A socket file left by a process that is gone is replaced; a live one is an error (EADDRINUSE).
   * A worker (`shared`) leaves that to its control process, which did it before starting the
   * workers: several probing at once could delete the socket another had just opened.
   */
  async listenUnix(path: string, access: { mode: number; uid?: number; gid?: number }, shared = false): Promise<void> {
    if (!shared) await removeStaleSocket(path);
    await new Promise<void>((resolve, reject) => {
      this.unixServer.once('error', reject);
      this.unixServer.listen(path, () => {
        this.unixServer.off('error', reject);
        resolve();
      });
    });
    this.unixListening = true;
    // Until chmod, the file has the umask's bits: the sidecar's units run with UMask=0077.
    chmodSync(path, access.mode);
    if (access.uid !== undefined || access.gid !== undefined) chownSync(path, access.uid ?? -1, access.gid ?? -1);
  }

  /**
   * Stops accepting, lets in-flight requests finish (HTTP/2 sessions get GOAWAY, idle
   * HTTP/1.1 connections close), and destroys whatever is left after `drainMs`.
   */
  async close(drainMs = 0): Promise<void> {
    const closed = Promise.all([
      new Promise<void>((r) => (this.server.listening ? this.server.close(() => r()) : r())),
      new Promise<void>((r) => (this.unixListening ? this.unixServer.close(() => r()) : r())),
    ]);
    for (const s of this.sessions) s.close();
    this.h1.closeIdleConnections();
    const timer = setTimeout(() => {
      for (const s of this.sockets) s.destroy();
    }, drainMs);
    const idle = setInterval(() => this.h1.closeIdleConnections(), 50);
    await closed;
    clearTimeout(timer);
    clearInterval(idle);
    this.h1.close(() => undefined); // stops the connection-tracking timer 'listening' started
  }
}

/** Removes a socket file nobody listens on any more (a crashed sidecar's); leaves anything else. */
export async function removeStaleSocket(path: string): Promise<void> {
  let isSocket = false;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // no file
  }
  if (!isSocket) return; // listen() reports EADDRINUSE: not ours to delete
  const live = await new Promise<boolean>((resolve) => {
    const c = net.connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (!live) unlinkSync(path);
}
