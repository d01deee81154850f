// The storage node's hop: a real HTTP server stands in for the storage node and records what
// arrives. The traceparent it receives names the request's trace and the sidecar's upstream span.
import t from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { LocalUpstream } from '../../../../proxy/local-upstream.js';
import { NO_ACCESS_LOG } from '../../../../proxy/observability/access-log.js';
import { Observability, obsOf } from '../../../../proxy/observability/request-obs.js';
import { idTracing } from '../../../../proxy/observability/tracing.js';
import { SeededRandom, systemClock } from '../../../../src/runtime.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';

t.test('forward() sends the trace on to the storage node and times the exchange', async (t) => {
  const seen: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.headers);
    setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'), 20);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const local = new LocalUpstream({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requestTimeoutMs: 5000 });
  t.teardown(() => local.close());
  const o = new Observability(idTracing(new SeededRandom(7)), NO_ACCESS_LOG, systemClock, 'shard-001');

  const headers: http.IncomingHttpHeaders = { traceparent: `00-${TRACE}-00f067aa0ba902b7-01`, tracestate: 'rojo=1' };
  const obs = o.begin('mesh', 'GET', '/entities/x', headers);
  t.equal(obsOf(headers), obs, 'the record rides on the headers');
  const up = await local.forward('GET', '/entities/x', headers, undefined);
  up.body.resume();
  t.equal(seen.length, 1);
  t.match(seen[0]!.traceparent, new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`), "the app's trace id, sampled as it said");
  t.not(seen[0]!.traceparent, `00-${TRACE}-00f067aa0ba902b7-01`, "the sidecar's span as parent, not the app's");
  t.equal(seen[0]!.tracestate, 'rojo=1', 'the tracestate carried on');
  t.ok(obs.upstreamMs >= 15, `time upstream counted: ${obs.upstreamMs} ms`);

  const fresh: http.IncomingHttpHeaders = { traceparent: 'not-a-traceparent', tracestate: 'rojo=1' };
  o.begin('app', 'GET', '/entities/y', fresh);
  (await local.forward('GET', '/entities/y', fresh, undefined)).body.resume();
  t.match(seen[1]!.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/, 'a malformed one restarts the trace');
  t.notOk(String(seen[1]!.traceparent).includes(TRACE));
  t.equal(seen[1]!.tracestate, undefined, 'and its tracestate is dropped');
});
