// ThemisDB's official clients, pointed at one app port of a 3-shard mesh: this replays, call by
// call, the HTTP requests they make (clients/javascript/src/index.ts and
// clients/python/themis/__init__.py in makr-code/ThemisDB: same methods, paths, body shapes and
// headers) and checks each gets the answer the client needs. Expected values come from the
// data the test wrote and from the mesh's own POST /query, never from the AQL path under test.
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { startMesh, type Mesh } from '../support/mesh.js';
import { uuidOwnedBy } from '../support/keys.js';

let mesh: Mesh;
const NS = 'default'; // both clients' default namespace
const TABLE = `document.${NS}.orders`;
const STATUSES = ['open', 'closed', 'void'];
interface Order { name: string; status: string; total: number; embedding: number[] }
const orders = new Map<string, Order>(); // uuid → document

/** The JavaScript client's request: fetch, JSON bodies with Content-Type, nothing else. */
async function js(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(base + path, { method, ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'Content-Type': 'application/json', ...headers } } : { headers }) });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, ok: res.ok, headers: res.headers, json, text };
}
/** The Python client's request (httpx): its User-Agent on every call, json= bodies. */
const py = (base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => js(base, method, path, body, { 'User-Agent': 'themis-python-sdk/0.1', ...headers });

/** What a fresh client does first: GET the topology from its first endpoint, keep `shards`. */
async function discover(base: string): Promise<string[]> {
  const r = await js(base, 'GET', '/_admin/cluster/topology');
  if (!r.ok) throw new Error(`topology: ${r.status}`);
  return (r.json.shards as string[]).map((s) => s.replace(/\/$/, ''));
}

t.before(async () => {
  mesh = await startMesh({ shards: 3 });
  const base = mesh.nodes[0]!.appUrl;
  const writes: Promise<unknown>[] = [];
  for (let i = 0; i < 45; i++) {
    // Spread over every shard: uuids chosen in each shard's range in turn.
    const uuid = uuidOwnedBy(mesh.pki.shards[i % 3]!.tokenRange);
    const doc: Order = { name: `order-${String(i).padStart(2, '0')}`, status: STATUSES[i % 3]!, total: (i * 37) % 50, embedding: [Math.sin(i), Math.cos(i)] };
    orders.set(uuid, doc);
    writes.push(js(base, 'PUT', `/entities/${TABLE}:${uuid}`, { blob: JSON.stringify(doc) }));
  }
  for (const r of (await Promise.all(writes)) as { status: number }[]) if (r.status !== 201) throw new Error(`seed write: ${r.status}`);
});
t.teardown(() => mesh?.close());

t.test('topology discovery on a fresh client lists only this sidecar', async (t) => {
  for (const [i, node] of mesh.nodes.entries()) {
    const r = await (i % 2 ? py : js)(node.appUrl, 'GET', '/_admin/cluster/topology');
    t.equal(r.status, 200);
    t.same(r.json.shards, [node.appUrl], `${node.shard.id}: its own app endpoint, nothing else`);
    t.equal(r.headers.get('x-themis-shard'), node.shard.id);
    t.match(r.headers.get('x-themis-topology-epoch'), /^\d+$/);
    for (const other of mesh.nodes) {
      t.notOk(r.text.includes(other.storage.url.replace('http://', '')), 'no storage node is listed');
      t.notOk(r.text.includes(`:${other.meshPort}`), 'no mesh port is listed');
    }
  }
  const wrong = await js(mesh.nodes[0]!.appUrl, 'POST', '/_admin/cluster/topology', {});
  t.equal(wrong.status, 405);
});

t.test('CRUD across shards, as both clients build keys', async (t) => {
  const [endpoint] = await discover(mesh.nodes[1]!.appUrl);
  for (const [i, shard] of mesh.pki.shards.entries()) {
    const uuid = uuidOwnedBy(shard.tokenRange);
    const key = `document.${NS}.customers:${uuid}`;
    const put = await (i % 2 ? py : js)(endpoint!, 'PUT', `/entities/${key}`, { blob: JSON.stringify({ n: i }) });
    t.equal(put.status, 201, put.text);
    t.equal(put.headers.get('x-themis-shard'), shard.id, 'written on the owner');
    const get = await js(endpoint!, 'GET', `/entities/${key}`);
    t.same(JSON.parse(get.json.blob), { n: i }, 'the client decodes blob');
    const del = await py(endpoint!, 'DELETE', `/entities/${key}`);
    t.equal(del.status, 200, 'the Python client wants 200 for True');
    t.equal((await js(endpoint!, 'GET', `/entities/${key}`)).status, 404, 'and 404 for None after it');
  }
  const health = await js(endpoint!, 'GET', '/health');
  t.equal(health.json.status, 'ok');
});

t.test("the sidecar's own answers carry x-themis-shard and the epoch", async (t) => {
  const base = mesh.nodes[2]!.appUrl;
  const cases: [string, string, unknown, number, string][] = [
    ['GET', '/entitys/x', undefined, 404, 'ROUTE_NOT_FOUND'],
    ['GET', '/entities/not-a-key', undefined, 400, 'INVALID_KEY'],
    ['POST', '/query', { nope: 1 }, 400, 'INVALID_QUERY'],
    ['DELETE', '/query', undefined, 405, 'METHOD_NOT_ALLOWED'],
    ['POST', '/query/aql', { query: 'FOR' }, 400, 'INVALID_AQL'],
    ['GET', '/stats', undefined, 501, 'NOT_SUPPORTED'],
  ];
  for (const [method, path, body, status, code] of cases) {
    const r = await js(base, method, path, body);
    t.equal(r.status, status, `${method} ${path}`);
    t.equal(r.json.code, code);
    t.equal(r.headers.get('x-themis-shard'), '-', `${method} ${path}: no shard served it`);
    t.match(r.headers.get('x-themis-topology-epoch'), /^\d+$/, `${method} ${path}: the epoch`);
  }
});

t.test('transactions are refused and nothing of them is written', async (t) => {
  const base = mesh.nodes[0]!.appUrl;
  const begin = await js(base, 'POST', '/transaction/begin', { isolation: 'snapshot' });
  t.equal(begin.status, 501);
  t.equal(begin.json.code, 'TRANSACTIONS_NOT_SUPPORTED');
  t.match(begin.json.message, /transactions/);
  const txId = 'tx-from-elsewhere';
  // Calls inside a transaction (a client that got its id from a real ThemisDB node, say).
  const fresh = [...mesh.pki.shards].map((s) => uuidOwnedBy(s.tokenRange));
  const [kept] = [...orders.keys()];
  const inside: [string, string, unknown][] = [
    ...fresh.map((u) => ['PUT', `/entities/${TABLE}:${u}`, { blob: '{"tx":true}' }] as [string, string, unknown]),
    ['DELETE', `/entities/${TABLE}:${kept}`, undefined],
    ['POST', '/entities', { key: `${TABLE}:${fresh[0]}`, blob: '{"tx":2}' }],
    ['GET', `/entities/${TABLE}:${kept}`, undefined],
    ['POST', '/query/aql', { query: `FOR o IN orders RETURN o` }],
    ['POST', '/transaction/commit', { transaction_id: txId }],
    ['POST', '/transaction/rollback', { transaction_id: txId }],
  ];
  for (const [method, path, body] of inside) {
    const r = await py(base, method, path, body, { 'X-Transaction-Id': txId });
    t.equal(r.status, 501, `${method} ${path}`);
    t.equal(r.json.code, 'TRANSACTIONS_NOT_SUPPORTED');
    t.equal(r.headers.get('x-themis-shard'), '-');
  }
  // Nothing reached any storage node: the fresh keys are absent everywhere, the kept one intact.
  for (const node of mesh.nodes) {
    for (const u of fresh) t.equal((await js(node.storage.url, 'GET', `/entities/${TABLE}:${u}`)).status, 404, `${u} not written on ${node.shard.id}`);
  }
  const still = await js(base, 'GET', `/entities/${TABLE}:${kept}`);
  t.same(JSON.parse(still.json.blob), orders.get(kept!), 'the delete inside the transaction was not applied');
});

t.test('graph traversal and other ThemisDB routes are 501, typos 404', async (t) => {
  const base = mesh.nodes[1]!.appUrl;
  const g = await py(base, 'POST', '/graph/traverse', { start: 'urn:themis:graph:default:nodes:550e8400-e29b-41d4-a716-446655440000', max_depth: 3, edge_type: null });
  t.equal(g.status, 501);
  t.equal(g.json.code, 'GRAPH_NOT_SUPPORTED');
  for (const [method, path] of [['POST', '/llm/interaction'], ['GET', '/llm/interaction/abc'], ['POST', '/index/create'], ['POST', '/vector/batch_insert'], ['GET', '/api/v1/snapshots/tags'], ['GET', '/metrics']]) {
    const r = await py(base, method!, path!, method === 'POST' ? {} : undefined);
    t.equal(r.status, 501, `${method} ${path}`);
    t.equal(r.json.code, 'NOT_SUPPORTED');
  }
  t.equal((await js(base, 'GET', '/graphs/traverse')).status, 404, 'a typo stays 404');
});

/** The entity strings POST /query answers for the same question (the reference). */
async function viaQuery(body: Record<string, unknown>): Promise<string[]> {
  const r = await js(mesh.nodes[2]!.appUrl, 'POST', '/query', body);
  if (r.status !== 200) throw new Error(r.text);
  return r.json.entities;
}
const aql = (body: Record<string, unknown>, node = 0) => js(mesh.nodes[node]!.appUrl, 'POST', '/query/aql', body);

t.test('AQL with filters, sort, limit and bind parameters equals the same POST /query', async (t) => {
  const cases: [Record<string, unknown>, Record<string, unknown>, [number, number]?][] = [
    [{ query: 'FOR o IN orders RETURN o' }, { table: TABLE }],
    [{ query: 'FOR o IN orders FILTER o.status == @s SORT o.total DESC LIMIT 5 RETURN o', params: { s: 'open' } }, { table: TABLE, predicates: [{ column: 'status', value: 'open' }], order_by: { column: 'total', desc: true, limit: 5 } }],
    [{ query: 'FOR o IN orders FILTER o.total >= 10 AND o.total < @hi SORT o.name RETURN o', params: { hi: 40 } }, { table: TABLE, range: [{ column: 'total', gte: 10, lte: 40, includeUpper: false }], order_by: { column: 'name' } }],
    [{ query: 'FOR o IN @@c FILTER o.status == "closed" AND 20 < o.total RETURN o', params: { c: 'orders' } }, { table: TABLE, predicates: [{ column: 'status', value: 'closed' }], range: [{ column: 'total', gte: 20, includeLower: false }] }],
    [{ query: 'FOR o IN orders SORT o.total LIMIT 3, 4 RETURN o' }, { table: TABLE, order_by: { column: 'total', limit: 7 } }, [3, 7]],
    [{ query: 'FOR o IN orders LIMIT 2, 5 RETURN o' }, { table: TABLE }, [2, 7]],
  ];
  for (const [body, query, slice] of cases) {
    const r = await aql(body);
    t.equal(r.status, 200, `${body.query}: ${r.text.slice(0, 300)}`);
    const want = await viaQuery(query);
    t.same(r.json.entities, slice ? want.slice(...slice) : want, `${body.query}`);
    t.equal(r.json.count, r.json.entities.length);
    t.equal(r.json.table, TABLE);
    t.equal(r.headers.get('x-themis-shard'), 'shard-001,shard-002,shard-003', 'every shard answered');
  }
  const open = await aql({ query: 'FOR o IN orders FILTER o.status == "open" RETURN o' });
  t.same(open.json.entities.map((e: string) => JSON.parse(e).status), Array(15).fill('open'), 'the 15 open orders the test wrote');
});

t.test('AQL cursors: pages of batch_size (or LIMIT, as in ThemisDB) through continuation tokens', async (t) => {
  const query = 'FOR o IN orders FILTER o.status != "x" RETURN o';
  t.equal((await aql({ query })).json.code, 'AQL_NOT_SUPPORTED', '(!= is outside the subset)');
  for (const [body, size] of [[{ query: 'FOR o IN orders SORT o.total DESC RETURN o', batch_size: 7 }, 7], [{ query: 'FOR o IN orders SORT o.total DESC LIMIT 10 RETURN o' }, 10]] as const) {
    const all: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    for (;;) {
      // Each page from another sidecar: any of them continues the walk.
      const r = await aql({ ...body, use_cursor: true, ...(cursor ? { cursor } : {}) }, pages % 3);
      t.equal(r.status, 200, r.text.slice(0, 300));
      t.ok(r.json.items.length <= size);
      t.equal(r.json.batch_size, r.json.items.length);
      all.push(...r.json.items);
      pages++;
      if (!r.json.has_more) {
        t.equal(r.json.next_cursor, null);
        break;
      }
      cursor = r.json.next_cursor;
    }
    t.equal(pages, Math.ceil(45 / size), `${Math.ceil(45 / size)} pages of ${size}`);
    t.same(all, await viaQuery({ table: TABLE, order_by: { column: 'total', desc: true } }), 'the pages together are the whole ordered result');
  }
  const bad = await aql({ query: 'FOR o IN orders RETURN o', cursor: 'garbage' });
  t.equal(bad.status, 400);
  t.equal(bad.json.code, 'INVALID_CONTINUATION');
  const first = await aql({ query: 'FOR o IN orders SORT o.total RETURN o', use_cursor: true, batch_size: 5 });
  const other = await aql({ query: 'FOR o IN orders SORT o.name RETURN o', cursor: first.json.next_cursor });
  t.equal(other.json.code, 'INVALID_CONTINUATION', "another query's cursor is refused");
});

t.test('AQL x._key == "<urn>" reads the one owner', async (t) => {
  for (const [uuid, doc] of [...orders].slice(0, 3)) {
    const urn = `urn:themis:document:${NS}:orders:${uuid}`;
    const r = await aql({ query: `FOR o IN orders FILTER o._key == "${urn}" RETURN o` });
    t.equal(r.status, 200, r.text);
    t.same(r.json.entities.map((e: string) => JSON.parse(e)), [doc]);
    const owner = mesh.pki.shards.find((s) => (mesh.topology.ownerOfKey(`${TABLE}:${uuid}`)) === s.id)!;
    t.equal(r.headers.get('x-themis-shard'), owner.id, 'served by the owner alone');
    const miss = await aql({ query: 'FOR o IN orders FILTER o._key == @k AND o.status == "nope" RETURN o', params: { k: urn }, use_cursor: true });
    t.same([miss.json.items, miss.json.has_more, miss.json.next_cursor], [[], false, null], 'the other filters apply to it');
  }
  const absent = await aql({ query: `FOR o IN orders FILTER o._key == "${randomUUID()}" RETURN o` });
  t.same([absent.status, absent.json.entities], [200, []]);
});

t.test('malformed AQL is 400 INVALID_AQL, unsupported AQL 501 with the subset named', async (t) => {
  const bad = await py(mesh.nodes[0]!.appUrl, 'POST', '/query/aql', { query: 'FOR o IN orders FILTER o.a = 1 RETURN o' });
  t.same([bad.status, bad.json.code], [400, 'INVALID_AQL']);
  t.match(bad.json.message, /line 1, column 28/);
  const unsup = await py(mesh.nodes[0]!.appUrl, 'POST', '/query/aql', { query: 'FOR o IN orders COLLECT s = o.status RETURN s' });
  t.same([unsup.status, unsup.json.code], [501, 'AQL_NOT_SUPPORTED']);
  t.match(unsup.json.message, /COLLECT.*FOR x IN collection/);
  const graph = await py(mesh.nodes[0]!.appUrl, 'POST', '/query/aql', { query: 'FOR v IN 1..2 OUTBOUND "a" edges RETURN v' });
  t.same([graph.status, graph.json.code], [501, 'GRAPH_NOT_SUPPORTED']);
});

/** The nearest orders by the test's own arithmetic: L2 distance, ties by uuid. */
function nearest(vector: number[], pred: (o: Order) => boolean): string[] {
  return [...orders]
    .filter(([, o]) => pred(o))
    .map(([u, o]) => ({ u, d: Math.hypot(o.embedding[0]! - vector[0]!, o.embedding[1]! - vector[1]!) }))
    .sort((a, b) => a.d - b.d || (a.u < b.u ? -1 : 1))
    .map((x) => x.u);
}

t.test('vector search with a filter, and its cursor', async (t) => {
  const base = (await discover(mesh.nodes[2]!.appUrl))[0]!;
  const v = [0.2, -0.4];
  const r = await js(base, 'POST', '/vector/search', { vector: v, k: 6, filter: { status: 'open' } });
  t.equal(r.status, 200, r.text);
  t.same(r.json.results.map((h: { pk: string }) => h.pk), nearest(v, (o) => o.status === 'open').slice(0, 6));
  const two = await py(base, 'POST', '/vector/search', { vector: v, k: 50, filter: { status: 'closed', total: 37 } });
  t.same(two.json.results.map((h: { pk: string }) => h.pk), nearest(v, (o) => o.status === 'closed' && o.total === 37), 'fields AND-ed, numbers compared as /query predicates are');
  t.equal(two.json.results.length, 1, 'exactly the one closed order with total 37');
  const pages: string[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 10; i++) {
    const p = await js(base, 'POST', '/vector/search', { vector: v, k: 4, filter: { status: 'open' }, use_cursor: true, ...(cursor ? { cursor } : {}) });
    t.equal(p.status, 200, p.text);
    pages.push(...p.json.results.map((h: { pk: string }) => h.pk));
    if (!p.json.has_more) break;
    cursor = p.json.next_cursor;
  }
  t.same(pages, nearest(v, (o) => o.status === 'open'), 'the pages walk every open order in order');
  const badFilter = await js(base, 'POST', '/vector/search', { vector: v, filter: { status: ['open'] } });
  t.same([badFilter.status, badFilter.json.code], [400, 'INVALID_QUERY']);
});

t.test('client-certificate apps on the mesh port get the same: topology, headers, refusals', async (t) => {
  const { meshConnect, meshRequest } = await import('../support/mesh-client.js');
  const c = mesh.pki.clients.readWrite;
  const node = mesh.nodes[1]!;
  const session = meshConnect(`${node.shard.ip}:${node.meshPort}`, { cert: c.chain, key: c.key, ca: mesh.pki.root.cert });
  t.teardown(() => session.close());
  const topo = await meshRequest(session, 'GET', '/_admin/cluster/topology');
  t.same(topo.body.shards, [`https://${node.shard.ip}:${node.meshPort}`], 'the mesh port it reached');
  const typo = await meshRequest(session, 'GET', '/entitys/x');
  t.same([typo.status, typo.headers['x-themis-shard']], [404, '-']);
  t.match(typo.headers['x-themis-topology-epoch'], /^\d+$/);
  const uuid = uuidOwnedBy(mesh.pki.shards[0]!.tokenRange);
  const put = await meshRequest(session, 'PUT', `/entities/${TABLE}:${uuid}`, { 'content-type': 'application/json', 'x-transaction-id': 't1' }, JSON.stringify({ blob: '{}' }));
  t.same([put.status, put.body.code], [501, 'TRANSACTIONS_NOT_SUPPORTED']);
  t.equal((await js(mesh.nodes[0]!.storage.url, 'GET', `/entities/${TABLE}:${uuid}`)).status, 404, 'not written');
});
