// The validated, frozen configuration of the sidecar (`themis-sidecar --config FILE.json`).
// Every error names the field path and what to write instead; paths resolve against the
// config file's folder so a host's config directory can move as a whole.
import { renewalConfig, type RenewalConfig } from './renewal.js';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { ConfigError, asObject, bool, int, isLoopbackHost, join, rejectUnknown, str, type Raw } from './validate.js';
import { SHARD_ID_RE } from '../topology/topology.js';
import { appSocket, type AppSocket } from './app-socket.js';
import { MODELS, parseTable } from '../urn/key.js';
import { accessLogConfig, tracingConfig, type AccessLogConfig, type TracingConfig } from './observability.js';

export interface Listen {
  readonly host: string;
  readonly port: number;
}

/**
 * How a plaintext HTTP listener (app, admin) treats connections that dawdle, and how many it
 * holds. HTTP/1.1 uses Node's own timers; the app port's h2c sessions get the same limits
 * (proxy/app-listener.ts).
 */
export interface ConnectionLimits {
  /** A request's headers must be complete within this; a new connection's first request counts from its accept. */
  readonly headersTimeoutMs: number;
  /** The whole request, headers and body, must arrive within this (not the answer: long polls are unaffected). */
  readonly requestTimeoutMs: number;
  /** A connection with no request in progress (HTTP/1.1 keep-alive, an HTTP/2 session without streams) is closed after this. */
  readonly idleTimeoutMs: number;
  /** Connections open at once; one more is closed as soon as it is accepted. */
  readonly maxConnections: number;
}

export interface HttpListen extends Listen, ConnectionLimits {}

export interface AdminListen extends HttpListen {
  /** The read-only web console at /console (and its JSON at /console/status.json); off by default. */
  readonly console: boolean;
}

export interface AppListen extends HttpListen {
  /** Listen on loopback TCP (host, port); false: only on the socket. */
  readonly tcp: boolean;
  /** The app API on a Unix-domain socket too, with its owner, group and mode. */
  readonly socket: AppSocket | undefined;
  /**
   * The TCP port speaks TLS 1.3 and requires a client certificate from the client CA; each
   * request needs the capability its operation names (read, write), as on the mesh port.
   */
  readonly tls: boolean;
}

export interface MeshListen extends Listen {
  /** A request's body must arrive whole within this of its headers, or the stream gets 408 REQUEST_TIMEOUT and is reset. */
  readonly bodyTimeoutMs: number;
  /** Bytes of request bodies held at once over all mesh streams; more gets 503 BODY_BUDGET_EXCEEDED. */
  readonly maxInflightBodyBytes: number;
}

