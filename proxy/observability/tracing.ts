// The spans of one request at this sidecar. Without tracing.otlp, only ids are made: the trace id
// is carried on (W3C traceparent), logged, and echoed, and nothing is recorded. With it, each
// stage is a span of the OpenTelemetry JS SDK, exported over OTLP/HTTP (JSON) in batches.
// Contexts are passed explicitly, never through AsyncLocalStorage: the hot path pays no async hook.
import type { IncomingHttpHeaders } from 'node:http';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, createTraceState, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import { BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { Random } from '../../src/runtime.js';
import type { TracingConfig } from '../../src/config/observability.js';
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

class OtelSpan implements StageSpan {
  readonly spanId: string;
  constructor(readonly span: Span) {
    this.spanId = span.spanContext().spanId;
  }
  attr(key: string, value: string | number | boolean): void {
    this.span.setAttribute(key, value);
  }
  end(error?: string): void {
    if (error !== undefined) this.span.setStatus({ code: SpanStatusCode.ERROR, message: error });
    this.span.end();
  }
}

/** Spans through the OpenTelemetry SDK, exported to `cfg.otlp` over OTLP/HTTP. */
export function otelTracing(cfg: TracingConfig, shardId: string): Tracing {
  const exporter = new OTLPTraceExporter({ url: cfg.otlp!.url, timeoutMillis: cfg.otlp!.timeoutMs });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'themis-sidecar', 'service.instance.id': shardId, 'themis.shard_id': shardId }),
    // A caller's decision stands; traces started here are kept at sampleRate.
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(cfg.sampleRate) }),
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: cfg.otlp!.exportEveryMs, maxQueueSize: 8192 })],
  });
  const tracer: Tracer = provider.getTracer('themis-mesh');
  return {
    start(name, headers, attrs) {
      const parent = parseTraceParent(headers[TRACEPARENT], headers[TRACESTATE]);
      const ctx = parent
        ? trace.setSpanContext(ROOT_CONTEXT, {
            traceId: parent.traceId,
            spanId: parent.spanId,
            traceFlags: parent.flags & TraceFlags.SAMPLED,
            isRemote: true,
            ...(parent.state ? { traceState: createTraceState(parent.state) } : {}),
          })
        : ROOT_CONTEXT;
      const server = tracer.startSpan(name, { kind: SpanKind.SERVER, ...(attrs ? { attributes: attrs } : {}) }, ctx);
      const root = new OtelSpan(server);
      const { traceId, traceFlags } = server.spanContext();
      const sampled = (traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED;
      return {
        traceId,
        root,
        sampled,
        state: parent?.state,
        child(childName, kind = 'internal', p = root) {
          const under = trace.setSpan(ROOT_CONTEXT, (p as OtelSpan).span);
          return new OtelSpan(tracer.startSpan(childName, { kind: kind === 'client' ? SpanKind.CLIENT : SpanKind.INTERNAL }, under));
        },
        header: (via) => formatTraceParent(traceId, (via ?? root).spanId, sampled),
      };
    },
    shutdown: () => provider.shutdown(),
  };
}
