// The app port: plaintext HTTP/1.1 and h2c (prior knowledge) on one loopback port. The
// first bytes of a connection decide: the HTTP/2 connection preface goes to an h2c server,
// anything else to the HTTP/1.1 server. Both call the same request handler.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AnyRequest, AnyResponse } from './respond.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n');

export type Handler = (req: AnyRequest, res: AnyResponse) => void;

export class AppServer {
  readonly server: net.Server;
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();

  constructor(handler: Handler) {
    this.h1 = http.createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, handler);
    // This server never calls listen() (connections are handed to it), but Node starts its
    // connection tracking — needed by closeIdleConnections() and headersTimeout — on 'listening'.
    this.h1.emit('listening');
    this.h2 = http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, handler);
    this.h2.on('session', (s) => {
      this.sessions.add(s);
      s.once('close', () => this.sessions.delete(s));
    });
    this.server = net.createServer({ noDelay: true }, (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      socket.on('error', () => socket.destroy());
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
    });
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
   * Stops accepting, lets in-flight requests finish (HTTP/2 sessions get GOAWAY, idle
   * HTTP/1.1 connections close), and destroys whatever is left after `drainMs`.
   */
  async close(drainMs = 0): Promise<void> {
    const closed = new Promise<void>((r) => this.server.close(() => r()));
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
