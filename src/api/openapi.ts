// The OpenAPI 3.1 description of the app port's API, generated: paths and methods from the one
// route table (routes.ts), error codes and statuses from the one error table (errors.ts); this
// file adds only what neither holds — each route's parameters, body and answer schemas. The map
// is total over route ids, so a route added to the table does not compile until it is described.
// `npm run openapi` writes docs/openapi.json; a test checks it is current and lints it.
import { ERRORS, type ErrorCode } from '../errors.js';
import { ROUTES, type RouteId } from './routes.js';

type Schema = Record<string, unknown>;

interface RouteDoc {
  summary: string;
  description?: string;
  query?: { name: string; schema: Schema; description: string }[];
  body?: Schema;
  status: 200 | 201;
  answer: Schema;
  /** Codes this route answers besides those every route may (COMMON). */
  errors: ErrorCode[];
}

const str = { type: 'string' };
const int = { type: 'integer', minimum: 0 };
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const obj = (properties: Record<string, Schema>, required: string[] = [], extra = false): Schema => ({ type: 'object', properties, required, additionalProperties: extra });

/** Every route may answer these: the sidecar's own failures and overload. */
const COMMON: ErrorCode[] = ['INTERNAL', 'UPSTREAM_UNAVAILABLE', 'UPSTREAM_TIMEOUT', 'UPSTREAM_PROTOCOL_ERROR', 'STORAGE_UNAVAILABLE', 'CAPABILITY_DENIED', 'REQUEST_TIMEOUT'];
const WRITE: ErrorCode[] = ['INVALID_KEY', 'INVALID_JSON', 'INVALID_BODY', 'INVALID_BLOB', 'PAYLOAD_TOO_LARGE', 'NOT_OWNER', 'REPLICATION_UNAVAILABLE', 'FAILOVER_IN_PROGRESS'];

const keyParam = { name: 'key', in: 'path', required: true, schema: str, description: 'urn:themis:{model}:{namespace}:{collection}:{uuid} or {model}.{namespace}.{collection}:{uuid}, percent-encoded' };
const written = obj({ success: { const: true }, key: str, blob_size: int }, ['success', 'key', 'blob_size'], true);
const feedQuery = [
  { name: 'from_seq', schema: int, description: 'changes with a sequence above this (default 0)' },
  { name: 'limit', schema: { type: 'integer', minimum: 1, maximum: 1000 }, description: 'at most this many (default 100)' },
  { name: 'long_poll_ms', schema: int, description: 'wait this long for a change when there is none (default 0)' },
];

