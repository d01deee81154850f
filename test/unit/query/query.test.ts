import t from 'tap';
import { parseQuery, runQuery, type Row } from '../../../src/query/query.js';

const T = 'document.shop.items';
// uuids in ascending code-unit order: u(1) < u(2) < …
const u = (n: number): string => `0000000${n}-0000-4000-8000-000000000000`.slice(-36);
const row = (n: number, doc: unknown): Row => ({ uuid: u(n), blob: JSON.stringify(doc) });
const key = (n: number): string => `${T}:${u(n)}`;

const ROWS: Row[] = [
  row(1, { name: 'apple', price: 3, tag: 'fruit', dims: { w: 10 } }),
  row(2, { name: 'pear', price: '12', tag: 'fruit', dims: { w: 2 } }),
  row(3, { name: 'bread', price: 12, tag: 'bakery', active: true }),
  row(4, { name: 'cake', price: 'n/a', tag: 'bakery', active: false }),
  row(5, { name: 'salt', tag: 'spice', 'dims.w': 7 }),
  row(6, { name: 'milk', price: 0.5, tag: null }),
  { uuid: u(7), blob: '[1,2,3]' },
];

async function keys(body: Record<string, unknown>): Promise<string[]> {
  const a = await runQuery(parseQuery({ table: T, return: 'keys', ...body }), ROWS);
  return (a as { keys: string[] }).keys;
}

t.test('without conditions every row comes back in key order, entities by default', async (t) => {
  const a = await runQuery(parseQuery({ table: T }), ROWS);
  t.same(a, { table: T, count: 7, entities: ROWS.map((r) => r.blob) });
});

t.test('equality predicates compare String(field) with the string value, AND-ed', async (t) => {
  const cases: [string, Record<string, unknown>[], number[]][] = [
    ['string field', [{ column: 'tag', value: 'fruit' }], [1, 2]],
    ['number field against "12"', [{ column: 'price', value: '12' }], [2, 3]],
    ['decimal number', [{ column: 'price', value: '0.5' }], [6]],
    ['boolean field', [{ column: 'active', value: 'true' }], [3]],
    ['null never matches, not even "null"', [{ column: 'tag', value: 'null' }], []],
    ['missing column never matches', [{ column: 'colour', value: 'red' }], []],
    ['AND of two', [{ column: 'tag', value: 'bakery' }, { column: 'name', value: 'cake' }], [4]],
    ['nested path a.b', [{ column: 'dims.w', value: '2' }], [2]],
    ['a literal top-level "dims.w" wins over the path', [{ column: 'dims.w', value: '7' }], [5]],
    ['case-sensitive', [{ column: 'name', value: 'Apple' }], []],
  ];
  for (const [name, predicates, want] of cases) t.same(await keys({ predicates }), want.map(key), name);
});

t.test('ranges: numbers numerically, include flags, missing columns excluded', async (t) => {
  const cases: [string, Record<string, unknown>, number[]][] = [
    ['gte 3 (numeric string "12" counts as 12, "n/a" sorts after numbers)', { column: 'price', gte: 3 }, [1, 2, 3, 4]],
    ['lte 12', { column: 'price', lte: 12 }, [1, 2, 3, 6]],
    ['lte 12, upper excluded', { column: 'price', lte: 12, includeUpper: false }, [1, 6]],
    ['gte 3 lower excluded', { column: 'price', gte: 3, includeLower: false, lte: 100 }, [2, 3]],
    ['bound as numeric string', { column: 'price', gte: '0.5', lte: '3' }, [1, 6]],
    ['strings by code unit', { column: 'name', gte: 'bread', lte: 'milk' }, [3, 4, 6]],
    ['string bound excludes all numbers below it', { column: 'price', gte: 'a' }, [4]],
    ['no bounds = has the column', { column: 'price' }, [1, 2, 3, 4, 6]],
    ['booleans compare as "true"/"false"', { column: 'active', gte: 'true' }, [3]],
  ];
  for (const [name, range, want] of cases) t.same(await keys({ range: [range] }), want.map(key), name);
});

t.test('order_by: ascending, descending, ties by key ascending, limit', async (t) => {
  // price values: 1:3, 2:"12", 3:12, 4:"n/a", 6:0.5; 5 and 7 lack the column.
  t.same(await keys({ order_by: { column: 'price' } }), [6, 1, 2, 3, 4].map(key), 'asc; 2 and 3 tie at 12 → key order');
  t.same(await keys({ order_by: { column: 'price', desc: true } }), [4, 2, 3, 1, 6].map(key), 'desc; the tie stays in key order');
  t.same(await keys({ order_by: { column: 'price', desc: true, limit: 2 } }), [4, 2].map(key), 'limit after sorting');
  t.same(await keys({ order_by: { column: 'price', limit: 0 } }), [], 'limit 0');
  t.same(await keys({ order_by: { column: 'name' } }), [1, 3, 4, 6, 2, 5].map(key), 'strings');
  t.same(
    await keys({ predicates: [{ column: 'tag', value: 'fruit' }], order_by: { column: 'dims.w', desc: true } }),
    [1, 2].map(key),
    'nested column',
  );
});

t.test('order_by ties are broken by key even when rows arrive out of key order', async (t) => {
  const reversed = [...ROWS].reverse();
  const run = async (order_by: Record<string, unknown>) =>
    ((await runQuery(parseQuery({ table: T, return: 'keys', order_by }), reversed)) as { keys: string[] }).keys;
  t.same(await run({ column: 'price' }), [6, 1, 2, 3, 4].map(key));
  t.same(await run({ column: 'price', desc: true }), [4, 2, 3, 1, 6].map(key));
  t.same(await run({ column: 'tag', desc: true }), [5, 1, 2, 3, 4].map(key), 'spice, then fruit 1 and 2, then bakery 3 and 4');
});

