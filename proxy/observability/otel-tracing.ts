// tracing.otlp: each stage of a request a span of the OpenTelemetry JS SDK, exported over
// OTLP/HTTP (JSON) in batches (the Tracing of tracing.ts). Imported by the sidecar only when
// tracing.otlp is configured.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, createTraceState, trace, type Span, type Tracer } from '@opentelemetry/api';
import { BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { TracingConfig } from '../../src/config/observability.js';
import { formatTraceParent, parseTraceParent, TRACEPARENT, TRACESTATE } from './trace-context.js';
import type { StageSpan, Tracing } from './tracing.js';

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