export interface SidecarConfig {
  readonly shardId: string;
  readonly cluster: string;
  /** Plaintext HTTP/1.1 + h2c for local apps: on loopback TCP and/or a Unix-domain socket. */
  readonly app: AppListen;
  /** HTTP/2 over TLS 1.3 with client certificates, for peers and client-certificate apps. */
  readonly mesh: MeshListen;
  /** /metrics, /healthz, /readyz, and with admin.console the web console; loopback by default. */
  readonly admin: AdminListen;
  /** Append-only, hash-chained audit trail of security events. */
  readonly auditFile: string;
  /** Rotate the audit file at this size. */
  readonly auditMaxBytes: number;
  /** The local storage node, e.g. http://127.0.0.1:8765. */
  readonly storageUrl: string;
  readonly tls: {
    /** PEM: this shard's certificate followed by the cluster CA certificate. */
    readonly cert: string;
    readonly key: string;
    /** File holding the key's passphrase, when the key is encrypted. */
    readonly keyPassphraseFile: string | undefined;
    /** The trusted root CA certificate. */
    readonly ca: string;
    /** CRL files (PEM), one per CA: root, cluster, client. */
    readonly crls: readonly string[];
    /** Automatic renewal of this certificate (themis-pki serve); off when absent. */
    readonly renewal?: RenewalConfig;
  };
  readonly topologyFile: string;
  /** How often the topology file is checked for a newer epoch. */
  readonly topologyPollMs: number;
  readonly timeouts: { readonly connectMs: number; readonly requestMs: number };
  readonly backoff: { readonly initialMs: number; readonly maxMs: number };
  /**
   * Signed requests: the accepted clock skew (and how long nonces are remembered), the memory
   * bound per sender, and the file holding each sender's persisted high-water mark — reserved
   * `reserveMs` ahead of its newest accepted timestamp — so a restart reopens no replay.
   */
  readonly replay: { readonly windowMs: number; readonly maxNoncesPerSender: number; readonly stateFile: string; readonly reserveMs: number };
  /** Scatter-gather queries: shard calls in flight per query, per-shard timeout, rows per shard page. */
  readonly scatter: { readonly maxConcurrency: number; readonly shardTimeoutMs: number; readonly pageSize: number };
  /** POST /query/aql: the table a bare collection name stands for, `{model}.{namespace}.{name}` (docs/compatibility.md). */
  readonly aql: { readonly model: string; readonly namespace: string };
  readonly maxBodyBytes: number;
  /**
   * Replication of the ranges the topology gives replicas: when a write counts as done (`ack`:
   * once `all` copies, a `majority` of copies (the primary counted), or the `primary` alone hold
   * it), how long the primary waits for that, and where followers keep their checkpoints.
   */
  readonly replication: {
    readonly ack: 'all' | 'majority' | 'primary';
    readonly ackTimeoutMs: number;
    readonly stateDir: string;
    readonly longPollMs: number;
    /** Automatic failover of replicated ranges (needs etcd; on by default with etcd). */
    readonly failover: boolean;
    /** TTL of the lease an acting primary holds its term on: the detection time of a dead sidecar. */
    readonly leaseTtlSeconds: number;
  };
  /** The control plane: when set, the sidecar registers itself there (certificate, endpoint, alive lease). */
  readonly etcd:
    | {
        readonly endpoints: readonly string[];
        readonly topology: boolean;
        readonly topologyCache: string;
        /** Apply the signed CRLs published under crl/ (on by default). */
        readonly crls: boolean;
        readonly crlCache: string;
      }
    | undefined;
  /** Re-read certificate, key, CA and CRL files when they change (SIGHUP always does). */
  readonly watchFiles: boolean;
  /** One JSON line per request on the app and mesh ports (docs/observability.md). */
  readonly accessLog: AccessLogConfig;
  /** W3C trace context, and span export over OTLP/HTTP when configured. */
  readonly tracing: TracingConfig;
  /**
   * Processes serving the app and mesh ports (node:cluster, docs/sidecar.md "Workers"); 1: the
   * sidecar is one process. "auto" in the file: the number of cores.
   */
  readonly workers: number;
  /**
   * Request signatures (signing on the app side, verifying on the mesh side): on libuv's thread
   * pool instead of the event loop — always, never, or "auto": while the process serves at least
   * AUTO_OFFLOAD_MIN requests (proxy/in-flight.ts) — and that pool's size in each worker process (unset: the
   * environment's UV_THREADPOOL_SIZE, else libuv's 4). docs/sidecar.md "Signatures on the thread pool".
   */
  readonly signing: { readonly threadpool: boolean | 'auto'; readonly threads: number | undefined };
}

const TOP = ['shardId', 'cluster', 'app', 'mesh', 'admin', 'audit', 'storage', 'tls', 'topology', 'timeouts', 'backoff', 'replay', 'scatter', 'aql', 'replication', 'etcd', 'maxBodyBytes', 'watchFiles', 'accessLog', 'tracing', 'workers', 'signing'];

