// The storage node's HTTP/1.1 server (node:http, keep-alive): one handler per route of the API
// table (src/api/routes.ts); handlers return answers or throw, respond.ts writes both.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { StorageConfig } from '../src/config/storage.js';
import { ThemisError } from '../src/errors.js';
import type { Logger } from '../src/log.js';
import type { Clock, Random } from '../src/runtime.js';
import { readJsonObject } from '../src/http-body.js';
import { matchRoute, type RouteId } from '../src/api/routes.js';
import { ChangeWaiters, changefeed, parseChangefeedParams, systemTimers, type Timers } from './changefeed.js';
import { listFollowers, registerFollower } from './feed-followers.js';
import { Retention } from './retention.js';
import { StreamStats, parseStreamParams, streamChangefeed } from './sse.js';
import { deleteEntity, getEntity, postEntity, putEntity } from './entities.js';
import { parseQuery, runQuery } from '../src/query/query.js';
import { sendAnswer, sendError, type Answer } from './respond.js';
import { SNAPSHOT_PATH, exportSnapshot, parseSnapshotParams } from './snapshot-export.js';
import { parseScanParams, scan } from './scan.js';
import type { Store } from './store.js';
import { parseVectorQuery, searchVectors } from '../src/query/vector.js';

export const VERSION = '0.1.0';
/** Most blob bytes in one change-feed or scan page (one record always fits, whatever its size). */
export const PAGE_BUDGET_BYTES = 32 * 1024 * 1024;

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  path: string;
  query: URLSearchParams;
  /** Raw (still percent-encoded) key segment of /entities/{key}. */
  segment: string;
  signal: AbortSignal;
}

type Handler = (ctx: Ctx) => Promise<Answer>;

export interface StorageServer {
  readonly server: Server;
  /** The bound address; port is the real one when 0 was asked for. */
  readonly address: { host: string; port: number };
  /** Stops accepting, wakes long polls, finishes in-flight requests, closes the store. */
  close(graceMs?: number): Promise<void>;
}

export interface ServerDeps {
  config: StorageConfig;
  store: Store;
  log: Logger;
  clock: Clock;
  random: Random;
  timers?: Timers;
}

export async function startServer(deps: ServerDeps): Promise<StorageServer> {
  const { config, store, log, clock, random } = deps;
  const waiters = new ChangeWaiters(store.lastSeq, clock, deps.timers ?? systemTimers);
  const unsubscribe = store.onCommit((seq) => waiters.committed(seq));
  const retention = new Retention(store, config, clock, deps.timers ?? systemTimers, log);
  await retention.start();
  const streams = new StreamStats();
  const body = (req: IncomingMessage, code: 'INVALID_BODY' | 'INVALID_QUERY') => readJsonObject(req, config.maxBodyBytes, code);
  let closing = false;

  // One handler per route of the API table (src/api/routes.ts); the compiler checks none is missing.
  const handlers: Record<RouteId, Handler> = {
    health: async () => ({
      status: 200,
      body: {
        status: 'ok', service: 'themis-storage', version: VERSION, last_seq: store.lastSeq,
        changefeed: { ...(await retention.report()), streams: streams.open.size, stream_buffered_bytes: streams.bufferedBytes },
      },
    }),
    scan: async (c) => scan(store, parseScanParams(c.query), PAGE_BUDGET_BYTES),
    'entity-post': async (c) => postEntity(store, await body(c.req, 'INVALID_BODY'), config.maxBlobBytes, random),
    'entity-get': async (c) => getEntity(store, c.segment),
    'entity-put': async (c) => putEntity(store, c.segment, () => body(c.req, 'INVALID_BODY'), config.maxBlobBytes),
    'entity-delete': async (c) => deleteEntity(store, c.segment),
    query: async (c) => {
      const q = parseQuery(await body(c.req, 'INVALID_QUERY'));
      return { status: 200, body: await runQuery(q, store.entities(q.table)) };
    },
    vector: async (c) => {
      const q = parseVectorQuery(await body(c.req, 'INVALID_QUERY'));
      return { status: 200, body: await searchVectors(q, store.entities(q.table)) };
    },
    changefeed: async (c) => changefeed(store, waiters, parseChangefeedParams(c.query, config.maxLongPollMs), PAGE_BUDGET_BYTES, c.signal),
    'changefeed-stream': async (c) => {
      const p = parseStreamParams(c.query, c.req.headers['last-event-id'], config.sseHeartbeatMs);
      await streamChangefeed({ store, waiters, stats: streams, closing: () => closing }, c.req, c.res, p, c.signal);
      return { streamed: true };
    },
    'feed-followers-get': async () => listFollowers(retention),
    'feed-followers-post': async (c) => registerFollower(retention, await body(c.req, 'INVALID_BODY')),
  };

  // GET /snapshot is node-local (a backup on this host), outside the mesh's route table.
  const isSnapshot = (url: string | undefined) => url === SNAPSHOT_PATH || url?.startsWith(`${SNAPSHOT_PATH}?`) === true;

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    try {
      if (closing) throw new ThemisError('STORAGE_UNAVAILABLE', 'the storage node is shutting down');
      if (isSnapshot(req.url)) {
        if (req.method !== 'GET') throw new ThemisError('METHOD_NOT_ALLOWED', `${(req.method ?? '').slice(0, 16)} is not allowed here; use GET`, { allow: 'GET' });
        const q = new URLSearchParams((req.url ?? '').slice(SNAPSHOT_PATH.length + 1));
        return void (await exportSnapshot(store, retention, res, parseSnapshotParams(q), abort.signal));
      }
      const m = matchRoute(req.method ?? 'GET', req.url ?? '/');
      const ctx: Ctx = { req, res, path: m.path, query: new URLSearchParams(m.query), segment: m.segment, signal: abort.signal };
      const answer = await handlers[m.route.id](ctx);
      sendAnswer(req, res, answer, closing);
    } catch (err) {
      sendError(req, res, err, log, closing);
    }
  }

  const server = createServer({ keepAlive: true, requestTimeout: 120_000, headersTimeout: 30_000 }, (req, res) => {
    void serve(req, res);
  });
  server.keepAliveTimeout = 5_000;
  // Malformed HTTP itself (bad request line, oversized headers) is left to node:http's own
  // clientError handling: 400/431/408 and the connection closed.

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;

  async function close(graceMs = 10_000): Promise<void> {
    closing = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    waiters.close();
    await retention.stop();
    server.closeIdleConnections();
    const force = setTimeout(() => server.closeAllConnections(), graceMs);
    await closed;
    clearTimeout(force);
    unsubscribe();
    await store.close();
  }

  return { server, address: { host: addr.address, port: addr.port }, close };
}