t.test('return count and entities report the same count as keys', async (t) => {
  const body = { range: [{ column: 'price', gte: 1 }], order_by: { column: 'price', limit: 3 } };
  t.same(await runQuery(parseQuery({ table: T, ...body, return: 'count' }), ROWS), { table: T, count: 3 });
  t.same(await runQuery(parseQuery({ table: T, ...body, return: 'entities' }), ROWS), {
    table: T,
    count: 3,
    entities: [ROWS[0]!.blob, ROWS[1]!.blob, ROWS[2]!.blob],
  });
  t.same(await runQuery(parseQuery({ table: T, predicates: [{ column: 'tag', value: 'x' }], return: 'count' }), ROWS), {
    table: T,
    count: 0,
  });
});

t.test('every malformed query is INVALID_QUERY before any work', async (t) => {
  const bad: [string, unknown][] = [
    ['not an object', [1]],
    ['null', null],
    ['no table', { predicates: [] }],
    ['table not a string', { table: 5 }],
    ['table with 2 parts', { table: 'document.shop' }],
    ['unknown model', { table: 'blob.shop.items' }],
    ['unknown top-level field', { table: T, lim: 3 }],
    ['limit negative', { table: T, limit: -1 }],
    ['after without uuid', { table: T, after: { value: { num: 1 } } }],
    ['after value without order_by', { table: T, after: { uuid: 'u', value: { num: 1 } } }],
    ['after without value with order_by', { table: T, order_by: { column: 'a' }, after: { uuid: 'u' } }],
    ['after value malformed', { table: T, order_by: { column: 'a' }, after: { uuid: 'u', value: { num: 'x' } } }],
    ['predicates not an array', { table: T, predicates: { column: 'a', value: 'b' } }],
    ['predicate value a number', { table: T, predicates: [{ column: 'a', value: 5 }] }],
    ['predicate without column', { table: T, predicates: [{ value: 'b' }] }],
    ['predicate empty column', { table: T, predicates: [{ column: '', value: 'b' }] }],
    ['predicate unknown field', { table: T, predicates: [{ column: 'a', value: 'b', op: '=' }] }],
    ['predicate not an object', { table: T, predicates: ['a=b'] }],
    ['too many predicates', { table: T, predicates: Array.from({ length: 65 }, () => ({ column: 'a', value: 'b' })) }],
    ['range bound an object', { table: T, range: [{ column: 'a', gte: { x: 1 } }] }],
    ['range bound null', { table: T, range: [{ column: 'a', lte: null }] }],
    ['range flag a string', { table: T, range: [{ column: 'a', gte: 1, includeLower: 'yes' }] }],
    ['range unknown field', { table: T, range: [{ column: 'a', gt: 1 }] }],
    ['order_by not an object', { table: T, order_by: 'price' }],
    ['order_by without column', { table: T, order_by: { desc: true } }],
    ['order_by desc a string', { table: T, order_by: { column: 'a', desc: 'true' } }],
    ['order_by limit negative', { table: T, order_by: { column: 'a', limit: -1 } }],
    ['order_by limit fractional', { table: T, order_by: { column: 'a', limit: 1.5 } }],
    ['order_by limit a string', { table: T, order_by: { column: 'a', limit: '5' } }],
    ['order_by limit too large', { table: T, order_by: { column: 'a', limit: 1_000_001 } }],
    ['order_by unknown field', { table: T, order_by: { column: 'a', offset: 1 } }],
    ['return unknown', { table: T, return: 'values' }],
    ['column too long', { table: T, predicates: [{ column: 'x'.repeat(257), value: 'b' }] }],
  ];
  for (const [name, body] of bad) t.throws(() => parseQuery(body), { code: 'INVALID_QUERY' }, name);
});

t.test('a valid query is parsed with the documented defaults', async (t) => {
  t.same(parseQuery({ table: T, range: [{ column: 'a', gte: 1 }], order_by: { column: 'b' } }), {
    table: T,
    predicates: [],
    range: [{ column: 'a', gte: { num: 1 }, lte: undefined, includeLower: true, includeUpper: true }],
    orderBy: { column: 'b', desc: false, limit: undefined },
    return: 'entities',
    after: undefined,
    limit: undefined,
    blobs: true,
  });
});

t.test('paging with after + limit walks the full result exactly once, in order, with and without order_by', async (t) => {
  for (const order_by of [undefined, { column: 'price' }, { column: 'price', desc: true }, { column: 'name', desc: true, limit: 4 }]) {
    const full = ((await runQuery(parseQuery({ table: T, return: 'keys', ...(order_by ? { order_by } : {}) }), ROWS)) as { keys: string[] }).keys;
    const seen: string[] = [];
    let after: unknown;
    for (let page = 0; page < 50; page++) {
      // order_by.limit counts from the position, so a pager lowers it by what it has seen.
      const ob = order_by && order_by.limit !== undefined ? { ...order_by, limit: order_by.limit - seen.length } : order_by;
      const a = (await runQuery(parseQuery({ table: T, return: 'rows', blobs: false, limit: 2, ...(ob ? { order_by: ob } : {}), ...(after ? { after } : {}) }), ROWS)) as {
        rows: { key: string; uuid: string; order?: unknown; blob?: string }[];
      };
      t.ok(a.rows.every((r) => r.blob === undefined), 'blobs: false leaves blobs out');
      seen.push(...a.rows.map((r) => r.key));
      if (a.rows.length < 2) break;
      const last = a.rows.at(-1)!;
      after = { uuid: last.uuid, ...(order_by ? { value: last.order } : {}) };
    }
    t.same(seen, full, `order_by ${JSON.stringify(order_by)}`);
  }
});
