// Access logs and traces across two real sidecars: the W3C trace context goes from the app over
// the mesh hop and comes back in the answer; both sidecars write their access-log line; and a
// real OTLP/HTTP receiver gets one connected trace of spans from both.
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const APP_SPAN = '00f067aa0ba902b7';

let mesh: Mesh;
let otlp: OtlpReceiver;
const dir = mkdtempSync(join(tmpdir(), 'themis-obs-'));
const accessFile = join(dir, 'access.log');

t.before(async () => {
  otlp = await startOtlpReceiver();
  mesh = await startMesh({ shards: 2, sidecarConfig: { accessLog: { mode: 'on', file: accessFile }, tracing: { otlp: { url: otlp.url, exportEveryMs: 100 } } } });
});
t.teardown(async () => {
  await mesh?.close();
  await otlp?.close();
  rmSync(dir, { recursive: true, force: true });
});

type Line = Record<string, any>;
const lines = (): Line[] => (existsSync(accessFile) ? readFileSync(accessFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line) : []);

async function until<T>(what: string, f: () => T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const put = (base: string, path: string, body: string, headers: Record<string, string> = {}) =>
  fetch(base + path, { method: 'PUT', body, headers: { 'content-type': 'application/json', ...headers } });

t.test('a write through A to B: one trace, echoed, logged by both, exported connected', async (t) => {
  const [a, b] = mesh.nodes as [Mesh['nodes'][0], Mesh['nodes'][0]];
  const path = `/entities/document.app.orders:${uuidOwnedBy(b.shard.tokenRange)}`;
  const secret = 'never-in-a-log-line-4711';
  const body = JSON.stringify({ blob: JSON.stringify({ secret }) });
  const res = await put(a.appUrl, path, body, { traceparent: `00-${TRACE}-${APP_SPAN}-01`, tracestate: 'rojo=00f067aa0ba902b7' });
  t.equal(res.status, 201, await res.text());
  t.equal(res.headers.get('x-themis-shard'), b.shard.id);
  const echoed = res.headers.get('traceparent') ?? '';
  const m = new RegExp(`^00-${TRACE}-([0-9a-f]{16})-01$`).exec(echoed);
  t.ok(m, `the answer names the app's trace and A's span: ${echoed}`);
  const aSpan = m?.[1];
  t.not(aSpan, APP_SPAN, "A's own span, not the app's");

  const mine = await until('both access-log lines', () => {
    const l = lines().filter((x) => x.trace_id === TRACE);
    return l.length >= 2 ? l : undefined;
  });
  const atA = mine.find((l) => l.listener === 'app')!;
  const atB = mine.find((l) => l.listener === 'mesh')!;
  t.match(atA, { type: 'access', sidecar: a.shard.id, worker: null, method: 'PUT', path, status: 201, code: null, shard: b.shard.id, epoch: 1, peer: null, retries: 0, bytes_in: Buffer.byteLength(body), span_id: aSpan });
  t.match(atB, { sidecar: b.shard.id, method: 'PUT', path, status: 201, code: null, shard: b.shard.id, epoch: 1, peer: { kind: 'shard', shard_id: a.shard.id, serial: a.shard.serial }, retries: 0, bytes_in: Buffer.byteLength(body) });
  t.ok(atA.bytes_out > 0 && atA.bytes_out === atB.bytes_out, `bytes out: ${atA.bytes_out} at A, ${atB.bytes_out} at B`);
  t.ok(atA.upstream_ms > 0 && atA.upstream_ms <= atA.duration_ms, `A waited ${atA.upstream_ms} of ${atA.duration_ms} ms upstream`);
  t.ok(atB.upstream_ms > 0 && atB.upstream_ms <= atB.duration_ms, `B waited ${atB.upstream_ms} of ${atB.duration_ms} ms on its storage node`);
  t.ok(Math.abs(Date.parse(atA.time) - Date.now()) < 60_000, 'start time is now-ish ISO 8601');
  t.same(Object.keys(atA).sort(), ['bytes_in', 'bytes_out', 'code', 'duration_ms', 'epoch', 'listener', 'method', 'path', 'peer', 'retries', 'shard', 'sidecar', 'span_id', 'status', 'time', 'trace_id', 'type', 'upstream_ms', 'worker'], 'exactly the documented fields');
  const raw = readFileSync(accessFile, 'utf8');
  t.notMatch(raw, secret, 'no body in the access log');
  t.notMatch(raw, /signature|BEGIN|nonce/i, 'no signature or key material in the access log');

  // The exported spans: both sidecars, one trace, every span's parent in it (or the app's span).
  const want = ['app receive', 'route', 'sign', 'mesh send', 'mesh receive', 'peer checks', 'upstream'];
  const spans = await until('the spans of both sidecars', () => {
    const s = otlp.spans.filter((x) => x.traceId === TRACE);
    return want.every((n) => s.some((x) => x.name === n)) ? s : undefined;
  });
  t.same(otlp.rejected, [], 'every export was OTLP JSON');
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const named = (n: string, service: string) => spans.find((s) => s.name === n && s.service === service)!;
  const receiveA = named('app receive', a.shard.id);
  t.equal(receiveA.parentSpanId, APP_SPAN, "A's server span is the app's span's child");
  t.equal(receiveA.spanId, aSpan, "the answer's traceparent names A's server span");
  for (const s of spans.filter((x) => x !== receiveA)) t.ok(byId.has(s.parentSpanId), `${s.service} ${s.name}: its parent is in the trace`);
  const send = named('mesh send', a.shard.id);
  const receiveB = named('mesh receive', b.shard.id);
  t.equal(receiveB.parentSpanId, send.spanId, "B's server span is the child of A's mesh send");
  t.equal(named('peer checks', b.shard.id).parentSpanId, receiveB.spanId);
  t.equal(receiveB.traceState, 'rojo=00f067aa0ba902b7', "the app's tracestate crossed the mesh hop unchanged");
  t.equal(named('upstream', b.shard.id).parentSpanId, receiveB.spanId, "B's storage-node call");
  t.equal(send.attributes['themis.peer'], b.shard.id);
  t.equal(receiveA.attributes['http.response.status_code'], 201);
});

t.test('a malformed traceparent restarts the trace: served, with a new trace id and no tracestate', async (t) => {
  const [a, b] = mesh.nodes as [Mesh['nodes'][0], Mesh['nodes'][0]];
  const path = `/entities/document.app.orders:${uuidOwnedBy(b.shard.tokenRange)}`;
  const bad = `00-${TRACE.toUpperCase()}-${APP_SPAN}-01`;
  const res = await put(a.appUrl, path, JSON.stringify({ blob: '{}' }), { traceparent: bad, tracestate: 'rojo=1' });
  t.equal(res.status, 201, 'not refused');
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(res.headers.get('traceparent') ?? '');
  t.ok(m, 'a new, sampled trace (tracing.sampleRate defaults to 1)');
  t.not(m?.[1], TRACE.toLowerCase());
  const traceId = m![1]!;
  const spans = await until('the new trace at B', () => {
    const s = otlp.spans.filter((x) => x.traceId === traceId);
    return s.some((x) => x.name === 'mesh receive') && s.some((x) => x.name === 'app receive') ? s : undefined;
  });
  t.equal(spans.find((s) => s.name === 'app receive')!.parentSpanId, '', 'A started it: a root span');
  t.equal(spans.find((s) => s.name === 'mesh receive')!.traceState, '', "the malformed parent's tracestate was dropped with it");
  const atB = await until("B's line", () => lines().find((l) => l.trace_id === traceId && l.listener === 'mesh'));
  t.equal(atB.status, 201);
});

t.test("the sidecar's own refusals are logged with their code and echo a trace", async (t) => {
  const a = mesh.nodes[0]!;
  const res = await fetch(`${a.appUrl}/entities/relational.a.b:not-a-uuid`);
  t.equal(res.status, 400);
  const traceId = /^00-([0-9a-f]{32})-/.exec(res.headers.get('traceparent') ?? '')?.[1];
  t.ok(traceId, 'the refusal echoes a traceparent');
  const line = await until('the refusal line', () => lines().find((l) => l.trace_id === traceId));
  t.match(line, { listener: 'app', status: 400, code: 'INVALID_KEY', shard: '-', upstream_ms: 0, bytes_in: null });
  t.ok(line.bytes_out > 0, 'the error body counted');
});

t.test('a scatter-gather query: a fan-out span with one child per shard, each with its hop', async (t) => {
  const a = mesh.nodes[0]!;
  const trace = 'abcdef0123456789abcdef0123456789';
  const res = await fetch(`${a.appUrl}/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', traceparent: `00-${trace}-${APP_SPAN}-01` },
    body: JSON.stringify({ table: 'document.app.orders', return: 'count' }),
  });
  t.equal(res.status, 200, await res.text());
  const spans = await until('the fan-out', () => {
    const s = otlp.spans.filter((x) => x.traceId === trace);
    return s.filter((x) => x.name.startsWith('shard ')).length === 2 && s.some((x) => x.name === 'mesh receive') ? s : undefined;
  });
  const fan = spans.find((s) => s.name === 'scatter-gather')!;
  t.ok(fan, 'a scatter-gather span');
  t.equal(fan.attributes['themis.shards'], 2);
  const children = spans.filter((s) => s.parentSpanId === fan.spanId).map((s) => s.name).sort();
  t.same(children, mesh.nodes.map((n) => `shard ${n.shard.id}`).sort(), 'one child per shard');
  const local = spans.find((s) => s.name === `shard ${a.shard.id}`)!;
  const remote = spans.find((s) => s.name === `shard ${mesh.nodes[1]!.shard.id}`)!;
  t.ok(spans.some((s) => s.name === 'upstream' && s.parentSpanId === local.spanId), "A's own shard: its storage node");
  t.ok(spans.some((s) => s.name === 'mesh send' && s.parentSpanId === remote.spanId), 'the other shard: over the mesh');
});
