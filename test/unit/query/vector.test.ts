import t from 'tap';
import { l2Distance, parseVectorQuery, searchVectors, type VectorRow } from '../../../src/query/vector.js';

const A = 'vector.ml.docs';
const B = 'vector.ml.images';
const u = (n: number): string => `0000000${n}-0000-4000-8000-000000000000`.slice(-36);
const row = (table: string, n: number, doc: unknown): VectorRow => ({ table, uuid: u(n), blob: JSON.stringify(doc) });

// Distances from the query [0, 0] are worked out by hand (3-4-5 and 6-8-10 triangles).
const ROWS: VectorRow[] = [
  row(A, 1, { embedding: [3, 4] }), // 5
  row(A, 2, { embedding: [0, 1] }), // 1
  row(A, 3, { embedding: [6, 8] }), // 10
  row(A, 4, { embedding: [0, -5] }), // 5, ties with 1
  row(A, 5, { embedding: [1, 2, 3] }), // other dimension: skipped
  row(A, 6, { embedding: ['0', '1'] }), // not numbers: skipped
  row(A, 7, { title: 'no vector' }), // missing: skipped
  row(A, 8, { embedding: 'x' }), // not an array: skipped
  row(B, 1, { embedding: [5, 0], meta: { v: [1, 0] } }), // 5, ties with A:1 and A:4; table B sorts after A
  { table: B, uuid: u(2), blob: '"just a string"' }, // not an object: skipped
];

t.test('l2Distance is the Euclidean distance', async (t) => {
  t.equal(l2Distance([0, 0], [3, 4]), 5);
  t.equal(l2Distance([1, 1, 1, 1], [2, 2, 2, 2]), 2);
  t.equal(l2Distance([1], [1]), 0);
  t.equal(l2Distance([1, 2], [1, 2, 3]), undefined, 'dimension mismatch');
  t.equal(l2Distance([1, 2], [1, null]), undefined, 'non-number component');
  t.equal(l2Distance([0], [1e200]), undefined, 'overflowing distance');
});

t.test('k nearest over all tables, ascending, ties by (table, uuid)', async (t) => {
  const a = await searchVectors(parseVectorQuery({ vector: [0, 0], k: 4 }), ROWS);
  t.same(a, {
    results: [
      { pk: u(2), distance: 1, key: `${A}:${u(2)}` },
      { pk: u(1), distance: 5, key: `${A}:${u(1)}` },
      { pk: u(4), distance: 5, key: `${A}:${u(4)}` },
      { pk: u(1), distance: 5, key: `${B}:${u(1)}` },
    ],
    k: 4,
    count: 4,
  });
  const reversed = await searchVectors(parseVectorQuery({ vector: [0, 0], k: 4 }), [...ROWS].reverse());
  t.same(reversed, a, 'the same answer whatever order the rows arrive in');
});

t.test('k larger than the candidates returns every usable one; count says how many', async (t) => {
  const a = await searchVectors(parseVectorQuery({ vector: [0, 0] }), ROWS);
  t.equal(a.k, 10, 'default k');
  t.equal(a.count, 5);
  t.same(a.results.map((r) => r.distance), [1, 5, 5, 5, 10]);
});

t.test('table and field restrict the search', async (t) => {
  const onlyB = await searchVectors(parseVectorQuery({ table: B, vector: [0, 0], k: 3 }), ROWS.filter((r) => r.table === B));
  t.same(onlyB.results, [{ pk: u(1), distance: 5, key: `${B}:${u(1)}` }]);
  const nested = await searchVectors(parseVectorQuery({ vector: [1, 3], field: 'meta.v' }), ROWS);
  t.same(nested.results, [{ pk: u(1), distance: 3, key: `${B}:${u(1)}` }]);
});

t.test('every malformed vector query is INVALID_QUERY', async (t) => {
  const bad: [string, unknown][] = [
    ['not an object', 'x'],
    ['no vector', { k: 3 }],
    ['vector empty', { vector: [] }],
    ['vector with a string', { vector: [1, '2'] }],
    ['vector with null', { vector: [1, null] }],
    ['vector not an array', { vector: { 0: 1 } }],
    ['k zero', { vector: [1], k: 0 }],
    ['k fractional', { vector: [1], k: 2.5 }],
    ['k too large', { vector: [1], k: 10_001 }],
    ['k a string', { vector: [1], k: '3' }],
    ['field empty', { vector: [1], field: '' }],
    ['field a number', { vector: [1], field: 3 }],
    ['bad table', { vector: [1], table: 'vector.ml' }],
    ['table not a string', { vector: [1], table: ['vector.ml.docs'] }],
    ['unknown field', { vector: [1], metric: 'cosine' }],
  ];
  for (const [name, body] of bad) t.throws(() => parseVectorQuery(body), { code: 'INVALID_QUERY' }, name);
});

t.test('filter: field equalities (ThemisDB clients\' filter), every one must hold', async (t) => {
  const rows = [
    row(A, 1, { embedding: [3, 4], status: 'open', n: 2 }), // 5
    row(A, 2, { embedding: [0, 1], status: 'closed', n: 2 }), // 1
    row(A, 3, { embedding: [6, 8], status: 'open', n: '2' }), // 10
    row(A, 4, { embedding: [0, -5], status: 'open', n: 3 }), // 5
    row(A, 5, { embedding: [0, 2], meta: { status: 'open' }, n: 2 }), // 2, nested field
  ];
  const search = async (filter: unknown) => (await searchVectors(parseVectorQuery({ vector: [0, 0], filter }), rows)).results.map((r) => r.pk);
  t.same(await search({ status: 'open' }), [u(1), u(4), u(3)]);
  t.same(await search({ status: 'open', n: 2 }), [u(1), u(3)], 'AND-ed; numbers compare as strings, as /query predicates do');
  t.same(await search({ 'meta.status': 'open' }), [u(5)], 'nested fields by dotted path');
  t.same(await search({}), [u(2), u(5), u(1), u(4), u(3)], 'an empty filter holds for all');
  t.same(parseVectorQuery({ vector: [1], filter: { a: true, b: 1.5 } }).filter, [{ column: 'a', value: 'true' }, { column: 'b', value: '1.5' }]);
  for (const [filter, re] of [
    [[], /filter must be an object/],
    ['open', /filter must be an object/],
    [{ status: ['open'] }, /filter.status must be a string, a number or a boolean/],
    [{ status: null }, /filter.status must be/],
    [{ '': 'x' }, /field names must be non-empty/],
    [Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`f${i}`, 1])), /more than 64 fields/],
  ] as const) {
    t.throws(() => parseVectorQuery({ vector: [1], filter }), { code: 'INVALID_QUERY', message: re }, JSON.stringify(filter).slice(0, 60));
  }
});
