// ThemisDB's HTTP API beyond the storage API of routes.ts, as the sidecar's app port sees it:
// the two routes it answers for ThemisDB's clients (cluster topology, AQL) and every other
// known ThemisDB route, refused with 501 and a stable code, so that "the mesh does not carry
// this" is told apart from a typo (404 ROUTE_NOT_FOUND). docs/compatibility.md lists the same
// table; a unit test keeps the two in step.
import { ThemisError, type ErrorCode } from '../errors.js';

/** The routes the sidecar itself answers (exact paths). */
export const SERVED = [
  { id: 'topology', method: 'GET', path: '/_admin/cluster/topology' },
  { id: 'aql', method: 'POST', path: '/query/aql' },
] as const;

const USE_QUERY = 'use POST /query or POST /query/aql';

/** Known ThemisDB routes the mesh refuses, any method; `prefix` covers the path and everything below it. */
export const REFUSED = [
  { id: 'transactions', path: '/transaction', prefix: true, refused: 'TRANSACTIONS_NOT_SUPPORTED', why: 'the mesh has no cross-shard transactions; write each entity with PUT (idempotent, safe to repeat) and design for per-entity atomicity' },
  { id: 'graph', path: '/graph', prefix: true, refused: 'GRAPH_NOT_SUPPORTED', why: 'a traversal crosses shards edge by edge and the mesh carries no graph queries; store adjacency in entities and read them by key' },
  { id: 'vector-admin', path: '/vector', prefix: true, refused: 'NOT_SUPPORTED', why: 'vector index management and batch insert are per node; write vectors as entity fields (PUT) and search with POST /vector/search' },
  { id: 'index', path: '/index', prefix: true, refused: 'NOT_SUPPORTED', why: `the storage nodes scan instead of keeping secondary indexes; ${USE_QUERY}` },
  { id: 'llm', path: '/llm', prefix: true, refused: 'NOT_SUPPORTED', why: 'LLM interaction storage is not part of the mesh; store interactions as entities' },
  { id: 'cache', path: '/cache', prefix: true, refused: 'NOT_SUPPORTED', why: 'the semantic cache is not part of the mesh' },
  { id: 'content', path: '/content', prefix: true, refused: 'NOT_SUPPORTED', why: 'content import and chunking are not part of the mesh; store content as entities' },
  { id: 'api', path: '/api', prefix: true, refused: 'NOT_SUPPORTED', why: "ThemisDB's administration API (audit, keys, reports, snapshots, diff, replication, geo, plugins) is per node; the mesh has its own (themis-admin, the admin port)" },
  { id: 'auth', path: '/auth', prefix: true, refused: 'NOT_SUPPORTED', why: 'the mesh authenticates apps by the app socket or client certificates (docs/sidecar.md), not by sessions' },
  { id: 'pii', path: '/pii', prefix: true, refused: 'NOT_SUPPORTED', why: 'PII reveal and delete are not part of the mesh' },
  { id: 'admin', path: '/admin', prefix: true, refused: 'NOT_SUPPORTED', why: 'shard repair is per node; the mesh moves and repairs ranges with themis-admin' },
  { id: 'cluster-admin', path: '/_admin', prefix: true, refused: 'NOT_SUPPORTED', why: 'only GET /_admin/cluster/topology is answered (with this sidecar as the one endpoint)' },
  { id: 'stats', path: '/stats', refused: 'NOT_SUPPORTED', why: "the sidecar's admin port serves /metrics (Prometheus) for the mesh" },
  { id: 'metrics', path: '/metrics', prefix: true, refused: 'NOT_SUPPORTED', why: "the sidecar's admin port serves /metrics (Prometheus), /healthz and /readyz" },
  { id: 'health-probes', path: '/health', prefix: true, refused: 'NOT_SUPPORTED', why: "GET /health answers here; the sidecar's admin port serves /healthz and /readyz" },
  { id: 'version', path: '/version', refused: 'NOT_SUPPORTED', why: 'the mesh does not report a ThemisDB version' },
] as const satisfies readonly { id: string; path: string; prefix?: true; refused: ErrorCode; why: string }[];

export type Compat = { kind: 'topology' } | { kind: 'aql' } | { kind: 'refused'; code: ErrorCode; message: string };

/**
 * What the sidecar does with `method path` that the storage API does not know: answer it,
 * refuse it (501), or nothing (undefined: a plain 404). A served path with another method is
 * METHOD_NOT_ALLOWED.
 */
export function matchCompat(method: string, path: string): Compat | undefined {
  for (const r of SERVED) {
    if (path !== r.path) continue;
    if (method !== r.method) throw new ThemisError('METHOD_NOT_ALLOWED', `${method.slice(0, 16)} is not allowed here; use ${r.method}`, { allow: r.method });
    return { kind: r.id };
  }
  for (const r of REFUSED) {
    const hit = path === r.path || ('prefix' in r && r.prefix && path.startsWith(r.path + '/'));
    if (hit) return { kind: 'refused', code: r.refused, message: `${method.slice(0, 16)} ${path.slice(0, 100)} is a ThemisDB route the mesh does not carry: ${r.why} (docs/compatibility.md)` };
  }
  return undefined;
}
