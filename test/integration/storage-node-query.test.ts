// Query, vector search and the ordered scan, served by a real storage node child process;
// their refusals (INVALID_QUERY, INVALID_PARAMETER, INVALID_JSON) included.
import t from 'tap';
import { call, removeDir, startStorage, type StorageProcess } from '../support/storage-process.js';

const USERS = 'relational.shop.users';
const DOCS = 'vector.ml.docs';
const u = (n: number): string => `${String(n).padStart(8, '0')}-0000-4000-8000-000000000000`;

let node: StorageProcess;
t.before(async () => {
  node = await startStorage();
  const writes: [string, unknown][] = [
    [`${USERS}:${u(3)}`, { name: 'cleo', age: 41, city: 'Bonn' }],
    [`urn:themis:relational:shop:users:${u(1)}`, { name: 'anna', age: 29, city: 'Köln' }],
    [`${USERS}:${u(2)}`, { name: 'ben', age: '41', city: 'Bonn' }],
    [`${USERS}:${u(4)}`, { name: 'dora', city: 'Bonn' }],
    [`${DOCS}:${u(1)}`, { embedding: [1, 1] }],
    [`${DOCS}:${u(2)}`, { embedding: [4, 5] }],
    [`${DOCS}:${u(3)}`, { embedding: [1, 2, 3] }],
    [`vector.ml.pics:${u(9)}`, { embedding: [1, 0] }],
  ];
  // Concurrently, so they go through group commit together.
  const acks = await Promise.all(writes.map(([key, doc]) => call(node.url, 'PUT', `/entities/${key}`, { blob: JSON.stringify(doc) })));
  if (acks.some((a) => a.status !== 201)) throw new Error('seeding failed');
});
t.teardown(async () => {
  await node.stop();
  removeDir(node.dataDir);
});

const query = (body: unknown) => call(node.url, 'POST', '/query', body);

t.test('POST /query answers ThemisDB shapes', async (t) => {
  const bonn = await query({ table: USERS, predicates: [{ column: 'city', value: 'Bonn' }], return: 'keys' });
  t.same([bonn.status, bonn.body], [200, { table: USERS, count: 3, keys: [`${USERS}:${u(2)}`, `${USERS}:${u(3)}`, `${USERS}:${u(4)}`] }]);
  const byAge = await query({ table: USERS, order_by: { column: 'age', desc: true, limit: 2 }, return: 'keys' });
  t.same(byAge.body.keys, [`${USERS}:${u(2)}`, `${USERS}:${u(3)}`], '41 and "41" tie: key order');
  const range = await query({ table: USERS, range: [{ column: 'age', gte: 30, lte: 41, includeUpper: true }] });
  t.same(range.body, {
    table: USERS,
    count: 2,
    entities: ['{"name":"ben","age":"41","city":"Bonn"}', '{"name":"cleo","age":41,"city":"Bonn"}'],
  });
  t.same((await query({ table: USERS, return: 'count' })).body, { table: USERS, count: 4 });
  t.same((await query({ table: 'document.empty.table', return: 'keys' })).body, { table: 'document.empty.table', count: 0, keys: [] });
});

t.test('POST /vector/search: L2 distance, ascending, per table or over all', async (t) => {
  const docs = await call(node.url, 'POST', '/vector/search', { table: DOCS, vector: [1, 1], k: 5 });
  t.same([docs.status, docs.body], [
    200,
    {
      results: [
        { pk: u(1), distance: 0, key: `${DOCS}:${u(1)}` },
        { pk: u(2), distance: 5, key: `${DOCS}:${u(2)}` }, // (3, 4) → 5
      ],
      k: 5,
      count: 2,
    },
  ]);
  const all = await call(node.url, 'POST', '/vector/search', { vector: [1, 1], k: 2 });
  t.same(all.body.results, [
    { pk: u(1), distance: 0, key: `${DOCS}:${u(1)}` },
    { pk: u(9), distance: 1, key: `vector.ml.pics:${u(9)}` },
  ]);
});

t.test('GET /entities scans in (table, uuid) order, page by page', async (t) => {
  const seen: string[] = [];
  let after: string | null = null;
  let pages = 0;
  do {
    const r = await call(node.url, 'GET', `/entities?limit=3${after ? `&after=${encodeURIComponent(after)}` : ''}`);
    t.equal(r.status, 200);
    t.equal(r.body.count, r.body.entities.length);
    seen.push(...r.body.entities.map((e: { key: string }) => e.key));
    after = r.body.next;
    pages++;
  } while (after !== null && pages < 10);
  t.same(seen, [
    `${USERS}:${u(1)}`, `${USERS}:${u(2)}`, `${USERS}:${u(3)}`, `${USERS}:${u(4)}`,
    `${DOCS}:${u(1)}`, `${DOCS}:${u(2)}`, `${DOCS}:${u(3)}`,
    `vector.ml.pics:${u(9)}`,
  ].sort(), 'every entity once');
  t.same(seen.slice(0, 4), [1, 2, 3, 4].map((n) => `${USERS}:${u(n)}`));
  t.equal(pages, 3);
  const one = await call(node.url, 'GET', `/entities?table=${DOCS}&after=${DOCS}:${u(1)}`);
  t.same(one.body, {
    entities: [
      { key: `${DOCS}:${u(2)}`, blob: '{"embedding":[4,5]}' },
      { key: `${DOCS}:${u(3)}`, blob: '{"embedding":[1,2,3]}' },
    ],
    count: 2,
    next: null,
  });
});

t.test('malformed query, vector and scan requests are refused with their codes', async (t) => {
  const cases: [string, string, string, unknown, string][] = [
    ['query body not JSON', 'POST', '/query', '{"table":', 'INVALID_JSON'],
    ['query body an array', 'POST', '/query', [], 'INVALID_QUERY'],
    ['query bad table', 'POST', '/query', { table: 'users' }, 'INVALID_QUERY'],
    ['query unknown field', 'POST', '/query', { table: USERS, where: 'x' }, 'INVALID_QUERY'],
    ['query predicate value a number', 'POST', '/query', { table: USERS, predicates: [{ column: 'age', value: 41 }] }, 'INVALID_QUERY'],
    ['query bad return', 'POST', '/query', { table: USERS, return: 'all' }, 'INVALID_QUERY'],
    ['vector body not JSON', 'POST', '/vector/search', 'x', 'INVALID_JSON'],
    ['vector missing', 'POST', '/vector/search', { k: 2 }, 'INVALID_QUERY'],
    ['vector k zero', 'POST', '/vector/search', { vector: [1], k: 0 }, 'INVALID_QUERY'],
    ['vector bad table', 'POST', '/vector/search', { vector: [1], table: 'x.y.z' }, 'INVALID_QUERY'],
    ['scan bad table', 'GET', '/entities?table=relational.shop', undefined, 'INVALID_PARAMETER'],
    ['scan bad after', 'GET', '/entities?after=foo', undefined, 'INVALID_PARAMETER'],
    ['scan after from another table', 'GET', `/entities?table=${USERS}&after=${DOCS}:${u(1)}`, undefined, 'INVALID_PARAMETER'],
    ['scan limit 0', 'GET', '/entities?limit=0', undefined, 'INVALID_PARAMETER'],
    ['scan unknown parameter', 'GET', '/entities?offset=3', undefined, 'INVALID_PARAMETER'],
  ];
  for (const [name, method, path, body, code] of cases) {
    const r = await call(node.url, method, path, body);
    t.same([r.status, r.body?.code, r.body?.error, r.body?.status_code], [400, code, true, 400], name);
  }
});
