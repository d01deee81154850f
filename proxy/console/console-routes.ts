// The admin port's web console: GET /console (the page), /console/console.js and .css, and
// /console/status.json (what `themis-admin status --json` prints, read by src/status/). Off by
// default (404 CONSOLE_DISABLED); read-only; every answer carries a strict CSP, nosniff and no
// caching, and a Host header that is not loopback is refused (a DNS-rebinding page reads nothing).
import type { ServerResponse } from 'node:http';
import { ERRORS, type ErrorCode } from '../../src/errors.js';
import { isLoopbackHost } from '../../src/config/validate.js';
import type { ClusterStatus } from '../../src/status/cluster-status.js';
import type { ConsoleAsset } from './console-assets.js';

export const CONSOLE_PREFIX = '/console';

/** No inline script or style, nothing from elsewhere, no framing; fetch only to this origin. */
export const CONSOLE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store',
});

export interface ConsoleOptions {
  /** admin.console; false: every /console path answers 404 CONSOLE_DISABLED. */
  enabled: boolean;
  /** The page's files (console-assets.ts); required when enabled. */
  assets?: ReadonlyMap<string, ConsoleAsset>;
  /** Reads the cluster's state (src/status/read-status.ts against the sidecar's etcd). */
  read: () => Promise<ClusterStatus>;
  /** Monotonic milliseconds, for the cache. */
  monotonic: () => number;
  /** A read is shared by every request within this long (open pages poll every 2 s). */
  cacheMs?: number;
}

/** `host[:port]` of a Host header, without the port (IPv6 in brackets kept bare). */
function hostOf(header: string | undefined): string {
  const h = (header ?? '').trim().toLowerCase();
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(h);
  if (v6) return v6[1]!;
  return h.replace(/:\d+$/, '');
}

export class ConsoleRoutes {
  private last: { at: number; value: Promise<ClusterStatus> } | undefined;

  constructor(private readonly o: ConsoleOptions) {
    if (o.enabled && !o.assets) throw new Error('console enabled without its assets');
  }

  /** True when `path` is the console's (and the answer is written); false: not a console path. */
  handle(path: string, host: string | undefined, res: ServerResponse): boolean {
    if (path !== CONSOLE_PREFIX && !path.startsWith(`${CONSOLE_PREFIX}/`)) return false;
    const fail = (code: ErrorCode, message: string) => this.send(res, ERRORS[code].status, 'application/json', JSON.stringify({ error: true, message, status_code: ERRORS[code].status, code }));
    if (!this.o.enabled) {
      fail('CONSOLE_DISABLED', 'the web console is off; set admin.console to true in the sidecar config and restart it');
      return true;
    }
    if (!isLoopbackHost(hostOf(host))) {
      fail('HOST_NOT_ALLOWED', 'the console answers only requests addressed to a loopback host (127.0.0.1, localhost, [::1])');
      return true;
    }
    const name = path === CONSOLE_PREFIX || path === `${CONSOLE_PREFIX}/` ? 'console.html' : path.slice(CONSOLE_PREFIX.length + 1);
    if (name === 'status.json') {
      this.status().then(
        (s) => this.send(res, 200, 'application/json', JSON.stringify(s)),
        (e: Error) => fail('CLUSTER_STATUS_UNAVAILABLE', `cannot read the cluster's state: ${e.message}`),
      );
      return true;
    }
    const asset = this.o.assets!.get(name);
    if (!asset) fail('ROUTE_NOT_FOUND', `no such console file: ${name.slice(0, 64)}`);
    else this.send(res, 200, asset.type, asset.body);
    return true;
  }

  /** The cluster's state, one etcd read per cacheMs however many pages poll. */
  private status(): Promise<ClusterStatus> {
    const now = this.o.monotonic();
    if (this.last && now - this.last.at < (this.o.cacheMs ?? 1000)) return this.last.value;
    const value = this.o.read();
    const entry = { at: now, value };
    this.last = entry;
    value.catch(() => {
      if (this.last === entry) this.last = undefined; // a failure is not kept
    });
    return value;
  }

  private send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
    res.writeHead(status, { ...CONSOLE_HEADERS, 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }
}
