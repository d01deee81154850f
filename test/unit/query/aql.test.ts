// The AQL subset: what it translates to (a /query body, the key lookup, LIMIT), and the three
// kinds of refusal — not AQL at all (400 INVALID_AQL), AQL outside the subset (501
// AQL_NOT_SUPPORTED, naming the construct), traversals (501 GRAPH_NOT_SUPPORTED).
import t, { type Test } from 'tap';
import { ThemisError } from '../../../src/errors.js';
import { tokenize } from '../../../src/query/aql-lexer.js';
import { parseAql } from '../../../src/query/aql-parser.js';
import { parseAqlRequest, tableOf, translateAql } from '../../../src/query/aql-translate.js';
import { parseQuery } from '../../../src/query/query.js';

const D = { model: 'document', namespace: 'default' };
const plan = (query: string, params: Record<string, unknown> = {}) => translateAql({ query, params, useCursor: false }, D);

function refused(t: Test, f: () => unknown, code: string, re: RegExp, what: string): void {
  try {
    f();
    t.fail(`${what}: not refused`);
  } catch (e) {
    t.ok(e instanceof ThemisError, `${what}: a ThemisError`);
    t.equal((e as ThemisError).code, code, `${what}: ${(e as Error).message}`);
    t.match((e as Error).message, re, `${what}: the message says why`);
  }
}

t.test('tokens: words, numbers, strings with escapes, parameters, operators, comments, positions', async (t) => {
  const toks = tokenize('FOR u IN users // c\n /* x\n y */ FILTER u.a >= -1.5e2 && u.b == "q\\"\\u0041" RETURN @p @@c');
  t.same(
    toks.map((k) => [k.kind, k.text]),
    [
      ['word', 'FOR'], ['word', 'u'], ['word', 'IN'], ['word', 'users'], ['word', 'FILTER'], ['word', 'u'], ['op', '.'], ['word', 'a'], ['op', '>='], ['op', '-'], ['number', '1.5e2'],
      ['op', '&&'], ['word', 'u'], ['op', '.'], ['word', 'b'], ['op', '=='], ['string', 'q"A'], ['word', 'RETURN'], ['param', 'p'], ['collection-param', 'c'], ['eof', ''],
    ],
  );
  const filter = toks.find((k) => k.text === 'FILTER')!;
  t.same([filter.line, filter.column], [3, 7], 'line and column after a multi-line comment');
});

t.test('the subset translates into the /query body the scatter-gather runs', async (t) => {
  const p = plan('for o in orders filter o.status == "open" and o.total > 10 AND o.total <= @max filter 5 < o.qty sort o.total desc limit 2, 5 return o', { max: 99 });
  t.same(p.query, {
    table: 'document.default.orders',
    predicates: [{ column: 'status', value: 'open' }],
    range: [
      { column: 'total', gte: 10, includeLower: false },
      { column: 'total', lte: 99, includeUpper: true },
      { column: 'qty', gte: 5, includeLower: false },
    ],
    order_by: { column: 'total', desc: true },
    return: 'entities',
  });
  t.same([p.offset, p.count, p.key], [2, 5, undefined]);
  t.doesNotThrow(() => parseQuery(p.query), 'the storage node accepts the body as it is');
  t.same(plan('FOR x IN orders RETURN x').query, { table: 'document.default.orders', return: 'entities' });
  t.same(plan('FOR x IN orders FILTER (x.a == 1 AND (x.b.c == true)) RETURN x').query.predicates, [{ column: 'a', value: '1' }, { column: 'b.c', value: 'true' }], 'nested fields, parentheses, numbers and booleans as predicate strings');
  t.same(plan('FOR x IN orders FILTER x.a < "m" FILTER x.a >= "c" RETURN x').query.range, [{ column: 'a', lte: 'm', includeUpper: false }, { column: 'a', gte: 'c', includeLower: true }]);
  t.same(plan('FOR x IN orders SORT x.n RETURN x').query.order_by, { column: 'n', desc: false });
  t.same([plan('FOR x IN orders LIMIT 3 RETURN x').offset, plan('FOR x IN orders LIMIT 3 RETURN x').count], [0, 3]);
  t.same(plan('FOR x IN orders LIMIT @o, @n RETURN x', { o: 4, n: 0 }), { table: 'document.default.orders', query: { table: 'document.default.orders', return: 'entities' }, offset: 4, count: 0 });
  t.equal(plan('FOR x IN @@c RETURN x', { c: 'relational.shop.users' }).table, 'relational.shop.users', '@@ collection parameter');
  t.equal(plan('FOR x IN vector.shop.docs RETURN x').table, 'vector.shop.docs', 'a full table name as written');
  t.equal(plan('FOR x IN `document.shop.orders` RETURN x').table, 'document.shop.orders', 'a quoted name');
  t.equal(translateAql({ query: 'FOR x IN items RETURN x', params: {}, useCursor: false }, { model: 'relational', namespace: 'shop' }).table, 'relational.shop.items', 'bare names take the configured model and namespace');
});

