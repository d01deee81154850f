// themis-mesh/client: a typed client for the sidecar's app API (and a mesh port with a client
// certificate). Needs no server dependency: node's own modules and undici only (checked by
// test/unit/client/imports.test.ts).
export { ThemisClient, type ClientOptions, type CreateOptions, type Entity, type Written, type VectorSearch, type VectorHit, type Health, type Follower } from './client.js';
export type { CallOptions, RouteCounts } from './call.js';
export { ThemisClientError, CLIENT_ERRORS, type AnyErrorCode, type ClientErrorCode, type ErrorCode, type RetryStop } from './errors.js';
export { urn, themisKey, parseKey, parseTable, MODELS, type EntityKey, type Model } from './keys.js';
export { Query, type QueryPage, type EntityRow, type RangeBounds } from './query.js';
export { ChangeFeed, ChangeStream, type Change, type ChangesOptions, type ScanOptions, type ScannedEntity } from './changefeed.js';
export { RetryBudget, type RetryOptions, type RetryBudgetOptions, type RetryPolicy } from './retry.js';
export { type MeshTransportOptions } from './transport.js';
export { SDK_METHODS } from './routes.js';
