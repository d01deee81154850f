// The record of one request at this sidecar, from arrival to answer: its trace, the time spent
// upstream, retries and bytes (request-obs.ts fills it in and writes the access-log line). It rides
// on the request's header object under a symbol, which no forwarding copies (endToEndHeaders
// enumerates string keys), so every path that forwards those headers finds it.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { MeshPeer } from '../peer-identity.js';
import type { RequestTrace, StageSpan } from './tracing.js';

const OBS = Symbol('themis.requestObs');

export class RequestObs {
  readonly t0 = performance.now();
  upstreamMs = 0;
  retries = 0;
  /** Bytes of relayed answer bodies, counted as they pass; undefined when none was relayed. */
  bytesOut: number | undefined;
  code: string | null = null;
  constructor(
    readonly listener: 'app' | 'mesh',
    readonly startedAt: number,
    readonly method: string,
    readonly path: string,
    readonly bytesIn: number | null,
    readonly trace: RequestTrace,
    readonly peer: MeshPeer | undefined,
  ) {}

  /** Times one upstream exchange, until its answer's headers, under a span `name` (a child of `parent`). */
  upstream(name: string, parent?: StageSpan): { span: StageSpan; done(status?: number, error?: string): void } {
    const span = this.trace.child(name, 'client', parent);
    const t = performance.now();
    return {
      span,
      done: (status, error) => {
        this.upstreamMs += performance.now() - t;
        if (status !== undefined) span.attr('http.response.status_code', status);
        span.end(error);
      },
    };
  }
}

/** The record of the request whose headers these are (undefined for requests the sidecar makes itself). */
export function obsOf(headers: IncomingHttpHeaders | OutgoingHttpHeaders | undefined): RequestObs | undefined {
  return headers ? (headers as { [OBS]?: RequestObs })[OBS] : undefined;
}

/** Puts the record on the request's headers (Observability.begin). */
export function attachObs(headers: IncomingHttpHeaders, obs: RequestObs): void {
  (headers as { [OBS]?: RequestObs })[OBS] = obs;
}
