// What a request asks for: its operation, the capability that operation needs, and the
// entity key when it addresses one. The single table both listeners consult.
import { ThemisError } from '../src/errors.js';

export type Capability = 'read' | 'write' | 'replicate' | 'admin';

export type Operation =
  | { kind: 'entity'; method: 'GET' | 'PUT' | 'DELETE'; rawKey: string; capability: Capability }
  | { kind: 'entity-post'; capability: 'write' }
  | { kind: 'query' | 'vector'; capability: 'read' }
  | { kind: 'changefeed' | 'scan'; capability: 'replicate' }
  | { kind: 'health'; capability: 'read' };

const ENTITY_PREFIX = '/entities/';

/** Classifies `method path`; throws ROUTE_NOT_FOUND / METHOD_NOT_ALLOWED / INVALID_KEY. */
export function classifyRequest(method: string, url: string | undefined): Operation {
  // HTTP/2 CONNECT requests carry no :path.
  if (url === undefined) throw new ThemisError('ROUTE_NOT_FOUND', `no route for ${method} without a path`);
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  if (path.startsWith(ENTITY_PREFIX)) {
    let rawKey: string;
    try {
      rawKey = decodeURIComponent(path.slice(ENTITY_PREFIX.length));
    } catch {
      throw new ThemisError('INVALID_KEY', 'the key in the path is not valid percent-encoding');
    }
    if (method === 'GET') return { kind: 'entity', method: 'GET', rawKey, capability: 'read' };
    if (method === 'PUT' || method === 'DELETE') return { kind: 'entity', method, rawKey, capability: 'write' };
    throw notAllowed('GET, PUT, DELETE');
  }
  switch (path) {
    case '/entities':
      if (method === 'POST') return { kind: 'entity-post', capability: 'write' };
      if (method === 'GET') return { kind: 'scan', capability: 'replicate' };
      throw notAllowed('GET, POST');
    case '/query':
      if (method === 'POST') return { kind: 'query', capability: 'read' };
      throw notAllowed('POST');
    case '/vector/search':
      if (method === 'POST') return { kind: 'vector', capability: 'read' };
      throw notAllowed('POST');
    case '/changefeed':
      if (method === 'GET') return { kind: 'changefeed', capability: 'replicate' };
      throw notAllowed('GET');
    case '/health':
      if (method === 'GET') return { kind: 'health', capability: 'read' };
      throw notAllowed('GET');
    default:
      throw new ThemisError('ROUTE_NOT_FOUND', `no route for ${method} ${path.slice(0, 100)}`);
  }
}

function notAllowed(allow: string): ThemisError {
  return new ThemisError('METHOD_NOT_ALLOWED', `method not allowed; use ${allow}`, { allow });
}