export function validateSidecarConfig(input: unknown, baseDir: string): SidecarConfig {
  const raw = asObject(input, 'config');
  rejectUnknown(raw, TOP, '');
  const shardId = str(raw, 'shardId', '');
  if (!SHARD_ID_RE.test(shardId)) throw new ConfigError('shardId', `"${shardId}" is not a shard id; write e.g. "shard-001"`);
  const path = (o: Raw, k: string, prefix: string) => resolve(baseDir, str(o, k, prefix));

  const appLimits = httpListen(raw, 'app', { host: '127.0.0.1', port: 7080 }, { headersTimeoutMs: 10_000, requestTimeoutMs: 60_000, idleTimeoutMs: 65_000, maxConnections: 4096 }, ['tcp', 'socket', 'tls']);
  const appRaw = asObject(raw.app ?? {}, 'app');
  const app: AppListen = Object.freeze({ ...appLimits, tcp: bool(appRaw, 'tcp', 'app', true), socket: appSocket(appRaw, baseDir), tls: bool(appRaw, 'tls', 'app', false) });
  if (!app.tcp && !app.socket) throw new ConfigError('app.tcp', 'false leaves apps no way in; configure app.socket, or set app.tcp to true');
  if (app.tls && !app.tcp) throw new ConfigError('app.tls', 'TLS is for the TCP port, which app.tcp turns off; set app.tcp to true or app.tls to false');
  if (!app.tls && !isLoopbackHost(app.host)) {
    throw new ConfigError('app.host', `"${app.host}" is not a loopback address: the app port is plaintext and unauthenticated; write 127.0.0.1 (or set app.tls to true: client certificates), and let remote apps use the mesh port with a client certificate`);
  }
  const meshRaw = asObject(raw.mesh ?? {}, 'mesh');
  const mesh = listen(meshRaw, 'mesh', { host: '127.0.0.1', port: 7443 }, ['bodyTimeoutMs', 'maxInflightBodyBytes']);
  const adminLimits = httpListen(raw, 'admin', { host: '127.0.0.1', port: 9464 }, { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, idleTimeoutMs: 65_000, maxConnections: 64 }, ['console']);
  const admin: AdminListen = Object.freeze({ ...adminLimits, console: bool(asObject(raw.admin ?? {}, 'admin'), 'console', 'admin', false) });
  // The console shows the cluster's state to whoever reaches the port, without authentication.
  if (admin.console && !isLoopbackHost(admin.host)) {
    throw new ConfigError('admin.console', `the console needs the admin port on loopback, and admin.host is "${admin.host}": it answers without authentication; write 127.0.0.1 as admin.host (reach it through an SSH tunnel), or set admin.console to false`);
  }
  const audit = asObject(raw.audit ?? {}, 'audit');
  rejectUnknown(audit, ['file', 'maxBytes'], 'audit');

  const storage = asObject(raw.storage ?? {}, 'storage');
  rejectUnknown(storage, ['url'], 'storage');
  const storageUrl = str(storage, 'url', 'storage', 'http://127.0.0.1:8765');
  let u: URL;
  try {
    u = new URL(storageUrl);
  } catch {
    throw new ConfigError('storage.url', `"${storageUrl}" is not a URL; write e.g. http://127.0.0.1:8765`);
  }
  if (u.protocol !== 'http:' || !isLoopbackHost(u.hostname)) {
    throw new ConfigError('storage.url', 'the storage node must be plaintext http on loopback, e.g. http://127.0.0.1:8765');
  }

  const tls = asObject(raw.tls, 'tls');
  rejectUnknown(tls, ['cert', 'key', 'keyPassphraseFile', 'ca', 'crls', 'renewal'], 'tls');
  const crls = tls.crls;
  if (!Array.isArray(crls) || crls.length === 0 || !crls.every((c) => typeof c === 'string' && c.length > 0)) {
    throw new ConfigError('tls.crls', 'write a list of CRL files, one per CA (root, cluster, client), e.g. ["pki/crl/root.crl.pem", …]');
  }

  // With etcd.topology the topology comes signed from etcd and no file is needed.
  const fromEtcd = (raw.etcd as Raw | undefined)?.topology === true;
  const topology = asObject(raw.topology ?? (fromEtcd ? { file: '(etcd)' } : undefined), 'topology');
  rejectUnknown(topology, ['file', 'pollMs'], 'topology');
  const timeouts = asObject(raw.timeouts ?? {}, 'timeouts');
  rejectUnknown(timeouts, ['connectMs', 'requestMs'], 'timeouts');
  const backoff = asObject(raw.backoff ?? {}, 'backoff');
  rejectUnknown(backoff, ['initialMs', 'maxMs'], 'backoff');
  const replay = asObject(raw.replay ?? {}, 'replay');
  rejectUnknown(replay, ['windowMs', 'maxNoncesPerSender', 'stateFile', 'reserveMs'], 'replay');
  const windowMs = int(replay, 'windowMs', 'replay', 60_000, 1_000, 600_000);
  const reserveMs = int(replay, 'reserveMs', 'replay', 1_000, 10, 60_000);
  if (reserveMs > windowMs) throw new ConfigError('replay.reserveMs', `${reserveMs} is longer than replay.windowMs (${windowMs}); write at most the window, e.g. 1000`);
  const maxBodyBytes = int(raw, 'maxBodyBytes', '', 2 * 16 * 1024 * 1024 + 64 * 1024, 1024, 1024 * 1024 * 1024);
  const maxInflightBodyBytes = int(meshRaw, 'maxInflightBodyBytes', 'mesh', 256 * 1024 * 1024, 1024, 2 ** 40);
  if (maxInflightBodyBytes < maxBodyBytes) {
    throw new ConfigError('mesh.maxInflightBodyBytes', `${maxInflightBodyBytes} is less than maxBodyBytes (${maxBodyBytes}), so the largest body allowed could never be accepted; write at least ${maxBodyBytes}`);
  }
  const replication = asObject(raw.replication ?? {}, 'replication');
  rejectUnknown(replication, ['ack', 'ackTimeoutMs', 'stateDir', 'longPollMs', 'failover', 'leaseTtlSeconds'], 'replication');
  const ack = str(replication, 'ack', 'replication', 'majority');
  if (ack !== 'all' && ack !== 'majority' && ack !== 'primary') {
    throw new ConfigError('replication.ack', `"${ack}" is not one of all, majority, primary`);
  }
  const scatter = asObject(raw.scatter ?? {}, 'scatter');
  rejectUnknown(scatter, ['maxConcurrency', 'shardTimeoutMs', 'pageSize'], 'scatter');
  const aqlRaw = asObject(raw.aql ?? {}, 'aql');
  rejectUnknown(aqlRaw, ['model', 'namespace'], 'aql');
  const aql = Object.freeze({ model: str(aqlRaw, 'model', 'aql', 'document'), namespace: str(aqlRaw, 'namespace', 'aql', 'default') });
  try {
    parseTable(`${aql.model}.${aql.namespace}.c`);
  } catch (e) {
    throw new ConfigError(`aql.${MODELS.includes(aql.model as never) ? 'namespace' : 'model'}`, `${(e as Error).message}`);
  }

  let etcd: SidecarConfig['etcd'];
  if (raw.etcd !== undefined) {
    const e = asObject(raw.etcd, 'etcd');
    rejectUnknown(e, ['endpoints', 'topology', 'topologyCache', 'crls', 'crlCache'], 'etcd');
    const eps = e.endpoints;
    if (!Array.isArray(eps) || eps.length === 0 || !eps.every((x) => typeof x === 'string' && /^https:\/\/[^/]+:\d+$/.test(x))) {
      throw new ConfigError('etcd.endpoints', 'write a list of https://HOST:PORT addresses, e.g. ["https://10.0.0.2:2379"] (etcd is reached over mTLS only)');
    }
    etcd = Object.freeze({
      endpoints: Object.freeze([...eps] as string[]),
      topology: bool(e, 'topology', 'etcd', false),
      topologyCache: resolve(baseDir, str(e, 'topologyCache', 'etcd', `topology-cache-${shardId}.json`)),
      crls: bool(e, 'crls', 'etcd', true),
      crlCache: resolve(baseDir, str(e, 'crlCache', 'etcd', `crl-cache-${shardId}.json`)),
    });
  }
  const failover = bool(replication, 'failover', 'replication', etcd !== undefined);
  if (admin.console && !etcd) throw new ConfigError('admin.console', 'the console shows the cluster as etcd holds it: configure etcd.endpoints, or set admin.console to false');
  if (failover && !etcd) throw new ConfigError('replication.failover', 'failover needs etcd (the acting primaries and their leases live there): configure etcd.endpoints, or set it to false');
  const w = raw.workers === undefined ? 1 : raw.workers;
  if (w !== 'auto' && !(Number.isInteger(w) && (w as number) >= 1 && (w as number) <= 64)) throw new ConfigError('workers', `expected "auto" or an integer from 1 to 64, got ${JSON.stringify(w)}`);
  const workers = w === 'auto' ? Math.min(64, availableParallelism()) : (w as number);
  const signingRaw = asObject(raw.signing ?? {}, 'signing');
  rejectUnknown(signingRaw, ['threadpool', 'threads'], 'signing');
  const signing = Object.freeze({
    threadpool: threadpoolMode(signingRaw.threadpool),
    // libuv's own limit is 1024; more threads than that, or than a host has use for, is a typo.
    threads: signingRaw.threads === undefined ? undefined : int(signingRaw, 'threads', 'signing', 4, 1, 1024),
  });
  if (signing.threads !== undefined && workers === 1) {
    throw new ConfigError('signing.threads', 'a process sizes its thread pool before it reads this file: with one process (workers: 1) set UV_THREADPOOL_SIZE in its environment (the systemd unit\'s Environment=) instead; signing.threads sizes the pools of worker processes');
  }
  return Object.freeze({
    etcd,
    shardId,
    cluster: clusterOf(raw, etcd !== undefined),
    app,
    mesh: Object.freeze({ ...mesh, bodyTimeoutMs: int(meshRaw, 'bodyTimeoutMs', 'mesh', 30_000, 100, 600_000), maxInflightBodyBytes }),
    admin,
    auditFile: resolve(baseDir, str(audit, 'file', 'audit', `audit-${shardId}.log`)),
    auditMaxBytes: int(audit, 'maxBytes', 'audit', 64 * 1024 * 1024, 4096, 2 ** 40),
    storageUrl: u.origin,
    tls: Object.freeze({
      cert: path(tls, 'cert', 'tls'),
      key: path(tls, 'key', 'tls'),
      keyPassphraseFile: tls.keyPassphraseFile === undefined ? undefined : path(tls, 'keyPassphraseFile', 'tls'),
      ca: path(tls, 'ca', 'tls'),
      crls: Object.freeze((crls as string[]).map((c) => resolve(baseDir, c))),
      renewal: renewalConfig(tls.renewal, baseDir),
    }),
    topologyFile: path(topology, 'file', 'topology'),
    topologyPollMs: int(topology, 'pollMs', 'topology', 1000, 100, 3_600_000),
    timeouts: Object.freeze({
      connectMs: int(timeouts, 'connectMs', 'timeouts', 2_000, 10, 60_000),
      requestMs: int(timeouts, 'requestMs', 'timeouts', 10_000, 10, 600_000),
    }),
    backoff: Object.freeze({
      initialMs: int(backoff, 'initialMs', 'backoff', 100, 1, 60_000),
      maxMs: int(backoff, 'maxMs', 'backoff', 5_000, 1, 600_000),
    }),
    replay: Object.freeze({
      windowMs,
      maxNoncesPerSender: int(replay, 'maxNoncesPerSender', 'replay', 200_000, 100, 10_000_000),
      stateFile: resolve(baseDir, str(replay, 'stateFile', 'replay', `replay-${shardId}.json`)),
      reserveMs,
    }),
    replication: Object.freeze({
      ack: ack as 'all' | 'majority' | 'primary',
      ackTimeoutMs: int(replication, 'ackTimeoutMs', 'replication', 2_000, 10, 600_000),
      stateDir: resolve(baseDir, str(replication, 'stateDir', 'replication', `replication-${shardId}`)),
      longPollMs: int(replication, 'longPollMs', 'replication', 1_000, 10, 60_000),
      failover,
      leaseTtlSeconds: int(replication, 'leaseTtlSeconds', 'replication', 3, 1, 60),
    }),
    aql,
    scatter: Object.freeze({
      maxConcurrency: int(scatter, 'maxConcurrency', 'scatter', 16, 1, 1024),
      shardTimeoutMs: int(scatter, 'shardTimeoutMs', 'scatter', 10_000, 10, 600_000),
      pageSize: int(scatter, 'pageSize', 'scatter', 1000, 1, 100_000),
    }),
    maxBodyBytes,
    watchFiles: bool(raw, 'watchFiles', '', true),
    accessLog: accessLogConfig(raw.accessLog, baseDir),
    tracing: tracingConfig(raw.tracing),
    workers,
    signing,
  });
}

