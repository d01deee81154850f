import t from 'tap';
import { validateSidecarConfig } from '../../../src/config/sidecar.js';

const good = {
  shardId: 'shard-001',
  tls: { cert: 'c.pem', key: 'k.pem', ca: 'ca.pem', crls: ['crl.pem'] },
  topology: { file: 'topology.json' },
};

t.test('defaults: no access log, trace ids carried, nothing exported', async (t) => {
  const c = validateSidecarConfig(good, '/etc/themis');
  t.same(c.accessLog, { mode: 'off', rate: 0, file: undefined });
  t.same(c.tracing, { sampleRate: 1, otlp: undefined });
});

t.test('good settings are taken, paths resolve against the config folder', async (t) => {
  const c = validateSidecarConfig({ ...good, accessLog: { mode: 'sampled', rate: 0.01, file: 'log/access.log' }, tracing: { sampleRate: 0.5, otlp: { url: 'http://127.0.0.1:4318/v1/traces', exportEveryMs: 200 } } }, '/etc/themis');
  t.same(c.accessLog, { mode: 'sampled', rate: 0.01, file: '/etc/themis/log/access.log' });
  t.same(c.tracing, { sampleRate: 0.5, otlp: { url: 'http://127.0.0.1:4318/v1/traces', timeoutMs: 10_000, exportEveryMs: 200 } });
  t.equal(validateSidecarConfig({ ...good, accessLog: { mode: 'on' } }, '/').accessLog.rate, 1);
  t.equal(validateSidecarConfig({ ...good, tracing: { otlp: { url: 'https://collector.example:4318/v1/traces' } } }, '/').tracing.otlp?.url, 'https://collector.example:4318/v1/traces');
});

t.test('each bad field is named', async (t) => {
  const cases: [string, Record<string, unknown>, string][] = [
    ['unknown mode', { accessLog: { mode: 'verbose' } }, 'accessLog.mode'],
    ['sampled without a rate', { accessLog: { mode: 'sampled' } }, 'accessLog.rate'],
    ['a rate with mode on', { accessLog: { mode: 'on', rate: 0.5 } }, 'accessLog.rate'],
    ['a rate above 1', { accessLog: { mode: 'sampled', rate: 2 } }, 'accessLog.rate'],
    ['a rate as a string', { accessLog: { mode: 'sampled', rate: '1%' } }, 'accessLog.rate'],
    ['an empty file', { accessLog: { mode: 'on', file: '' } }, 'accessLog.file'],
    ['unknown accessLog key', { accessLog: { mode: 'on', format: 'json' } }, 'accessLog.format'],
    ['accessLog not an object', { accessLog: 'on' }, 'accessLog'],
    ['a negative sampleRate', { tracing: { sampleRate: -0.1 } }, 'tracing.sampleRate'],
    ['unknown tracing key', { tracing: { jaeger: {} } }, 'tracing.jaeger'],
    ['otlp without url', { tracing: { otlp: {} } }, 'tracing.otlp.url'],
    ['otlp url not a URL', { tracing: { otlp: { url: 'collector:4318' } } }, 'tracing.otlp.url'],
    ['plaintext otlp off loopback', { tracing: { otlp: { url: 'http://10.0.0.9:4318/v1/traces' } } }, 'tracing.otlp.url'],
    ['otlp over another scheme', { tracing: { otlp: { url: 'grpc://127.0.0.1:4317' } } }, 'tracing.otlp.url'],
    ['otlp export interval too short', { tracing: { otlp: { url: 'http://127.0.0.1:4318/v1/traces', exportEveryMs: 5 } } }, 'tracing.otlp.exportEveryMs'],
    ['unknown otlp key', { tracing: { otlp: { url: 'http://127.0.0.1:4318/v1/traces', protocol: 'grpc' } } }, 'tracing.otlp.protocol'],
  ];
  for (const [why, patch, field] of cases) {
    t.throws(() => validateSidecarConfig({ ...good, ...patch }, '/'), { name: 'ConfigError', field }, why);
  }
});
