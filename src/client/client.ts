// The client: one object per sidecar (or mesh port), holding its connections, retry budget and
// defaults. Every method checks its arguments before any request (INVALID_* codes, attempts 0),
// then runs through Caller (call.ts): deadline, retries only where the server's table allows
// and the call is idempotent, within the budget.
import { ThemisClientError } from './errors.js';
import { Caller, type CallOptions, type RouteCounts } from './call.js';
import { parseKey, parseTable } from './keys.js';
import { retryPolicy, type RetryOptions, type RetryPolicy } from './retry.js';
import { LocalTransport, MeshTransport, type MeshTransportOptions, type Transport } from './transport.js';
import { Query } from './query.js';
import { ChangeFeed, ChangeStream, scanPages, type ChangesOptions, type ScanOptions, type ScannedEntity } from './changefeed.js';

export type { CallOptions } from './call.js';

export interface ClientOptions {
  /** The local sidecar's app port (default http://127.0.0.1:7080). */
  url?: string;
  /** Serve through the app socket (app.socket.path) instead of TCP. */
  socketPath?: string;
  /** Connections kept to the local sidecar (default 16). */
  connections?: number;
  /** Instead of the local sidecar: a mesh port, with a client certificate from the client CA. */
  mesh?: MeshTransportOptions;
  /** Default deadline of each call in ms, every attempt counted (default 10,000). */
  timeoutMs?: number;
  retry?: RetryOptions;
  /** The jitter's randomness, [0, 1) (default Math.random); tests pass a fixed one. */
  random?: () => number;
}

export interface Entity<T = unknown> {
  /** The key as the server echoes it (as the caller wrote it). */
  key: string;
  /** The blob parsed from its JSON text. */
  value: T;
  /** The stored JSON text, byte for byte. */
  blob: string;
}

export interface Written {
  key: string;
  /** The blob's length in UTF-8 bytes. */
  blobSize: number;
}

export interface CreateOptions extends CallOptions {
  /** The new entity's uuid (default: a random v4 chosen here, so that a retry cannot create twice). */
  uuid?: string;
  /**
   * Let the sidecar pick the uuid (POST {table, blob}). Such a create is not idempotent: it is
   * never retried, and a CONNECTION_FAILED or TIMEOUT leaves it unknown whether it happened.
   */
  serverUuid?: boolean;
}

export interface VectorSearch {
  vector: readonly number[];
  /** 1…10,000 (default 10). */
  k?: number;
  /** One table; without it, every table. */
  table?: string;
  /** The column holding the vector (default "embedding"). */
  field?: string;
}

export interface VectorHit {
  /** `table:uuid` */
  key: string;
  /** The uuid (ThemisDB's field). */
  pk: string;
  /** Euclidean (L2); smaller is nearer. */
  distance: number;
}

export interface Health {
  status: string;
  [field: string]: unknown;
}

export interface Follower {
  id: string;
  seq: number;
  [field: string]: unknown;
}

const enc = encodeURIComponent;

function blobOf(value: unknown): string {
  let blob: string | undefined;
  try {
    blob = JSON.stringify(value);
  } catch (e) {
    throw new ThemisClientError('INVALID_BLOB', `the value cannot be written as JSON: ${(e as Error).message}`);
  }
  if (blob === undefined) throw new ThemisClientError('INVALID_BLOB', `a ${typeof value} is not a JSON value`);
  return blob;
}

function parseBlob(blob: string, key: string): unknown {
  try {
    return JSON.parse(blob);
  } catch {
    throw new ThemisClientError('BAD_RESPONSE', `the blob of ${key} is not JSON text`);
  }
}

function checkFollowerId(id: string): void {
  if (typeof id !== 'string' || !/^[A-Za-z0-9._:-]{1,200}$/.test(id)) throw new ThemisClientError('INVALID_BODY', 'a follower id is 1–200 of A-Z a-z 0-9 . _ : -');
}

export class ThemisClient {
  private readonly transport: Transport;
  private readonly caller: Caller;
  readonly retry: RetryPolicy;

  constructor(o: ClientOptions = {}) {
    if (o.mesh && (o.url || o.socketPath)) throw new ThemisClientError('INVALID_ARGUMENT', 'give either mesh (a mesh port with a client certificate) or url/socketPath (the local sidecar), not both');
    const timeoutMs = o.timeoutMs ?? 10_000;
    if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new ThemisClientError('INVALID_ARGUMENT', `timeoutMs must be a positive number of milliseconds, not ${timeoutMs}`);
    try {
      this.retry = retryPolicy(o.retry);
    } catch (e) {
      throw new ThemisClientError('INVALID_ARGUMENT', (e as Error).message);
    }
    this.transport = o.mesh
      ? new MeshTransport(o.mesh)
      : new LocalTransport({ url: o.url ?? 'http://127.0.0.1:7080', ...(o.socketPath ? { socketPath: o.socketPath } : {}), ...(o.connections ? { connections: o.connections } : {}) });
    this.caller = new Caller({ transport: this.transport, retry: this.retry, timeoutMs, random: o.random ?? Math.random });
  }

  /** Requests put on the wire so far (every attempt), per route id of src/api/routes.ts. */
  get sent(): Readonly<RouteCounts> {
    return this.caller.sent;
  }

  /** Reads one entity; ENTITY_NOT_FOUND when there is none. */
  async get<T = unknown>(key: string, o: CallOptions = {}): Promise<Entity<T>> {
    parseKey(key);
    const r = await this.caller.json<{ key: string; blob: string }>({ route: 'entity-get', method: 'GET', path: `/entities/${enc(key)}`, idempotent: true }, o);
    return { key: r.key, blob: r.blob, value: parseBlob(r.blob, r.key) as T };
  }

