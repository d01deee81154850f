import t from 'tap';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { startMesh, type Mesh } from '../support/mesh.js';
import { call, startStorage, type StorageProcess } from '../support/storage-process.js';
import { serializeTopology } from '../../src/topology/document.js';

// The same data on a 3-shard mesh and on one storage node: every merged answer must equal the
// single node's, which is the reference (no merge logic re-implemented here).
const T = 'document.shop.items';
let mesh: Mesh;
let single: StorageProcess;
const CITIES = ['Bonn', 'Köln', 'Aachen', 'Trier'];

t.before(async () => {
  mesh = await startMesh({ shards: 3, sidecarConfig: { scatter: { shardTimeoutMs: 1500, pageSize: 5, maxConcurrency: 2 } } });
  single = await startStorage();
  const writes: Promise<unknown>[] = [];
  for (let i = 0; i < 150; i++) {
    const doc: Record<string, unknown> = { name: `item-${i}`, city: CITIES[i % 4], price: i % 13 === 0 ? `${(i * 7) % 50}` : (i * 37) % 101, embedding: [Math.sin(i), Math.cos(i * 0.7)] };
    if (i % 17 === 0) delete doc.price;
    if (i % 29 === 0) doc.price = 'n/a';
    const key = `${T}:${randomUUID()}`;
    const body = { blob: JSON.stringify(doc) };
    writes.push(call(mesh.nodes[i % 3]!.appUrl, 'PUT', `/entities/${key}`, body), call(single.url, 'PUT', `/entities/${key}`, body));
    if (writes.length >= 40) await Promise.all(writes.splice(0));
  }
  await Promise.all(writes);
});
t.teardown(async () => {
  await mesh?.close();
  await single?.kill('SIGKILL');
});

const viaMesh = (body: unknown, path = '/query', node = 0) => call(mesh.nodes[node]!.appUrl, 'POST', path, body);
const reference = (body: unknown, path = '/query') => call(single.url, 'POST', path, body);

t.test('the data really is spread over all shards', async (t) => {
  for (const node of mesh.nodes) {
    const r = await call(node.storage.url, 'POST', '/query', { table: T, return: 'count' });
    t.ok(r.body.count > 20, `${node.shard.id} holds ${r.body.count}`);
  }
});

t.test('merged answers equal one node holding all the data', async (t) => {
  const queries: Record<string, unknown>[] = [
    { table: T },
    { table: T, return: 'keys' },
    { table: T, predicates: [{ column: 'city', value: 'Köln' }], return: 'keys' },
    { table: T, range: [{ column: 'price', gte: 10, lte: 40, includeLower: false }], return: 'keys' },
    { table: T, order_by: { column: 'price' }, return: 'keys' },
    { table: T, order_by: { column: 'price', desc: true, limit: 17 }, return: 'entities' },
    { table: T, order_by: { column: 'name', limit: 9 }, predicates: [{ column: 'city', value: 'Bonn' }], return: 'keys' },
    { table: T, order_by: { column: 'price', limit: 0 }, return: 'keys' },
    { table: T, return: 'count' },
    { table: T, predicates: [{ column: 'city', value: 'Trier' }], order_by: { column: 'price', limit: 11 }, return: 'count' },
    { table: 'document.shop.nothing', return: 'keys' },
  ];
  for (const q of queries) {
    const [m, r] = await Promise.all([viaMesh(q), reference(q)]);
    t.equal(m.status, 200, `${JSON.stringify(q)}: ${m.text.slice(0, 200)}`);
    for (const field of ['table', 'count', 'keys', 'entities']) t.same(m.body[field], r.body[field], `${JSON.stringify(q)} → ${field}`);
    t.equal(m.headers.get('x-themis-shard'), 'shard-001,shard-002,shard-003', 'every shard answered');
  }
});

t.test('vector search returns the global top k', async (t) => {
  for (const q of [{ table: T, vector: [0.3, -0.2], k: 7 }, { vector: [1, 1], k: 25 }, { table: T, vector: [0, 0], k: 1 }]) {
    const [m, r] = await Promise.all([viaMesh(q, '/vector/search'), reference(q, '/vector/search')]);
    t.equal(m.status, 200, m.text.slice(0, 200));
    t.same(m.body.results, r.body.results, JSON.stringify(q));
    t.equal(m.body.count, r.body.count);
  }
});

t.test('client certificates get the same merged answers on the mesh port', async (t) => {
  const { meshConnect, meshRequest } = await import('../support/mesh-client.js');
  const c = mesh.pki.clients.readOnly;
  const node = mesh.nodes[2]!;
  const session = meshConnect(`${node.shard.ip}:${node.meshPort}`, { cert: c.chain, key: c.key, ca: mesh.pki.root.cert });
  t.teardown(() => session.close());
  const q = { table: T, order_by: { column: 'price', desc: true, limit: 12 }, return: 'keys' };
  const m = await meshRequest(session, 'POST', '/query', { 'content-type': 'application/json' }, JSON.stringify(q));
  t.equal(m.status, 200, m.text.slice(0, 200));
  t.same(m.body.keys, (await reference(q)).body.keys);
});

