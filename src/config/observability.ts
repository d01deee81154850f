// The sidecar's observability settings: the access log (accessLog) and trace export (tracing).
// Validated at start-up like the rest of the config; every error names the field.
import { resolve } from 'node:path';
import { ConfigError, asObject, int, isLoopbackHost, join, rejectUnknown, str, type Raw } from './validate.js';

export interface AccessLogConfig {
  /** off: no lines; on: one per request; sampled: a `rate` of requests, and every answer ≥ 500. */
  readonly mode: 'off' | 'on' | 'sampled';
  readonly rate: number;
  /** A file the lines are appended to (reopened on SIGHUP, for logrotate), or undefined: stdout. */
  readonly file: string | undefined;
}

export interface TracingConfig {
  /** Of the traces this sidecar starts, the fraction recorded (a caller's traceparent decides for its own). */
  readonly sampleRate: number;
  /** OTLP/HTTP export; without it, trace ids are carried and logged but no span is recorded. */
  readonly otlp: { readonly url: string; readonly timeoutMs: number; readonly exportEveryMs: number } | undefined;
}

/** A number from 0 to 1 (a fraction). */
function fraction(o: Raw, key: string, prefix: string, dflt: number): number {
  const v = o[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) {
    throw new ConfigError(join(prefix, key), `expected a fraction from 0 to 1, got ${JSON.stringify(v)}; write e.g. 0.01 for one request in a hundred`);
  }
  return v;
}

export function accessLogConfig(raw: unknown, baseDir: string): AccessLogConfig {
  const o = asObject(raw ?? {}, 'accessLog');
  rejectUnknown(o, ['mode', 'rate', 'file'], 'accessLog');
  const mode = str(o, 'mode', 'accessLog', 'off');
  if (mode !== 'off' && mode !== 'on' && mode !== 'sampled') throw new ConfigError('accessLog.mode', `"${mode}" is not one of off, on, sampled`);
  if (mode !== 'sampled' && o.rate !== undefined) throw new ConfigError('accessLog.rate', `a rate applies only to mode "sampled" (mode is "${mode}"); remove it, or write "mode": "sampled"`);
  if (mode === 'sampled' && o.rate === undefined) throw new ConfigError('accessLog.rate', 'mode "sampled" needs a rate; write e.g. 0.01 for one request in a hundred');
  const rate = mode === 'on' ? 1 : mode === 'off' ? 0 : fraction(o, 'rate', 'accessLog', 0);
  const file = o.file === undefined ? undefined : resolve(baseDir, str(o, 'file', 'accessLog'));
  return Object.freeze({ mode, rate, file });
}

export function tracingConfig(raw: unknown): TracingConfig {
  const o = asObject(raw ?? {}, 'tracing');
  rejectUnknown(o, ['sampleRate', 'otlp'], 'tracing');
  const sampleRate = fraction(o, 'sampleRate', 'tracing', 1);
  if (o.otlp === undefined) return Object.freeze({ sampleRate, otlp: undefined });
  const x = asObject(o.otlp, 'tracing.otlp');
  rejectUnknown(x, ['url', 'timeoutMs', 'exportEveryMs'], 'tracing.otlp');
  const url = str(x, 'url', 'tracing.otlp');
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError('tracing.otlp.url', `"${url.slice(0, 80)}" is not a URL; write e.g. http://127.0.0.1:4318/v1/traces (an OpenTelemetry Collector's OTLP/HTTP receiver)`);
  }
  // Spans name paths and entity keys: plaintext only to a collector on this host.
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && isLoopbackHost(u.hostname.replace(/^\[|\]$/g, '')))) {
    throw new ConfigError('tracing.otlp.url', `${u.protocol}//${u.host} is not allowed: write http:// for a collector on loopback (e.g. http://127.0.0.1:4318/v1/traces), or https:// for a remote one`);
  }
  return Object.freeze({
    sampleRate,
    otlp: Object.freeze({
      url: u.href,
      timeoutMs: int(x, 'timeoutMs', 'tracing.otlp', 10_000, 100, 120_000),
      exportEveryMs: int(x, 'exportEveryMs', 'tracing.otlp', 5_000, 100, 600_000),
    }),
  });
}