  /** Writes (creates or replaces) one entity; `value` is stored as its JSON text. Idempotent: retried. */
  async put(key: string, value: unknown, o: CallOptions = {}): Promise<Written> {
    parseKey(key);
    const body = JSON.stringify({ blob: blobOf(value) });
    const r = await this.caller.json<{ key: string; blob_size: number }>({ route: 'entity-put', method: 'PUT', path: `/entities/${enc(key)}`, body, idempotent: true }, o);
    return { key: r.key, blobSize: r.blob_size };
  }

  /** Deletes one entity; ENTITY_NOT_FOUND when there is none (also when a retried delete already succeeded). */
  async delete(key: string, o: CallOptions = {}): Promise<{ key: string }> {
    parseKey(key);
    const r = await this.caller.json<{ key: string }>({ route: 'entity-delete', method: 'DELETE', path: `/entities/${enc(key)}`, idempotent: true }, o);
    return { key: r.key };
  }

  /** Creates an entity in `table` (model.namespace.collection); answers its key `table:uuid`. */
  async create(table: string, value: unknown, o: CreateOptions = {}): Promise<Written> {
    parseTable(table);
    const blob = blobOf(value);
    if (o.serverUuid && o.uuid !== undefined) throw new ThemisClientError('INVALID_ARGUMENT', 'give either uuid or serverUuid, not both');
    let body: string;
    if (o.serverUuid) {
      body = JSON.stringify({ table, blob });
    } else {
      const key = `${table}:${o.uuid ?? globalThis.crypto.randomUUID()}`;
      parseKey(key);
      body = JSON.stringify({ key, blob });
    }
    const r = await this.caller.json<{ key: string; blob_size: number }>({ route: 'entity-post', method: 'POST', path: '/entities', body, idempotent: !o.serverUuid }, o);
    return { key: r.key, blobSize: r.blob_size };
  }

  /** A query on one table; chain conditions, then iterate keys(), entities() or ask count(). */
  query(table: string): Query {
    parseTable(table);
    return new Query((body, o) => this.caller.json({ route: 'query', method: 'POST', path: '/query', body: JSON.stringify(body), idempotent: true }, o), { table });
  }

  /** The k nearest entities by Euclidean distance, over every shard. */
  async vectorSearch(q: VectorSearch, o: CallOptions = {}): Promise<VectorHit[]> {
    if (!Array.isArray(q.vector) || q.vector.length < 1 || q.vector.length > 65_536 || !q.vector.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      throw new ThemisClientError('INVALID_QUERY', 'vector must be an array of 1…65,536 finite numbers');
    }
    if (q.k !== undefined && !(Number.isInteger(q.k) && q.k >= 1 && q.k <= 10_000)) throw new ThemisClientError('INVALID_QUERY', `k must be an integer 1…10,000, not ${q.k}`);
    if (q.table !== undefined) parseTable(q.table);
    if (q.field !== undefined && (typeof q.field !== 'string' || q.field.length === 0)) throw new ThemisClientError('INVALID_QUERY', 'field must be a non-empty string');
    const body = JSON.stringify({ vector: q.vector, ...(q.k !== undefined ? { k: q.k } : {}), ...(q.table ? { table: q.table } : {}), ...(q.field ? { field: q.field } : {}) });
    const r = await this.caller.json<{ results: VectorHit[] }>({ route: 'vector', method: 'POST', path: '/vector/search', body, idempotent: true }, o);
    return r.results.map((h) => ({ key: h.key, pk: h.pk, distance: h.distance }));
  }

  /**
   * The change feed of the sidecar's own storage node (what its shard holds), from `fromSeq`
   * on: an async iterator of changes that long-polls when caught up and keeps its `position`,
   * the sequence to resume from.
   */
  changes(o: ChangesOptions = {}): ChangeFeed {
    return new ChangeFeed((path, co) => this.caller.json({ route: 'changefeed', method: 'GET', path, idempotent: true }, co), o);
  }

  /** The same changes over Server-Sent Events (one long answer); resumes where it broke off. */
  changeStream(o: ChangesOptions & { heartbeatMs?: number } = {}): ChangeStream {
    return new ChangeStream((path, co) => this.caller.stream({ route: 'changefeed-stream', method: 'GET', path, idempotent: true }, co), o);
  }

  /** Every entity of the sidecar's own storage node (or of one table there), in (table, uuid) order. */
  scan(o: ScanOptions = {}): AsyncIterable<ScannedEntity> {
    return scanPages((path, co) => this.caller.json({ route: 'scan', method: 'GET', path, idempotent: true }, co), o);
  }

  /** The sidecar's health. */
  health(o: CallOptions = {}): Promise<Health> {
    return this.caller.json({ route: 'health', method: 'GET', path: '/health', idempotent: true }, o);
  }

  /** The followers registered on the node's change log (their checkpoints hold back trimming). */
  async followers(o: CallOptions = {}): Promise<Record<string, unknown>> {
    return this.caller.json({ route: 'feed-followers-get', method: 'GET', path: '/changefeed/followers', idempotent: true }, o);
  }

  /** Registers (or moves) a follower's checkpoint `seq`; `null` unregisters it. */
  async registerFollower(id: string, seq: number | null, o: CallOptions = {}): Promise<Record<string, unknown>> {
    checkFollowerId(id);
    if (seq !== null && !(Number.isSafeInteger(seq) && seq >= 0)) throw new ThemisClientError('INVALID_BODY', `seq must be an integer ≥ 0 or null, not ${seq}`);
    return this.caller.json({ route: 'feed-followers-post', method: 'POST', path: '/changefeed/followers', body: JSON.stringify({ id, seq }), idempotent: true }, o);
  }

  /** Closes the connections (in-flight calls finish first). */
  close(): Promise<void> {
    return this.transport.close();
  }
}
