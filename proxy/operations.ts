// What a request asks for, in the sidecar's terms: the operation, the capability a mesh peer
// needs for it and, for one entity, its key. Read from the one API table (src/api/routes.ts).
import { ThemisError, type ErrorCode } from '../src/errors.js';
import { matchRoute, type Capability } from '../src/api/routes.js';
import { matchCompat } from '../src/api/compat-routes.js';

export type { Capability } from '../src/api/routes.js';

export type Operation =
  | { kind: 'entity'; method: 'GET' | 'PUT' | 'DELETE'; rawKey: string; capability: Capability }
  | { kind: 'entity-post'; capability: 'write' }
  | { kind: 'query' | 'vector'; capability: 'read' }
  | { kind: 'changefeed' | 'scan'; capability: 'replicate' }
  | { kind: 'health'; capability: 'read' }
  // ThemisDB's own routes beyond the storage API (src/api/compat-routes.ts):
  | { kind: 'topology' | 'aql'; capability: 'read' }
  | { kind: 'unsupported'; capability: 'read'; code: ErrorCode; message: string };

/** Classifies `method path`; throws ROUTE_NOT_FOUND / METHOD_NOT_ALLOWED / INVALID_KEY. */
export function classifyRequest(method: string, url: string | undefined): Operation {
  let matched;
  try {
    matched = matchRoute(method, url);
  } catch (e) {
    // Not the storage API: one of ThemisDB's other routes, or a plain 404.
    if (!(e instanceof ThemisError) || e.code !== 'ROUTE_NOT_FOUND' || url === undefined) throw e;
    const q = url.indexOf('?');
    const compat = matchCompat(method, q < 0 ? url : url.slice(0, q));
    if (compat === undefined) throw e;
    return compat.kind === 'refused' ? { kind: 'unsupported', capability: 'read', code: compat.code, message: compat.message } : { kind: compat.kind, capability: 'read' };
  }
  const { route, segment } = matched;
  if (route.operation !== 'entity') return { kind: route.operation, capability: route.capability } as Operation;
  let rawKey: string;
  try {
    rawKey = decodeURIComponent(segment);
  } catch {
    throw new ThemisError('INVALID_KEY', 'the key in the path is not valid percent-encoding');
  }
  return { kind: 'entity', method: route.method as 'GET' | 'PUT' | 'DELETE', rawKey, capability: route.capability };
}

/** A method that changes an entity (PUT, POST, DELETE). */
export function isWriteMethod(method: string | undefined): boolean {
  return method === 'PUT' || method === 'POST' || method === 'DELETE';
}

/** A request that writes one entity: the ones a primary must have confirmed by its replicas. */
export function isEntityWrite(op: Operation): boolean {
  return op.kind === 'entity-post' || (op.kind === 'entity' && isWriteMethod(op.method));
}