export const ROUTE_DOCS: Record<RouteId, RouteDoc> = {
  health: { summary: 'The sidecar is up; its shard and topology epoch', status: 200, answer: obj({ status: str, shard: str, topology_epoch: int }, ['status'], true), errors: [] },
  scan: {
    summary: "This node's entities in (table, uuid) order, a page at a time",
    query: [
      { name: 'table', schema: str, description: 'model.namespace.collection (default: every table)' },
      { name: 'after', schema: str, description: 'start after this key (exclusive)' },
      { name: 'limit', schema: { type: 'integer', minimum: 1, maximum: 1000 }, description: 'default 100' },
    ],
    status: 200,
    answer: obj({ entities: { type: 'array', items: obj({ key: str, blob: str }, ['key', 'blob']) }, count: int, next: { type: ['string', 'null'] } }, ['entities', 'next'], true),
    errors: ['INVALID_PARAMETER'],
  },
  'entity-post': {
    summary: 'Create or replace an entity; with `table` and no `key` the sidecar picks the uuid',
    body: { oneOf: [obj({ key: str, blob: str }, ['key', 'blob']), obj({ table: str, blob: str }, ['table', 'blob'])] },
    status: 201,
    answer: written,
    errors: WRITE,
  },
  'entity-get': { summary: 'Read one entity', status: 200, answer: obj({ key: str, blob: str }, ['key', 'blob'], true), errors: ['INVALID_KEY', 'ENTITY_NOT_FOUND', 'NOT_OWNER', 'INVALID_HEADER'] },
  'entity-put': { summary: 'Create or replace one entity', body: obj({ blob: { type: 'string', description: 'JSON text, stored byte for byte' } }, ['blob']), status: 201, answer: written, errors: WRITE },
  'entity-delete': { summary: 'Delete one entity', status: 200, answer: obj({ success: { const: true }, key: str }, ['success', 'key'], true), errors: ['INVALID_KEY', 'ENTITY_NOT_FOUND', 'NOT_OWNER', 'REPLICATION_UNAVAILABLE', 'FAILOVER_IN_PROGRESS'] },
  query: {
    summary: 'Query one table across every shard (merged as one node would answer), paged with continuation tokens',
    body: obj(
      {
        table: str,
        predicates: { type: 'array', maxItems: 64, items: obj({ column: str, value: str }, ['column', 'value']) },
        range: { type: 'array', maxItems: 64, items: obj({ column: str, gte: { type: ['number', 'string'] }, lte: { type: ['number', 'string'] }, includeLower: { type: 'boolean' }, includeUpper: { type: 'boolean' } }, ['column']) },
        order_by: obj({ column: str, desc: { type: 'boolean' }, limit: { type: 'integer', minimum: 0, maximum: 1_000_000 } }, ['column']),
        return: { enum: ['keys', 'entities', 'count'] },
        page_size: { type: 'integer', minimum: 1, maximum: 100_000 },
        continuation: str,
        allow_partial: { type: 'boolean' },
      },
      ['table'],
    ),
    status: 200,
    answer: obj({ table: str, count: int, keys: { type: 'array', items: str }, entities: { type: 'array', items: str }, continuation: { type: ['string', 'null'] }, partial: { type: 'boolean' }, missing_shards: { type: 'array', items: str } }, ['count'], true),
    errors: ['INVALID_JSON', 'INVALID_QUERY', 'INVALID_CONTINUATION', 'CONTINUATION_STALE', 'SHARDS_UNAVAILABLE'],
  },
  vector: {
    summary: 'The k nearest entities by Euclidean distance, over every shard',
    body: obj({ vector: { type: 'array', minItems: 1, maxItems: 65_536, items: { type: 'number' } }, k: { type: 'integer', minimum: 1, maximum: 10_000 }, table: str, field: str, allow_partial: { type: 'boolean' } }, ['vector']),
    status: 200,
    answer: obj({ results: { type: 'array', items: obj({ pk: str, key: str, distance: { type: 'number' } }, ['pk', 'key', 'distance']) }, k: int, count: int }, ['results'], true),
    errors: ['INVALID_JSON', 'INVALID_QUERY', 'SHARDS_UNAVAILABLE'],
  },
  changefeed: {
    summary: "This node's change log after from_seq, long-polling when there is nothing new",
    query: feedQuery,
    status: 200,
    answer: obj({ changes: { type: 'array', items: ref('Change') }, last_seq: int, latest_seq: int }, ['changes', 'last_seq'], true),
    errors: ['INVALID_PARAMETER', 'CHANGEFEED_TRIMMED'],
  },
  'changefeed-stream': {
    summary: "This node's change log as Server-Sent Events (each event's data is a Change, its id the sequence)",
    query: [feedQuery[0]!, { name: 'heartbeat_ms', schema: { type: 'integer', minimum: 100, maximum: 300_000 }, description: 'a comment line after this long without a change' }],
    status: 200,
    answer: { type: 'string', description: 'text/event-stream' },
    errors: ['INVALID_PARAMETER', 'CHANGEFEED_TRIMMED'],
  },
  'feed-followers-get': { summary: "The change log's figures and its registered followers", status: 200, answer: obj({ followers: { type: 'array', items: { type: 'object' } } }, [], true), errors: [] },
  'feed-followers-post': {
    summary: "Register (or move, or with seq null remove) a follower's checkpoint, which holds back trimming",
    body: obj({ id: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,200}$' }, seq: { type: ['integer', 'null'], minimum: 0 } }, ['id', 'seq']),
    status: 200,
    answer: obj({ id: str }, ['id'], true),
    errors: ['INVALID_JSON', 'INVALID_BODY'],
  },
};

function operation(id: RouteId, path: string): Schema {
  const d = ROUTE_DOCS[id];
  const parameters = [...(path.includes('{key}') ? [keyParam] : []), ...(d.query ?? []).map((q) => ({ ...q, in: 'query', required: false }))];
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set([...d.errors, ...COMMON])) byStatus.set(ERRORS[code].status, [...(byStatus.get(ERRORS[code].status) ?? []), code]);
  const errors = Object.fromEntries(
    [...byStatus].sort(([a], [b]) => a - b).map(([status, codes]) => [String(status), { description: codes.join(', '), content: { 'application/json': { schema: ref('Error') } } }]),
  );
  const stream = id === 'changefeed-stream';
  return {
    operationId: id,
    summary: d.summary,
    tags: [path.startsWith('/changefeed') || id === 'scan' ? 'node-local' : id === 'health' ? 'health' : path.startsWith('/entities') ? 'entities' : 'queries'],
    ...(parameters.length ? { parameters } : {}),
    ...(d.body ? { requestBody: { required: true, content: { 'application/json': { schema: d.body } } } } : {}),
    responses: { [String(d.status)]: { description: d.summary, content: { [stream ? 'text/event-stream' : 'application/json']: { schema: d.answer } } }, ...errors },
  };
}