t.test('x._key == "<key>" is the one entity, whichever key form', async (t) => {
  const u = '550e8400-e29b-41d4-a716-446655440000';
  const want = `document.default.orders:${u}`;
  t.equal(plan(`FOR x IN orders FILTER x._key == "urn:themis:document:default:orders:${u}" RETURN x`).key, want);
  t.equal(plan(`FOR x IN orders FILTER x._key == @k AND x.s == "a" RETURN x`, { k: want }).key, want);
  t.equal(plan(`FOR x IN orders FILTER "${u}" == x._key RETURN x`).key, want, 'a bare uuid, literal on the left');
  t.same(plan(`FOR x IN orders FILTER x._key == "${u}" AND x.s == "a" RETURN x`).query.predicates, [{ column: 's', value: 'a' }], 'the other filters stay, to be applied to it');
  t.equal(plan(`FOR x IN orders FILTER x._key == "urn:themis:document:default:users:${u}" RETURN x`).key, null, 'a key of another table matches nothing');
  t.equal(plan(`FOR x IN orders FILTER x._key == "nonsense" RETURN x`).key, null);
  t.equal(plan(`FOR x IN orders FILTER x._key == "${u}" AND x._key == "${u.replace('0000', '0001')}" RETURN x`).key, null, 'two different keys: nothing');
});

t.test('malformed AQL is 400 INVALID_AQL, naming the place', async (t) => {
  const cases: [string, RegExp][] = [
    ['', /expected FOR/],
    ['FOR x users RETURN x', /expected IN, found "users"/],
    ['FOR x IN orders FILTER x.a == "open RETURN x', /line 1, column 31: unterminated string/],
    ['FOR x IN orders\nFILTER x.a = 1 RETURN x', /line 2, column 12: "=" assigns/],
    ['FOR x IN orders FILTER y.a == 1 RETURN x', /unknown variable "y"/],
    ['FOR x IN orders RETURN y', /unknown variable "y"/],
    ['FOR x IN orders RETURN', /expected an expression after RETURN/],
    ['FOR x IN orders RETURN x x', /expected the end of the query/],
    ['FOR x IN orders FILTER x.a == 1', /expected FILTER, SORT, LIMIT or RETURN, found the end/],
    ['FOR x IN orders LIMIT "3" RETURN x', /expected a number or @parameter after LIMIT/],
    ['FOR x IN orders LIMIT 1.5 RETURN x', /whole numbers/],
    ['FOR x IN orders FILTER x.a == 1 # RETURN x', /unexpected character "#"/],
    ['FOR FOR IN orders RETURN x', /expected a variable name/],
    ['FOR x IN orders FILTER x.a == @ RETURN x', /needs a name after @/],
    ['FOR x IN orders FILTER x.a == 12abc RETURN x', /malformed number/],
    ['FOR x IN orders /* open RETURN x', /unterminated \/\* comment/],
    ['FOR x IN orders FILTER (x.a == 1 RETURN x', /expected "\)"/],
    ['FOR x IN orders FILTER x.a == "\\q" RETURN x', /unknown escape/],
    ['FOR x IN a.b RETURN x', /write a collection name, or model.namespace.collection/],
    ['FOR x IN table.shop.orders RETURN x', /is not a table of the mesh/],
  ];
  for (const [q, re] of cases) refused(t, () => plan(q), 'INVALID_AQL', re, JSON.stringify(q));
  refused(t, () => plan('FOR x IN orders FILTER x.a == @v RETURN x'), 'INVALID_AQL', /@v .*has no value/, 'missing bind parameter');
  refused(t, () => plan('FOR x IN orders RETURN x', { v: 1 }), 'INVALID_AQL', /"v" is not used/, 'unused bind parameter');
  refused(t, () => plan('FOR x IN @@c RETURN x', { c: 5 }), 'INVALID_AQL', /must be a collection name/, 'collection parameter of the wrong type');
  refused(t, () => plan('FOR x IN orders LIMIT @n RETURN x', { n: -1 }), 'INVALID_AQL', /LIMIT count must be an integer/, 'negative LIMIT');
  refused(t, () => plan('x'.repeat(70_000)), 'INVALID_AQL', /longer than/, 'huge query');
});

