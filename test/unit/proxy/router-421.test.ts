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

// A cutover seen from a third sidecar: the old owner refuses at the new epoch it already
// applied; this sidecar, still behind, catches up to that epoch and routes to the new owner,
// telling it the epoch it routed by.
const before = new Topology({ cluster: 'c', epoch: 4, vnodes: 0, shards: { 'shard-001': {}, 'shard-002': {}, 'shard-003': {} }, ranges: [{ start: 0n, end: TOKEN_MAX, owner: 'shard-002', replicas: [] }] });
const after = new Topology({ cluster: 'c', epoch: 5, vnodes: 0, shards: { 'shard-001': {}, 'shard-002': {}, 'shard-003': {} }, ranges: [{ start: 0n, end: TOKEN_MAX, owner: 'shard-003', replicas: [] }] });

interface Sent { shard: string; epoch: unknown }

function cluster(answer: (shard: string, n: number) => { status: number; epoch?: number }, appliesAfterReads: number) {
  let now = before;
  let reads = 0;
  const sent: Sent[] = [];
  const peer = (shard: string) => ({
    name: shard,
    request: async (r: { headers: Record<string, unknown> }) => {
      sent.push({ shard, epoch: r.headers['x-themis-topology-epoch'] });
      const a = answer(shard, sent.length);
      const text = a.status === 421 ? JSON.stringify({ code: 'NOT_OWNER' }) : '{"ok":true}';
      const body = Readable.from([Buffer.from(text)]);
      let whole = false;
      body.once('end', () => (whole = true));
      const headers: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(text.length) };
      if (a.epoch !== undefined) headers['x-themis-topology-epoch'] = String(a.epoch);
      return { status: a.status, headers, body, complete: () => whole };
    },
  });
  const router = new Router({
    self: 'shard-001',
    gate: {} as never,
    replicas: {} as never,
    topology: {
      current: () => now,
      refresh: async () => {
        if (++reads >= appliesAfterReads) now = after;
      },
    } as never,
    resolver: { resolve: (s: string) => ({ shard: s, local: false, upstream: peer(s) }), local: {} } as never,
    random: {} as never,
    maxBodyBytes: 1 << 20,
    scatter: {} as never,
    log: silentLogger,
  });
  return { router, sent, reads: () => reads };
}

async function put(router: Router): Promise<{ status: number; body: string }> {
  const server = http.createServer((req, res) => {
    const reply = replyTo(req, res);
    router.serve(req, reply, classifyRequest(req.method!, req.url!)).catch((e: unknown) => reply.error(e, silentLogger));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as { port: number }).port;
    return await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'PUT', path: '/entities/document.shop.orders:5f0c6a3e-8d1b-4c2a-9e7f-1a2b3c4d5e6f', timeout: 5000 }, (r) => {
        let body = '';
        r.on('data', (d: Buffer) => (body += d.toString()));
        r.on('end', () => resolve({ status: r.statusCode!, body }));
        r.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
      req.on('error', reject);
      req.end('{"blob":"x"}');
    });
  } finally {
    server.close();
  }
}

t.test('a 421 naming a newer epoch: the sidecar waits for it, then the new owner serves', async (t) => {
  // The first read of the topology still finds epoch 4 (this sidecar's watch is behind); the third finds 5.
  const c = cluster((shard) => (shard === 'shard-002' ? { status: 421, epoch: 5 } : { status: 200 }), 3);
  t.equal((await put(c.router)).status, 200, 'served');
  t.same(c.sent, [{ shard: 'shard-002', epoch: '4' }, { shard: 'shard-003', epoch: '5' }], 'each request says the epoch it was routed by');
  t.equal(c.reads(), 3, 'read the topology again until it reached epoch 5');
});

t.test('a new owner refusing too: retried while there is something new, never more than three times', async (t) => {
  let n = 0;
  const c = cluster(() => ({ status: 421, epoch: 4 + ++n }), 1);
  t.equal((await put(c.router)).status, 421, 'the last refusal stands');
  t.equal(c.sent.length, 2, 'epoch 5 routed once more; then nothing new to route by');
  // Every read brings a newer epoch, and every owner refuses at the next one: the cap, not
  // "nothing new", ends it.
  let epoch = 4;
  const endless = cluster(() => ({ status: 421, epoch: epoch + 1 }), 1);
  (endless.router as unknown as { d: { topology: { current: () => Topology; refresh: () => Promise<void> } } }).d.topology = {
    current: () => new Topology({ cluster: 'c', epoch, vnodes: 0, shards: { 'shard-002': {}, 'shard-003': {} }, ranges: [{ start: 0n, end: TOKEN_MAX, owner: epoch % 2 ? 'shard-003' : 'shard-002', replicas: [] }] }),
    refresh: async () => void epoch++,
  };
  t.equal((await put(endless.router)).status, 421);
  t.equal(endless.sent.length, 3, 'three attempts in all');
});

// An owner that dies mid-answer (its sidecar killed after the headers): a write's answer is read
// whole before anything is relayed, so the app gets a retryable 502, not a connection cut.
t.test('a write whose answer breaks off: a retryable 502, never a cut connection', async (t) => {
  const c = cluster(() => ({ status: 201 }), 99);
  (c.router as unknown as { d: { resolver: unknown } }).d.resolver = {
    resolve: () => ({
      shard: 'shard-002', local: false,
      upstream: {
        name: 'shard-002',
        request: async () => {
          const body = new Readable({ read() {} });
          body.push(Buffer.from('{"key":"docum'));
          setTimeout(() => body.destroy(new Error('stream reset')), 20);
          return { status: 201, headers: { 'content-type': 'application/json', 'content-length': '200' }, body, complete: () => false };
        },
      },
    }),
    local: {},
  };
  const res = await put(c.router);
  t.equal(res.status, 502);
  t.match(JSON.parse(res.body), { code: 'UPSTREAM_PROTOCOL_ERROR' }, 'a whole answer with the retryable code');
});
