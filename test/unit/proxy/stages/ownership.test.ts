// The ownership stage: a key this shard does not own is 421 NOT_OWNER — unless a peer with
// `replicate` asks for this node's copy (x-themis-read-copy: 1) with a GET, as a move's
// verification does; a write, or a peer without `replicate`, is still refused.
import t from 'tap';
import { TOKEN_MAX } from '../../../../src/hash.js';
import { Topology } from '../../../../src/topology/topology.js';
import { ownership, READ_COPY_HEADER } from '../../../../proxy/stages/ownership.js';
import type { MeshRequest, Stage } from '../../../../proxy/stages/mesh-request.js';

const topo = new Topology({ cluster: 'c', epoch: 3, vnodes: 0, shards: { a: {}, b: {} }, ranges: [{ start: 0n, end: TOKEN_MAX, owner: 'b', replicas: [] }] });
const deps = { self: 'a', topology: { current: () => topo } } as unknown as Parameters<Stage>[1];
const KEY = 'document.shop.orders:9f1c1d9e-4b7e-4f4e-8a55-0c7c2b6f0f11';

function req(method: string, capabilities: string[], headers: Record<string, string> = {}): MeshRequest {
  return { method, url: `/entities/${KEY}`, headers, peer: { identity: { capabilities } }, op: { kind: 'entity', rawKey: KEY, method } } as unknown as MeshRequest;
}

t.test('a key owned elsewhere is refused', async (t) => {
  t.throws(() => ownership(req('GET', ['read', 'replicate']), deps), { code: 'NOT_OWNER' });
});

t.test('a replicate peer may read this node\'s copy', async (t) => {
  t.doesNotThrow(() => ownership(req('GET', ['read', 'replicate'], { [READ_COPY_HEADER]: '1' }), deps));
});

t.test('but not write it, and not without replicate', async (t) => {
  t.throws(() => ownership(req('PUT', ['read', 'write', 'replicate'], { [READ_COPY_HEADER]: '1' }), deps), { code: 'NOT_OWNER' });
  t.throws(() => ownership(req('GET', ['read'], { [READ_COPY_HEADER]: '1' }), deps), { code: 'NOT_OWNER' });
});

// A sender that routed by a newer epoch (x-themis-topology-epoch): this shard reads its
// topology again before refusing, so a request crossing a cutover is served, not refused.
const mine = new Topology({ cluster: 'c', epoch: 4, vnodes: 0, shards: { a: {}, b: {} }, ranges: [{ start: 0n, end: TOKEN_MAX, owner: 'a', replicas: [] }] });

function behind(catchUpTo: Topology | undefined) {
  let now = topo;
  let refreshes = 0;
  const source = {
    current: () => now,
    refresh: async () => {
      refreshes++;
      if (catchUpTo) now = catchUpTo;
    },
  };
  return { deps: { self: 'a', topology: source } as unknown as Parameters<Stage>[1], refreshes: () => refreshes };
}

t.test('a sender at a newer epoch: this shard catches up and serves', async (t) => {
  const b = behind(mine);
  const r = req('PUT', ['write'], { 'x-themis-topology-epoch': '4' });
  await ownership(r, b.deps);
  t.equal(r.topology, mine, 'judged by the topology caught up to');
  t.equal(b.refreshes(), 1);
});

t.test('a sender at a newer epoch this shard cannot reach: refused after a bounded wait', async (t) => {
  const b = behind(undefined);
  const t0 = performance.now();
  await t.rejects(async () => ownership(req('PUT', ['write'], { 'x-themis-topology-epoch': '4' }), b.deps), { code: 'NOT_OWNER' });
  const ms = performance.now() - t0;
  t.ok(ms >= 900 && ms < 3000, `waited about a second (${Math.round(ms)} ms)`);
  t.ok(b.refreshes() > 1, `read the topology again while waiting (${b.refreshes()} reads)`);
});

t.test('a sender at the same or an older epoch is refused at once, without a read', async (t) => {
  for (const e of ['3', '2']) {
    const b = behind(mine);
    t.throws(() => ownership(req('PUT', ['write'], { 'x-themis-topology-epoch': e }), b.deps), { code: 'NOT_OWNER' }, `epoch ${e}`);
    t.equal(b.refreshes(), 0);
  }
});

t.test('a malformed epoch header is a clear 400', async (t) => {
  for (const e of ['', '-1', '4.0', '1234567890123456', 'x']) {
    const b = behind(mine);
    t.throws(() => ownership(req('PUT', ['write'], { 'x-themis-topology-epoch': e }), b.deps), { code: 'INVALID_HEADER' }, JSON.stringify(e));
  }
});

// Found by mutation testing (docs/testing.md).
t.test('a key this shard owns passes, and the request carries the key and topology judged by', async (t) => {
  const r = req('PUT', ['write']);
  ownership(r, { self: 'b', topology: { current: () => topo } } as unknown as Parameters<Stage>[1]);
  t.equal(r.key, KEY);
  t.equal(r.topology, topo);
});

t.test('the refusal names the shard and epoch; the malformed header names itself', async (t) => {
  t.throws(() => ownership(req('PUT', ['write']), deps), { code: 'NOT_OWNER', message: 'a does not own this key at topology epoch 3', details: { topology_epoch: 3 } });
  t.throws(() => ownership(req('PUT', ['write'], { 'x-themis-topology-epoch': 'x' }), deps), { message: 'x-themis-topology-epoch must be a topology epoch (decimal digits)' });
  // The header's name is part of the mesh protocol (docs/mesh-protocol.md).
  t.doesNotThrow(() => ownership(req('GET', ['read', 'replicate'], { 'x-themis-read-copy': '1' }), deps));
});

t.test('POST /entities between shards: judged by the body\'s key; other operations pass', async (t) => {
  const post = (body: unknown, self = 'a'): MeshRequest =>
    ({ method: 'POST', url: '/entities', headers: {}, body: Buffer.from(JSON.stringify(body)), peer: { identity: { capabilities: ['write'] } }, op: { kind: 'entity-post' } }) as unknown as MeshRequest;
  t.throws(() => ownership(post({ key: KEY, blob: '{}' }), deps), { code: 'NOT_OWNER' });
  const ok = post({ key: KEY, blob: '{}' });
  ownership(ok, { self: 'b', topology: { current: () => topo } } as unknown as Parameters<Stage>[1]);
  t.equal(ok.key, KEY);
  t.throws(() => ownership(post({ blob: '{}' }), deps), { code: 'INVALID_BODY', message: 'a POST /entities between shards must carry "key"' });
  const query = { method: 'POST', url: '/query', headers: {}, peer: { identity: { capabilities: ['read'] } }, op: { kind: 'query' } } as unknown as MeshRequest;
  t.doesNotThrow(() => ownership(query, deps));
  t.equal(query.key, undefined, 'queries are about this node\'s own data');
});