t.test('valid AQL outside the subset is 501 AQL_NOT_SUPPORTED, naming the construct and the subset', async (t) => {
  const cases: [string, RegExp][] = [
    ['FOR x IN orders FILTER x.a == 1 OR x.b == 2 RETURN x', /OR/],
    ['FOR x IN orders FILTER x.a == 1 || x.b == 2 RETURN x', /OR/],
    ['FOR x IN orders FILTER NOT x.a == 1 RETURN x', /NOT/],
    ['FOR x IN orders FILTER x.a != 1 RETURN x', /!=/],
    ['FOR x IN orders FILTER x.a IN [1, 2] RETURN x', /IN/],
    ['FOR x IN orders FILTER x.a LIKE "a%" RETURN x', /LIKE/],
    ['FOR x IN orders FILTER x.a =~ "a" RETURN x', /=~/],
    ['FOR x IN orders FILTER LENGTH(x.a) == 1 RETURN x', /function LENGTH/],
    ['FOR x IN orders FILTER x.a + 1 == 2 RETURN x', /arithmetic/],
    ['FOR x IN orders FILTER x.a == x.b RETURN x', /two fields/],
    ['FOR x IN orders FILTER 1 == 1 RETURN x', /without a field/],
    ['FOR x IN orders FILTER x.active RETURN x', /not a comparison/],
    ['FOR x IN orders FILTER x == 1 RETURN x', /whole document/],
    ['FOR x IN orders FILTER x["a"] == 1 RETURN x', /\[\] access/],
    ['FOR x IN orders FILTER x.a == null RETURN x', /null/],
    ['FOR x IN orders FILTER x.a < true RETURN x', /boolean/],
    ['FOR x IN orders FILTER x._key > "a" RETURN x', /_key >/],
    ['FOR x IN orders FILTER x.a == [1] RETURN x', /array and object/],
    ['FOR x IN orders SORT x.a, x.b RETURN x', /more than one field/],
    ['FOR x IN orders SORT x.a SORT x.b RETURN x', /more than one SORT/],
    ['FOR x IN orders SORT LENGTH(x.a) RETURN x', /SORT by anything but a field/],
    ['FOR x IN orders SORT x._key RETURN x', /SORT by _key/],
    ['FOR x IN orders LIMIT 3 FILTER x.a == 1 RETURN x', /FILTER after LIMIT/],
    ['FOR x IN orders LIMIT 3 LIMIT 2 RETURN x', /LIMIT after LIMIT/],
    ['FOR x IN orders LET y = x.a RETURN x', /LET/],
    ['FOR x IN orders COLLECT c = x.city RETURN c', /COLLECT/],
    ['FOR x IN orders FOR y IN users RETURN x', /second FOR/],
    ['FOR x IN orders RETURN x.name', /projections/],
    ['FOR x IN orders RETURN { n: x.name }', /projections/],
    ['FOR x IN orders RETURN DISTINCT x', /DISTINCT/],
    ['FOR x IN [1, 2] RETURN x', /iterating over anything but a collection/],
    ['INSERT { a: 1 } INTO orders', /does not start with FOR \(INSERT\)/],
    ['RETURN 1', /does not start with FOR/],
    ['FOR x IN orders REMOVE x IN orders', /REMOVE/],
    ['FOR x IN FULLTEXT(orders, "a", "b") RETURN x', /function FULLTEXT/],
  ];
  for (const [q, re] of cases) refused(t, () => plan(q), 'AQL_NOT_SUPPORTED', new RegExp(`${re.source}.*FOR x IN collection`, 's'), JSON.stringify(q));
  refused(t, () => plan('FOR x IN orders FILTER x.a == @v RETURN x', { v: { a: 1 } }), 'AQL_NOT_SUPPORTED', /holds an object/, 'object parameter');
  refused(t, () => plan('FOR x IN orders FILTER x.a == @v RETURN x', { v: [1] }), 'AQL_NOT_SUPPORTED', /holds an array/, 'array parameter');
});