t.test('pagination walks the whole merged result exactly once', async (t) => {
  for (const base of [{ table: T, order_by: { column: 'price', desc: true }, return: 'keys' }, { table: T, return: 'keys' }, { table: T, order_by: { column: 'name', limit: 23 }, return: 'entities' }]) {
    const full = (await reference(base)).body;
    const seen: string[] = [];
    let token: string | null = null;
    let pages = 0;
    do {
      const r = await viaMesh({ ...base, page_size: 7, ...(token ? { continuation: token } : {}) }, '/query', pages % 3);
      t.equal(r.status, 200, r.text.slice(0, 200));
      seen.push(...(r.body.keys ?? r.body.entities));
      t.ok(r.body.count <= 7);
      token = r.body.continuation;
      pages++;
    } while (token && pages < 100);
    t.same(seen, full.keys ?? full.entities, `${JSON.stringify(base)} in ${pages} pages`);
  }
});

t.test('bad queries and tokens are refused before any fan-out', async (t) => {
  const cases: [unknown, number, string][] = [
    [{ table: 'nope' }, 400, 'INVALID_QUERY'],
    [{ table: T, order_by: { column: 'price', limit: -1 } }, 400, 'INVALID_QUERY'],
    [{ table: T, page_size: 0 }, 400, 'INVALID_QUERY'],
    [{ table: T, return: 'count', page_size: 5 }, 400, 'INVALID_QUERY'],
    [{ table: T, return: 'rows' }, 400, 'INVALID_QUERY'],
    [{ table: T, continuation: 'garbage' }, 400, 'INVALID_CONTINUATION'],
    ['not json', 400, 'INVALID_JSON'],
  ];
  for (const [body, status, code] of cases) {
    const r = await viaMesh(body);
    t.equal(r.status, status, JSON.stringify(body));
    t.equal(r.body.code, code);
  }
  const first = await viaMesh({ table: T, return: 'keys', page_size: 3 });
  const other = await viaMesh({ table: T, return: 'entities', page_size: 3, continuation: first.body.continuation });
  t.equal(other.body.code, 'INVALID_CONTINUATION', 'a token of another query');
});

t.test('a slow shard hits the timeout: 503 naming it, or the rest with allow_partial', async (t) => {
  const slow = mesh.nodes[1]!;
  slow.storage.child.kill('SIGSTOP');
  try {
    const q = { table: T, order_by: { column: 'price' }, return: 'keys' };
    const r = await viaMesh(q);
    t.equal(r.status, 503, r.text.slice(0, 200));
    t.equal(r.body.code, 'SHARDS_UNAVAILABLE');
    t.same(r.body.missing_shards, [slow.shard.id]);
    const p = await viaMesh({ ...q, allow_partial: true });
    t.equal(p.status, 200);
    t.equal(p.headers.get('x-themis-partial'), 'true');
    t.same(p.body.missing_shards, [slow.shard.id]);
    const full = (await reference(q)).body.keys as string[];
    t.ok(p.body.keys.length > 0 && p.body.keys.length < full.length, 'the other shards answered');
    t.same(p.body.keys, full.filter((k) => p.body.keys.includes(k)), 'what came back is in the reference order');
  } finally {
    slow.storage.child.kill('SIGCONT');
  }
});

t.test('a token from another topology epoch is refused, not silently wrong', async (t) => {
  // The shard paused by the previous test may still be working off its backlog: wait for it.
  let first = await viaMesh({ table: T, return: 'keys', page_size: 5 });
  for (let i = 0; i < 40 && first.status !== 200; i++) {
    await new Promise((r) => setTimeout(r, 250));
    first = await viaMesh({ table: T, return: 'keys', page_size: 5 });
  }
  t.equal(first.status, 200, first.text.slice(0, 200));
  t.ok(first.body.continuation);
  writeFileSync(mesh.topologyFile, serializeTopology(mesh.topology.withEpoch(2)));
  for (const n of mesh.nodes) n.sidecar!.child.kill('SIGHUP');
  await new Promise((r) => setTimeout(r, 300));
  const next = await viaMesh({ table: T, return: 'keys', page_size: 5, continuation: first.body.continuation });
  t.equal(next.status, 409);
  t.equal(next.body.code, 'CONTINUATION_STALE');
});

t.test('a dead shard: 503 naming it by default', async (t) => {
  await mesh.nodes[2]!.storage.kill('SIGKILL');
  const r = await viaMesh({ table: T, return: 'count' });
  t.equal(r.status, 503);
  t.same(r.body.missing_shards, ['shard-003']);
  const v = await viaMesh({ vector: [0, 0], k: 3, allow_partial: true }, '/vector/search');
  t.equal(v.status, 200);
  t.same(v.body.missing_shards, ['shard-003']);
});
