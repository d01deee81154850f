// The one error table: every stable error code, its HTTP status and whether a client may
// retry. `respond.ts`-style writers turn a ThemisError into `{error, message, status_code, code}`.
// docs/errors.md documents every code; a unit test keeps the two in step.

export const ERRORS = {
  // Input the caller can fix (4xx).
  INVALID_KEY: { status: 400, retryable: false, summary: 'The entity key is neither a valid URN nor a valid ThemisDB key.' },
  INVALID_JSON: { status: 400, retryable: false, summary: 'The request body is not valid JSON.' },
  INVALID_BODY: { status: 400, retryable: false, summary: 'The JSON body lacks a required field or has a field of the wrong type.' },
  INVALID_BLOB: { status: 400, retryable: false, summary: 'The `blob` string is not itself valid JSON.' },
  INVALID_QUERY: { status: 400, retryable: false, summary: 'A /query or /vector/search body is malformed.' },
  INVALID_PARAMETER: { status: 400, retryable: false, summary: 'A query-string parameter is malformed or out of range.' },
  INVALID_CONTINUATION: { status: 400, retryable: false, summary: 'The continuation token is malformed or belongs to another query.' },
  CONTINUATION_STALE: { status: 409, retryable: false, summary: 'The continuation token was issued at another topology epoch; restart the query.' },
  ENTITY_NOT_FOUND: { status: 404, retryable: false, summary: 'No entity is stored under this key.' },
  ROUTE_NOT_FOUND: { status: 404, retryable: false, summary: 'No such path in the API.' },
  CONSOLE_DISABLED: { status: 404, retryable: false, summary: 'Admin port: the web console is off (admin.console is false, the default).' },
  HOST_NOT_ALLOWED: { status: 403, retryable: false, summary: 'Admin port: the console answers only requests whose Host header names a loopback address.' },
  METHOD_NOT_ALLOWED: { status: 405, retryable: false, summary: 'The path exists but not for this HTTP method.' },
  CHANGEFEED_TRIMMED: { status: 410, retryable: false, summary: 'The change log no longer holds the records after this from_seq (or Last-Event-ID); make a full copy, then follow from oldest_seq - 1 or later.' },
  PAYLOAD_TOO_LARGE: { status: 413, retryable: false, summary: 'The body or blob exceeds the configured size limit.' },
  INVALID_AQL: { status: 400, retryable: false, summary: 'A POST /query/aql body or its AQL text is malformed (syntax error, unknown or missing bind parameter, bad option).' },
  REQUEST_TIMEOUT: { status: 408, retryable: true, summary: 'The request body did not arrive whole within the listener\'s time limit; nothing of it was applied.' },
  // Mesh checks on a signed request, in the order they run (ARCHITECTURE.md "Mesh protocol").
  INVALID_HEADER: { status: 400, retryable: false, summary: 'A request header the mesh reads (such as x-themis-read) has a value it does not know.' },
  SIGNATURE_HEADERS_INVALID: { status: 400, retryable: false, summary: 'A signed-request header is missing or malformed.' },
  IDENTITY_MISMATCH: { status: 401, retryable: false, summary: 'x-themis-shard-id or x-themis-cert-serial does not match the TLS peer certificate.' },
  CAPABILITY_DENIED: { status: 403, retryable: false, summary: "The peer's certificate lacks the capability this operation needs." },
  TIMESTAMP_OUT_OF_WINDOW: { status: 401, retryable: false, summary: 'x-themis-timestamp is more than the allowed skew (60 s) from this shard\'s clock.' },
  SIGNATURE_INVALID: { status: 401, retryable: false, summary: 'The signature does not verify over the canonical string with the peer certificate key.' },
  REPLAY_DETECTED: { status: 409, retryable: false, summary: 'This nonce was already used by this sender within the replay window, or the request is older than the replay cache can vouch for (e.g. from before a restart).' },
  NOT_OWNER: { status: 421, retryable: true, summary: 'This shard does not own the key at its topology epoch; refresh the topology and retry.' },
  // Certificate renewal (themis-pki serve, docs/pki.md "Automatic renewal").
  CERTIFICATE_REQUIRED: { status: 401, retryable: false, summary: 'Renewal needs the current certificate, presented as the TLS client certificate.' },
  INVALID_CSR: { status: 400, retryable: false, summary: 'The renewal body is not a PKCS#10 request self-signed with a new key.' },
  RENEWAL_REFUSED: { status: 403, retryable: false, summary: 'The presented certificate may not renew: revoked, expired, not from this CA, or not a shard certificate (`reason` says which).' },
  IDENTITY_CHANGE_REFUSED: { status: 403, retryable: false, summary: 'The renewal asks for another shard id, token range, capabilities, role or names than the current certificate holds; such changes need an operator.' },
  // The server's side (5xx).
  INTERNAL: { status: 500, retryable: false, summary: 'An unexpected error; the server logged it at warn level.' },
  AQL_NOT_SUPPORTED: { status: 501, retryable: false, summary: 'Valid AQL outside the subset the mesh translates into a scatter-gather query; the message names the construct and the subset.' },
  TRANSACTIONS_NOT_SUPPORTED: { status: 501, retryable: false, summary: 'The mesh has no transactions: /transaction/* and any request carrying X-Transaction-Id are refused, and nothing of them is applied.' },
  GRAPH_NOT_SUPPORTED: { status: 501, retryable: false, summary: 'The mesh carries no graph traversal (POST /graph/traverse, AQL traversals).' },
  NOT_SUPPORTED: { status: 501, retryable: false, summary: 'A known ThemisDB route or option that the mesh does not carry (docs/compatibility.md says which and why).' },
  UPSTREAM_PROTOCOL_ERROR: { status: 502, retryable: true, summary: 'The storage node or peer sidecar broke the exchange (reset, malformed answer, wrong identity).' },
  UPSTREAM_UNAVAILABLE: { status: 503, retryable: true, summary: 'The storage node or peer sidecar that owns the key cannot be reached.' },
  REPLICATION_UNAVAILABLE: { status: 503, retryable: true, summary: 'The primary holds the write, but not enough replicas confirmed it in time; it is not reported as done (missing_copies names them).' },
  FAILOVER_IN_PROGRESS: { status: 503, retryable: true, summary: 'This shard is not, or no longer certainly, the acting primary of the key\'s range (its failover lease lapsed, or an election runs); the write is not reported as done. Retry: the acting primary answers once elected.' },
  SHARDS_UNAVAILABLE: { status: 503, retryable: true, summary: 'A scatter-gather query could not reach every shard; the answer names them (allow_partial: true returns the rest).' },
  UPSTREAM_TIMEOUT: { status: 504, retryable: true, summary: 'The storage node or peer sidecar did not answer within the request timeout.' },
  STORAGE_UNAVAILABLE: { status: 503, retryable: true, summary: 'The storage engine is not open (starting or stopping).' },
  BODY_BUDGET_EXCEEDED: { status: 503, retryable: true, summary: 'The mesh port already holds its budget of request bodies in flight (mesh.maxInflightBodyBytes); nothing of this one was applied.' },
  CLUSTER_STATUS_UNAVAILABLE: { status: 503, retryable: true, summary: 'Admin port: the console cannot read the cluster\'s state from etcd just now.' },
  REPLAY_STATE_UNAVAILABLE: { status: 503, retryable: true, summary: 'The replay guard could not write its high-water marks durably (disk full or failing), or a worker cannot reach the control process that holds them; signed requests that need a new mark are refused.' },
} as const satisfies Record<string, { status: number; retryable: boolean; summary: string }>;

export type ErrorCode = keyof typeof ERRORS;

export class ThemisError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'ThemisError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.details = details;
  }
}

export interface ErrorBody {
  error: true;
  message: string;
  status_code: number;
  code: string;
  [extra: string]: unknown;
}

/** The ThemisDB error shape plus our stable code; unknown errors become INTERNAL. */
export function errorBody(err: unknown): ErrorBody {
  if (err instanceof ThemisError) {
    return { ...err.details, error: true, message: err.message, status_code: err.status, code: err.code };
  }
  return { error: true, message: 'internal error', status_code: 500, code: 'INTERNAL' };
}