t.test('traversals are 501 GRAPH_NOT_SUPPORTED', async (t) => {
  for (const q of ['FOR v IN 1..3 OUTBOUND "users/1" edges RETURN v', 'FOR v, e IN OUTBOUND "a" GRAPH "g" RETURN v', 'FOR v IN ANY "a" edges RETURN v', 'FOR p IN OUTBOUND SHORTEST_PATH "a" TO "b" edges RETURN p']) {
    refused(t, () => parseAql(q), 'GRAPH_NOT_SUPPORTED', /graph traversal/, q);
  }
});

t.test('the request body: fields, cursor options, bind parameters', async (t) => {
  t.same(parseAqlRequest({ query: 'FOR x IN c RETURN x' }), { query: 'FOR x IN c RETURN x', params: {}, useCursor: false });
  t.same(parseAqlRequest({ query: 'q', params: { a: 1 }, use_cursor: true, batch_size: 10 }), { query: 'q', params: { a: 1 }, useCursor: true, batchSize: 10 });
  t.same(parseAqlRequest({ query: 'q', cursor: 'tok' }), { query: 'q', params: {}, useCursor: true, cursor: 'tok' }, 'a cursor alone continues a walk');
  t.same(parseAqlRequest({ query: 'q', bindVars: { a: 1 }, page_size: 3, optimize: true, allow_full_scan: false }).batchSize, 3, 'ThemisDB and ArangoDB spellings');
  const bad: [Record<string, unknown>, RegExp][] = [
    [{}, /query is required/],
    [{ query: '  ' }, /query is required/],
    [{ query: 1 }, /query is required/],
    [{ query: 'q', params: [] }, /params must be an object/],
    [{ query: 'q', params: null }, /params must be an object/],
    [{ query: 'q', use_cursor: 'yes' }, /use_cursor must be true or false/],
    [{ query: 'q', cursor: 5 }, /cursor must be/],
    [{ query: 'q', batch_size: 0 }, /batch_size must be an integer/],
    [{ query: 'q', batch_size: 100_001 }, /batch_size must be an integer/],
    [{ query: 'q', unknown: 1 }, /unknown field "unknown"/],
    [{ query: 'q', optimize: 'no' }, /optimize must be true or false/],
  ];
  for (const [body, re] of bad) refused(t, () => parseAqlRequest(body), 'INVALID_AQL', re, JSON.stringify(body));
  refused(t, () => parseAqlRequest({ query: 'q', explain: true }), 'AQL_NOT_SUPPORTED', /explain/, 'explain');
});

t.test('tableOf: the clients\' key spelling model.namespace.collection', async (t) => {
  t.equal(tableOf('orders', { model: 'document', namespace: 'shop' }), 'document.shop.orders');
  refused(t, () => tableOf('ord ers', D), 'INVALID_AQL', /not a table of the mesh/, 'space in the name');
});
