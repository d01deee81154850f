// A peer's 421 NOT_OWNER that stands (a fresh read of the topology changes nothing) is the
// answer: it must reach the app whole, not hang with its headers sent (the body, drained while
// the topology was read again, was then relayed after its 'close' had passed).
import t from 'tap';
import http from 'node:http';
import { Readable } from 'node:stream';
import { Router } from '../../../proxy/router.js';
import { classifyRequest } from '../../../proxy/operations.js';
import { replyTo } from '../../../proxy/respond.js';
import { Topology } from '../../../src/topology/topology.js';
import { TOKEN_MAX } from '../../../src/hash.js';
import { silentLogger } from '../../../src/log.js';

const topo = new Topology({ cluster: 'c', epoch: 4, vnodes: 0, shards: { 'shard-001': {}, 'shard-002': {} }, ranges: [{ start: 0n, end: TOKEN_MAX, owner: 'shard-002', replicas: [] }] });

t.test('a standing 421 from the owner reaches the app with its body, promptly', async (t) => {
  let refreshes = 0;
  let requests = 0;
  const refusal = JSON.stringify({ code: 'NOT_OWNER', message: 'shard-002 does not own this key at topology epoch 4' });
  const peer = {
    name: 'shard-002',
    request: async () => {
      requests++;
      const body = Readable.from([Buffer.from(refusal)]);
      let whole = false;
      body.once('end', () => (whole = true));
      return { status: 421, headers: { 'content-type': 'application/json', 'content-length': String(refusal.length) }, body, complete: () => whole };
    },
  };
  const router = new Router({
    self: 'shard-001',
    gate: {} as never,
    replicas: {} as never,
    topology: {
      current: () => topo,
      refresh: async () => {
        refreshes++;
        await new Promise((r) => setTimeout(r, 20)); // long enough for a drained body to close
      },
    } as never,
    resolver: { resolve: () => ({ shard: 'shard-002', local: false, upstream: peer }), local: {} } as never,
    random: {} as never,
    maxBodyBytes: 1 << 20,
    scatter: {} as never,
    log: silentLogger,
  });
  const server = http.createServer((req, res) => {
    const reply = replyTo(req, res);
    router.serve(req, reply, classifyRequest(req.method!, req.url!)).catch((e: unknown) => reply.error(e, silentLogger));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => void server.close());
  const port = (server.address() as { port: number }).port;
  // node:http, not fetch: undici retries a 421 on a new connection by itself.
  const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'PUT', path: '/entities/document.shop.orders:5f0c6a3e-8d1b-4c2a-9e7f-1a2b3c4d5e6f', timeout: 3000 }, (r) => {
      let body = '';
      r.on('data', (d: Buffer) => (body += d.toString()));
      r.on('end', () => resolve({ status: r.statusCode!, body }));
    });
    req.on('timeout', () => req.destroy(new Error('no whole answer within 3 s')));
    req.on('error', reject);
    req.end('{"blob":"x"}');
  });
  t.equal(res.status, 421);
  t.same(JSON.parse(res.body), JSON.parse(refusal), 'the whole refusal, within 3 s');
  t.equal(refreshes, 1, 'the topology was read again once');
  t.equal(requests, 1, 'and nothing new to route by: no second attempt');
});
