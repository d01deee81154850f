// The storage API described once: every path and method, the operation it is, the capability
// a mesh peer needs for it and what its body must be. The storage node routes by this table,
// the sidecar classifies requests by it, and a client SDK can describe its calls from it.
import { ThemisError } from '../errors.js';

export type Capability = 'read' | 'write' | 'replicate' | 'admin';
export type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';
/** What the sidecar does with it: route one key, fan out, or serve from this node only. */
export type OperationKind = 'entity' | 'entity-post' | 'query' | 'vector' | 'changefeed' | 'scan' | 'health';

export interface Route {
  readonly id: string;
  readonly method: Method;
  /** `{key}` stands for one percent-encoded path segment (a URN or table:uuid). */
  readonly path: string;
  readonly operation: OperationKind;
  readonly capability: Capability;
  /** `json-object`: a JSON object in UTF-8; `none`: no body is read. */
  readonly body: 'none' | 'json-object';
}

export const ROUTES = [
  { id: 'health', method: 'GET', path: '/health', operation: 'health', capability: 'read', body: 'none' },
  { id: 'scan', method: 'GET', path: '/entities', operation: 'scan', capability: 'replicate', body: 'none' },
  { id: 'entity-post', method: 'POST', path: '/entities', operation: 'entity-post', capability: 'write', body: 'json-object' },
  { id: 'entity-get', method: 'GET', path: '/entities/{key}', operation: 'entity', capability: 'read', body: 'none' },
  { id: 'entity-put', method: 'PUT', path: '/entities/{key}', operation: 'entity', capability: 'write', body: 'json-object' },
  { id: 'entity-delete', method: 'DELETE', path: '/entities/{key}', operation: 'entity', capability: 'write', body: 'none' },
  { id: 'query', method: 'POST', path: '/query', operation: 'query', capability: 'read', body: 'json-object' },
  { id: 'vector', method: 'POST', path: '/vector/search', operation: 'vector', capability: 'read', body: 'json-object' },
  { id: 'changefeed', method: 'GET', path: '/changefeed', operation: 'changefeed', capability: 'replicate', body: 'none' },
  { id: 'changefeed-stream', method: 'GET', path: '/changefeed/stream', operation: 'changefeed', capability: 'replicate', body: 'none' },
  { id: 'feed-followers-get', method: 'GET', path: '/changefeed/followers', operation: 'changefeed', capability: 'replicate', body: 'none' },
  { id: 'feed-followers-post', method: 'POST', path: '/changefeed/followers', operation: 'changefeed', capability: 'replicate', body: 'json-object' },
] as const satisfies readonly Route[];

export type RouteId = (typeof ROUTES)[number]['id'];

export const KEY_PREFIX = '/entities/';
const BY_PATH = new Map<string, Map<string, Route>>();
for (const r of ROUTES as readonly Route[]) {
  if (!BY_PATH.has(r.path)) BY_PATH.set(r.path, new Map());
  BY_PATH.get(r.path)!.set(r.method, r);
}

export interface Matched {
  route: Route & { id: RouteId };
  /** The path without the query string. */
  path: string;
  /** The query string without `?` ('' when none). */
  query: string;
  /** For `/entities/{key}`: the key segment, still percent-encoded. */
  segment: string;
}

/** Finds the route of `method url`; throws ROUTE_NOT_FOUND or METHOD_NOT_ALLOWED (with `allow`). */
export function matchRoute(method: string, url: string | undefined): Matched {
  // HTTP/2 CONNECT requests carry no :path.
  if (url === undefined) throw new ThemisError('ROUTE_NOT_FOUND', `no route for ${method.slice(0, 16)} without a path`);
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const keyed = path.startsWith(KEY_PREFIX);
  const methods = BY_PATH.get(keyed ? '/entities/{key}' : path);
  if (methods === undefined) throw new ThemisError('ROUTE_NOT_FOUND', `no route ${path.slice(0, 100)}; see docs/storage-api.md`);
  const route = methods.get(method);
  if (route === undefined) {
    const allow = [...methods.keys()].join(', ');
    throw new ThemisError('METHOD_NOT_ALLOWED', `${method.slice(0, 16)} is not allowed here; use ${allow}`, { allow });
  }
  return { route: route as Matched['route'], path, query: q < 0 ? '' : url.slice(q + 1), segment: keyed ? path.slice(KEY_PREFIX.length) : '' };
}
