// The admin port's console routes on a real loopback listener: off by default (404
// CONSOLE_DISABLED, the rest of the admin port unaffected), security headers on every answer,
// a non-loopback Host refused, the status read shared within cacheMs and a failed read not kept.
import t from 'tap';
import http from 'node:http';
import { Registry } from 'prom-client';
import { AdminServer } from '../../../proxy/admin-listener.js';
import { loadConsoleAssets } from '../../../proxy/console/console-assets.js';
import { ConsoleRoutes } from '../../../proxy/console/console-routes.js';
import type { ClusterStatus } from '../../../src/status/cluster-status.js';

const STATUS = { cluster: 'c', epoch: 4, shards: [{ shard: 'shard-001' }] } as unknown as ClusterStatus;

async function serve(console: ConsoleRoutes) {
  const admin = new AdminServer(new Registry(), async () => ({ ready: true, checks: {} }), undefined, undefined, console);
  const a = await admin.listen(0, '127.0.0.1');
  const get = async (path: string, headers: Record<string, string> = {}, method = 'GET') => {
    const r = await fetch(`http://127.0.0.1:${a.port}${path}`, { method, headers });
    return { status: r.status, headers: r.headers, text: await r.text() };
  };
  // fetch sets Host itself; node:http sends the one given, as a rebinding browser would.
  const withHost = (path: string, host: string) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: a.port, path, headers: { host }, setHost: false }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, text }));
      });
      req.on('error', reject);
      req.end();
    });
  return { admin, get, withHost };
}

t.test('off by default: every /console path is 404 CONSOLE_DISABLED; /metrics and /healthz still answer', async (t) => {
  let reads = 0;
  const { admin, get } = await serve(new ConsoleRoutes({ enabled: false, read: async () => (reads++, STATUS), monotonic: () => 0 }));
  t.teardown(() => admin.close());
  for (const p of ['/console', '/console/', '/console/status.json', '/console/console.js', '/console/nothing']) {
    const r = await get(p);
    t.equal(r.status, 404, p);
    t.same(JSON.parse(r.text), { error: true, message: 'the web console is off; set admin.console to true in the sidecar config and restart it', status_code: 404, code: 'CONSOLE_DISABLED' }, p);
    t.equal(r.headers.get('x-content-type-options'), 'nosniff');
  }
  t.equal(reads, 0, 'etcd is never read');
  t.equal((await get('/healthz')).status, 200);
  t.equal((await get('/metrics')).status, 200);
  t.equal((await get('/consolex')).status, 404, 'a path that only starts like it is not the console');
  t.equal(JSON.parse((await get('/consolex')).text).code, 'ROUTE_NOT_FOUND');
});

t.test('on: the page, its script and style, and the status, each with a strict CSP and nosniff', async (t) => {
  let reads = 0;
  let now = 0;
  const { admin, get } = await serve(new ConsoleRoutes({ enabled: true, assets: loadConsoleAssets(), read: async () => ({ ...STATUS, epoch: 4 + reads++ }), monotonic: () => now, cacheMs: 1000 }));
  t.teardown(() => admin.close());
  const page = await get('/console');
  t.equal(page.status, 200);
  t.match(page.headers.get('content-type'), 'text/html');
  t.match(page.text, '<script src="/console/console.js" defer></script>');
  t.notMatch(page.text, /<script>|<script [^>]*>[^<]/, 'no inline script in the page');
  t.notMatch(page.text, /style=/, 'no inline style in the page');
  const csp = page.headers.get('content-security-policy')!;
  t.match(csp, "default-src 'none'");
  t.match(csp, "script-src 'self'");
  t.notMatch(csp, 'unsafe-inline');
  t.match(csp, "frame-ancestors 'none'");
  t.equal(page.headers.get('x-content-type-options'), 'nosniff');
  t.equal(page.headers.get('cache-control'), 'no-store');
  t.equal((await get('/console/')).text, page.text);
  const js = await get('/console/console.js');
  t.equal(js.status, 200);
  t.match(js.headers.get('content-type'), 'text/javascript');
  t.notMatch(js.text, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/, 'the script never writes markup');
  t.match((await get('/console/console.css')).headers.get('content-type'), 'text/css');
  const s1 = await get('/console/status.json');
  t.equal(s1.status, 200);
  t.same(JSON.parse(s1.text), { ...STATUS, epoch: 4 });
  t.equal(s1.headers.get('x-content-type-options'), 'nosniff');
  t.equal(JSON.parse((await get('/console/status.json')).text).epoch, 4, 'within cacheMs: the same read');
  now = 1000;
  t.equal(JSON.parse((await get('/console/status.json')).text).epoch, 5, 'after cacheMs: read again');
  t.equal(reads, 2);
  const missing = await get('/console/secret.txt');
  t.equal(missing.status, 404);
  t.equal(JSON.parse(missing.text).code, 'ROUTE_NOT_FOUND');
  t.equal((await get('/console/../console/console.js')).status, 200, 'fetch normalises dot segments itself');
  t.equal(JSON.parse((await get('/console/%2e%2e/console.html')).text).code, 'ROUTE_NOT_FOUND', 'an encoded dot segment names no file');
  const post = await get('/console/status.json', {}, 'POST');
  t.equal(post.status, 405, 'read-only');
});

t.test('a Host that is not loopback is refused with 403 HOST_NOT_ALLOWED (DNS rebinding)', async (t) => {
  let reads = 0;
  const { admin, withHost } = await serve(new ConsoleRoutes({ enabled: true, assets: loadConsoleAssets(), read: async () => (reads++, STATUS), monotonic: () => 0 }));
  t.teardown(() => admin.close());
  for (const host of ['evil.example', 'evil.example:9464', '127.0.0.1.evil.example', '10.0.0.5:9464', '']) {
    const r = await withHost('/console/status.json', host);
    t.equal(r.status, 403, `Host: ${host}`);
    t.equal(JSON.parse(r.text).code, 'HOST_NOT_ALLOWED');
  }
  t.equal(reads, 0);
  for (const host of ['127.0.0.1:9464', 'localhost:9464', '[::1]:9464', '127.0.0.2']) t.equal((await withHost('/console/status.json', host)).status, 200, `Host: ${host}`);
});

t.test('a failed read answers 503 CLUSTER_STATUS_UNAVAILABLE and is not kept', async (t) => {
  let fail = true;
  const { admin, get } = await serve(new ConsoleRoutes({ enabled: true, assets: loadConsoleAssets(), read: async () => { if (fail) throw new Error('etcd: unavailable'); return STATUS; }, monotonic: () => 0 }));
  t.teardown(() => admin.close());
  const r = await get('/console/status.json');
  t.equal(r.status, 503);
  t.same(JSON.parse(r.text), { error: true, message: "cannot read the cluster's state: etcd: unavailable", status_code: 503, code: 'CLUSTER_STATUS_UNAVAILABLE' });
  fail = false;
  t.equal((await get('/console/status.json')).status, 200, 'the next request reads again, within cacheMs');
});

t.test('missing static files are a start-up error naming admin.console', async (t) => {
  t.throws(() => loadConsoleAssets('/nonexistent-console-dir'), { name: 'ConfigError', field: 'admin.console' });
});