/** signing.threadpool: true, false or "auto" (the default). */
function threadpoolMode(v: unknown): boolean | 'auto' {
  if (v === undefined || v === 'auto') return 'auto';
  if (v === true || v === false) return v;
  throw new ConfigError('signing.threadpool', `expected true, false or "auto", got ${JSON.stringify(v)}`);
}

/** host and port of listener `key` (its object `o`); `more` names the other settings it knows. */
function listen(o: Raw, key: string, dflt: Listen, more: readonly string[]): Listen {
  rejectUnknown(o, ['host', 'port', ...more], key);
  const host = str(o, 'host', key, dflt.host);
  if (host !== 'localhost' && isIP(host) === 0) {
    throw new ConfigError(join(key, 'host'), `expected an IP address, got ${JSON.stringify(host.slice(0, 64))}; write e.g. ${dflt.host}`);
  }
  return Object.freeze({ host, port: int(o, 'port', key, dflt.port, 0, 65535) });
}

const LIMIT_KEYS = ['headersTimeoutMs', 'requestTimeoutMs', 'idleTimeoutMs', 'maxConnections'] as const;

/** A plaintext HTTP listener: host, port and its connection limits. */
function httpListen(raw: Raw, key: string, dflt: Listen, limits: ConnectionLimits, more: readonly string[] = []): HttpListen {
  const o = asObject(raw[key] ?? {}, key);
  const l = listen(o, key, dflt, [...LIMIT_KEYS, ...more]);
  const headersTimeoutMs = int(o, 'headersTimeoutMs', key, limits.headersTimeoutMs, 100, 600_000);
  const requestTimeoutMs = int(o, 'requestTimeoutMs', key, limits.requestTimeoutMs, 100, 3_600_000);
  if (requestTimeoutMs < headersTimeoutMs) {
    throw new ConfigError(join(key, 'requestTimeoutMs'), `${requestTimeoutMs} is shorter than ${key}.headersTimeoutMs (${headersTimeoutMs}): the headers are part of the request; write at least ${headersTimeoutMs}`);
  }
  return Object.freeze({
    ...l,
    headersTimeoutMs,
    requestTimeoutMs,
    idleTimeoutMs: int(o, 'idleTimeoutMs', key, limits.idleTimeoutMs, 100, 3_600_000),
    maxConnections: int(o, 'maxConnections', key, limits.maxConnections, 1, 1_000_000),
  });
}

/** Reads and validates a sidecar config file. */
export function loadSidecarConfig(file: string): SidecarConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError('--config', `cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'}); write the path of the sidecar's JSON config`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ConfigError('--config', `${file} is not valid JSON (${(e as Error).message})`);
  }
  return validateSidecarConfig(value, dirname(resolve(file)));
}

/**
 * The cluster name. With etcd it is required: it names the keys (/themis/{cluster}/) the sidecar
 * reads its topology and CRLs from and registers under, and a default would quietly pick the dev
 * cluster's. Without etcd (a topology file, the dev cluster) it defaults to cluster-dev; a file of
 * another cluster is refused at start.
 */
function clusterOf(raw: Raw, withEtcd: boolean): string {
  if (withEtcd && raw.cluster === undefined) throw new ConfigError('cluster', 'required with etcd: the cluster whose keys (/themis/{cluster}/) this sidecar reads and registers under, e.g. "cluster-prod"');
  return str(raw, 'cluster', '', 'cluster-dev');
}
