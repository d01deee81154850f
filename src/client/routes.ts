// Which client method serves each route of the API table (src/api/routes.ts). The type makes
// the map total: a route added to the table does not compile until a method covers it. The
// OpenAPI document names the same ids as its operationIds (src/api/openapi.ts).
import type { RouteId } from '../api/routes.js';
import type { ThemisClient } from './client.js';

type Method = { [K in keyof ThemisClient]: ThemisClient[K] extends (...a: never[]) => unknown ? K : never }[keyof ThemisClient];

export const SDK_METHODS = {
  health: 'health',
  scan: 'scan',
  'entity-post': 'create',
  'entity-get': 'get',
  'entity-put': 'put',
  'entity-delete': 'delete',
  query: 'query',
  vector: 'vectorSearch',
  changefeed: 'changes',
  'changefeed-stream': 'changeStream',
  'feed-followers-get': 'followers',
  'feed-followers-post': 'registerFollower',
} as const satisfies Record<RouteId, Method>;
