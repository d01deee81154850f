// What the sidecar observes of one request: begin() starts its record (request-record.ts) and
// server span and rewrites its trace headers for the next hop; reply() notes error codes, counts
// relayed bytes and echoes the traceparent; finish() ends the span and writes the access-log line.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { errorBody } from '../../src/errors.js';
import type { Clock } from '../../src/runtime.js';
import type { MeshPeer } from '../peer-identity.js';
import { EPOCH_HEADER, SHARD_HEADER } from '../mesh-headers.js';
import type { Reply } from '../respond.js';
import type { AccessLog } from './access-log.js';
import { TRACEPARENT, TRACESTATE } from './trace-context.js';
import type { Tracing } from './tracing.js';
import { RequestObs, attachObs } from './request-record.js';

export { RequestObs, obsOf } from './request-record.js';

const MAX_PATH = 1024;

/** How an answer looked when it was done: its status and the headers it was sent with. */
export interface Sent {
  status: number;
  header(name: string): unknown;
}

const num = (v: unknown): number | null => {
  const n = Number(Array.isArray(v) ? v[0] : v);
  return v === undefined || !Number.isFinite(n) ? null : n;
};

export class Observability {
  constructor(
    private readonly tracing: Tracing,
    private readonly log: AccessLog,
    private readonly clock: Clock,
    private readonly self: string,
    /** The worker slot (docs/sidecar.md "Workers"), null when the sidecar is one process. */
    private readonly worker: number | null = null,
  ) {}

  /**
   * Starts a request's record and its server span, and rewrites its trace headers to what goes on
   * to the next hop: this sidecar's span as the parent, the tracestate kept only with a valid
   * parent (a malformed traceparent restarts the trace).
   */
  begin(listener: 'app' | 'mesh', method: string, path: string, headers: IncomingHttpHeaders, peer?: MeshPeer): RequestObs {
    const trace = this.tracing.start(`${listener} receive`, headers, { 'http.request.method': method, 'url.path': path.slice(0, MAX_PATH), 'themis.listener': listener });
    headers[TRACEPARENT] = trace.header();
    if (trace.state === undefined) delete headers[TRACESTATE];
    else headers[TRACESTATE] = trace.state;
    const obs = new RequestObs(listener, this.clock.now(), method, path, num(headers['content-length']), trace, peer);
    attachObs(headers, obs);
    return obs;
  }

  /** `reply`, noting the error code, counting relayed bytes, and echoing the traceparent on every answer. */
  reply(obs: RequestObs, reply: Reply): Reply {
    const echo = (h: OutgoingHttpHeaders | undefined): OutgoingHttpHeaders => ({ ...h, [TRACEPARENT]: obs.trace.header() });
    return {
      json: (status, body, headers) => reply.json(status, body, echo(headers)),
      error: (err, log, headers) => {
        obs.code = errorBody(err).code;
        reply.error(err, log, echo(headers));
      },
      upstream: (up, headers) => {
        obs.bytesOut ??= 0;
        up.body.on('data', (c: Buffer) => (obs.bytesOut! += c.length));
        reply.upstream(up, echo(headers));
      },
      begin: (status, headers) => reply.begin(status, echo(headers)),
    };
  }

  /** Ends the server span and writes the access-log line, when the answer is done (or abandoned). */
  finish(obs: RequestObs, sent: Sent): void {
    const { status } = sent;
    const root = obs.trace.root;
    root.attr('http.response.status_code', status);
    const shard = sent.header(SHARD_HEADER);
    if (typeof shard === 'string') root.attr('themis.shard', shard);
    root.end(status === 0 || status >= 500 ? (obs.code ?? `status ${status}`) : undefined);
    if (!this.log.wants(status)) return;
    const p = obs.peer;
    this.log.write({
      time: new Date(obs.startedAt).toISOString(),
      sidecar: this.self,
      worker: this.worker,
      listener: obs.listener,
      method: obs.method,
      path: obs.path.length > MAX_PATH ? obs.path.slice(0, MAX_PATH) : obs.path,
      status,
      code: obs.code,
      duration_ms: round(performance.now() - obs.t0),
      upstream_ms: round(obs.upstreamMs),
      bytes_in: obs.bytesIn,
      bytes_out: obs.bytesOut ?? num(sent.header('content-length')) ?? 0,
      shard: typeof shard === 'string' ? shard : null,
      epoch: num(sent.header(EPOCH_HEADER)),
      peer: p ? { kind: p.kind, shard_id: p.identity.shardId || null, serial: p.serial } : null,
      retries: obs.retries,
      trace_id: obs.trace.traceId,
      span_id: root.spanId,
    });
  }
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;
