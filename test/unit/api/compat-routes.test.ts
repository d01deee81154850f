// ThemisDB's routes beyond the storage API: which the sidecar answers, which it refuses with
// 501 (and the stable code), which stay 404; and docs/compatibility.md lists every one.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../support/root.js';
import { REFUSED, SERVED, matchCompat } from '../../../src/api/compat-routes.js';
import { ThemisError } from '../../../src/errors.js';
import { classifyRequest } from '../../../proxy/operations.js';

t.test('served, refused, unknown', async (t) => {
  t.same(matchCompat('GET', '/_admin/cluster/topology'), { kind: 'topology' });
  t.same(matchCompat('POST', '/query/aql'), { kind: 'aql' });
  t.throws(() => matchCompat('PUT', '/query/aql'), { code: 'METHOD_NOT_ALLOWED' });
  const cases: [string, string, string][] = [
    ['POST', '/transaction/begin', 'TRANSACTIONS_NOT_SUPPORTED'],
    ['POST', '/transaction/commit', 'TRANSACTIONS_NOT_SUPPORTED'],
    ['POST', '/graph/traverse', 'GRAPH_NOT_SUPPORTED'],
    ['GET', '/llm/interaction/7', 'NOT_SUPPORTED'],
    ['GET', '/api/v1/diff', 'NOT_SUPPORTED'],
    ['GET', '/_admin/cluster/health', 'NOT_SUPPORTED'],
    ['GET', '/health/ready', 'NOT_SUPPORTED'],
    ['GET', '/stats', 'NOT_SUPPORTED'],
  ];
  for (const [method, path, code] of cases) {
    const m = matchCompat(method, path);
    t.equal(m?.kind === 'refused' && m.code, code, `${method} ${path}`);
    t.match(m?.kind === 'refused' && m.message, /ThemisDB route the mesh does not carry/);
  }
  for (const path of ['/transactions', '/statsx', '/graphs/x', '/entity', '/']) t.equal(matchCompat('GET', path), undefined, `${path}: a typo, not a known route`);
});

t.test('the sidecar classifies the storage API first, then these, then 404', async (t) => {
  t.same(classifyRequest('POST', '/vector/search'), { kind: 'vector', capability: 'read' }, 'the storage API wins over the /vector prefix');
  t.same(classifyRequest('GET', '/health'), { kind: 'health', capability: 'read' });
  t.same(classifyRequest('POST', '/query/aql?x=1'), { kind: 'aql', capability: 'read' });
  t.match(classifyRequest('POST', '/transaction/begin'), { kind: 'unsupported', code: 'TRANSACTIONS_NOT_SUPPORTED' });
  try {
    classifyRequest('GET', '/nope');
    t.fail('not refused');
  } catch (e) {
    t.equal((e as ThemisError).code, 'ROUTE_NOT_FOUND');
  }
});

t.test('docs/compatibility.md lists every route of the table', async (t) => {
  const doc = readFileSync(join(ROOT, 'docs/compatibility.md'), 'utf8');
  // In code spans, with or without the method: `GET /_admin/cluster/topology`, `/api/…`.
  const documented = (path: string) => new RegExp('`(?:[A-Z]+ )?' + path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '[`/ ]').test(doc);
  t.notOk(documented('/nowhere'), 'control: an undocumented path is caught');
  for (const r of [...SERVED, ...REFUSED]) t.ok(documented(r.path), `${r.path} is documented`);
  for (const code of new Set(REFUSED.map((r) => r.refused))) t.ok(doc.includes(code), `${code} is documented`);
});
