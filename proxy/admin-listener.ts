// The admin port: /metrics (Prometheus text), /healthz (the process answers), /readyz
// (certificate valid, topology loaded, local storage node answering) and /console (the web
// console, console/console-routes.ts; off unless admin.console). Its connections are
// limited like the app port's, by Node's own HTTP/1.1 timers (which also close a new
// connection that sends nothing within headersTimeout).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { ConnectionLimits } from '../src/config/sidecar.js';
import { checkEvery } from './app-listener.js';
import type { ConsoleRoutes } from './console/console-routes.js';

/** The admin port's defaults (src/config/sidecar.ts). */
export const ADMIN_LIMITS: ConnectionLimits = Object.freeze({ headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, idleTimeoutMs: 65_000, maxConnections: 64 });

export interface Readiness {
  ready: boolean;
  checks: Record<string, { ok: boolean; detail?: string }>;
}

export class AdminServer {
  readonly server: http.Server;

  constructor(registry: Pick<Registry, 'metrics' | 'contentType'>, readiness: () => Promise<Readiness>, limits: ConnectionLimits = ADMIN_LIMITS, onDrop: () => void = () => undefined, console?: ConsoleRoutes) {
    const options: http.ServerOptions = {
      keepAliveTimeout: limits.idleTimeoutMs,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: checkEvery(limits),
    };
    this.server = http.createServer(options, (req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const reply = (status: number, body: string, type = 'application/json') => {
        res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
        res.end(body);
      };
      if (req.method !== 'GET') return reply(405, JSON.stringify({ error: true, code: 'METHOD_NOT_ALLOWED' }));
      if (console?.handle(path!, req.headers.host, res)) return;
      if (path === '/metrics') {
        registry.metrics().then((text) => reply(200, text, registry.contentType), () => reply(500, '# metrics unavailable\n', 'text/plain'));
      } else if (path === '/healthz') {
        reply(200, JSON.stringify({ status: 'ok' }));
      } else if (path === '/readyz') {
        readiness().then((r) => reply(r.ready ? 200 : 503, JSON.stringify(r)), () => reply(503, JSON.stringify({ ready: false })));
      } else {
        reply(404, JSON.stringify({ error: true, code: 'ROUTE_NOT_FOUND' }));
      }
    });
    this.server.maxConnections = limits.maxConnections;
    this.server.on('drop', onDrop);
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve(this.server.address() as AddressInfo));
    });
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}
