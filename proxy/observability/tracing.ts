// The spans of one request at this sidecar. Without tracing.otlp, only ids are made: the trace id
// is carried on (W3C traceparent), logged, and echoed, and nothing is recorded. With it, each
// stage is a span of the OpenTelemetry JS SDK, exported over OTLP/HTTP (JSON) in batches
// (otel-tracing.ts, loaded only then: the SDK is 200 modules a sidecar without it need not hold).
// Contexts are passed explicitly, never through AsyncLocalStorage: the hot path pays no async hook.
import type { IncomingHttpHeaders } from 'node:http';
import type { Attributes } from '@opentelemetry/api';
import type { Random } from '../../src/runtime.js';
import { formatTraceParent, parseTraceParent, TRACEPARENT, TRACESTATE } from './trace-context.js';

/** One stage of a request (a child span), or the server span itself. */
export interface StageSpan {
  readonly spanId: string;
  attr(key: string, value: string | number | boolean): void;
  /** Ends the span; `error` marks it failed with that code or message. */
  end(error?: string): void;
}

export type StageKind = 'internal' | 'client';

/** This sidecar's part of a request's trace. */
export interface RequestTrace {
  readonly traceId: string;
  /** The server span: what the answer's traceparent names. */
  readonly root: StageSpan;
  readonly sampled: boolean;
  /** The caller's tracestate, carried on unchanged (undefined for a new trace). */
  readonly state: string | undefined;
  /** A child of `parent` (default: the server span). */
  child(name: string, kind?: StageKind, parent?: StageSpan): StageSpan;
  /** The traceparent for a hop made by `via` (default: the server span). */
  header(via?: StageSpan): string;
}

export interface Tracing {
  /** Starts this sidecar's server span for a request, under the caller's traceparent if valid. */
  start(name: string, headers: IncomingHttpHeaders, attrs?: Attributes): RequestTrace;
  shutdown(): Promise<void>;
}

const NOOP_END = () => undefined;

/** Ids only: nothing recorded, nothing exported. */
export function idTracing(random: Random): Tracing {
  const span = (spanId: string): StageSpan => ({ spanId, attr: NOOP_END, end: NOOP_END });
  return {
    start(_name, headers) {
      const parent = parseTraceParent(headers[TRACEPARENT], headers[TRACESTATE]);
      const traceId = parent?.traceId ?? random.bytes(16).toString('hex');
      const root = span(random.bytes(8).toString('hex'));
      // A trace this sidecar starts is not sampled: it records nothing.
      const sampled = parent ? (parent.flags & 1) === 1 : false;
      return {
        traceId,
        root,
        sampled,
        state: parent?.state,
        child: () => root,
        header: (via) => formatTraceParent(traceId, (via ?? root).spanId, sampled),
      };
    },
    shutdown: () => Promise.resolve(),
  };
}