/** The OpenAPI 3.1 document of the app port (and of the mesh port for client certificates). */
export function buildOpenApi(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, Schema>> = {};
  for (const r of ROUTES) (paths[r.path] ??= {})[r.method.toLowerCase()] = operation(r.id, r.path);
  return {
    openapi: '3.1.0',
    info: {
      title: 'themis-mesh app API',
      version,
      license: { name: 'MIT', identifier: 'MIT' },
      description: "The sidecar's app port: ThemisDB's HTTP API, routed by key to the owning shard. Generated from src/api/routes.ts and src/errors.ts; see docs/storage-api.md and docs/errors.md.",
    },
    servers: [
      { url: 'http://127.0.0.1:7080', description: 'the local sidecar: its app port (plaintext, loopback or the app socket)' },
      { url: 'https://{host}:7443', description: "a sidecar's mesh port, HTTP/2 + TLS 1.3 with a client certificate from the client CA", variables: { host: { default: '127.0.0.1' } } },
    ],
    // The app port trusts local callers; the mesh port (and app.tls) needs a client certificate.
    security: [{}, { clientCertificate: [] }],
    tags: [
      { name: 'entities', description: 'One entity, routed to the shard that owns its key' },
      { name: 'queries', description: 'Scatter-gather over every shard, merged' },
      { name: 'node-local', description: "The sidecar's own storage node: change feed, scan, followers" },
      { name: 'health', description: 'Liveness' },
    ],
    paths,
    components: {
      securitySchemes: {
        clientCertificate: { type: 'mutualTLS', description: 'A certificate from the cluster\'s client CA; each request needs its capability (read, write), else 403 CAPABILITY_DENIED' },
      },
      schemas: {
        Error: obj(
          {
            error: { const: true },
            message: str,
            status_code: { type: 'integer' },
            code: { enum: Object.keys(ERRORS), description: 'Stable; see docs/errors.md' },
            missing_shards: { type: 'array', items: str },
            missing_copies: { type: 'array', items: str },
          },
          ['error', 'message', 'status_code', 'code'],
          true,
        ),
        Change: obj({ operation: { enum: ['PUT', 'DELETE'] }, key: str, sequence: int, old_val: { type: ['string', 'null'] }, new_val: { type: ['string', 'null'] }, committed_at: { type: 'string', format: 'date-time' } }, ['operation', 'key', 'sequence', 'old_val', 'new_val']),
      },
    },
  };
}
