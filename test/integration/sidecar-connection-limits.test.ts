// The app and admin ports close connections that dawdle and cap how many they hold, on a real
// sidecar process, while a normal client is served throughout and the process stays up:
// slowloris headers and silent connections are cut off after the headers timeout, a stalled body
// after the request timeout (HTTP/1.1 and h2c, nothing of it written), idle keep-alive connections
// and h2c sessions after the idle timeout, and one connection over the cap is closed at once.
import t, { type Test } from 'tap';
import http2 from 'node:http2';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { freshGet, rawConnect, statusesDuring, trickle, type RawConnection } from '../support/raw-client.js';

const LIMITS = { headersTimeoutMs: 1000, requestTimeoutMs: 2000, idleTimeoutMs: 3000 };
let mesh: Mesh;
let appPort: number;
let adminPort: number;
t.before(async () => {
  mesh = await startMesh({ shards: 1, sidecarConfig: { app: { ...LIMITS, maxConnections: 6 }, admin: { ...LIMITS, maxConnections: 5 } } });
  appPort = Number(new URL(mesh.nodes[0]!.appUrl).port);
  adminPort = Number(new URL(mesh.nodes[0]!.adminUrl).port);
});
t.teardown(() => mesh?.close());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Milliseconds until the server closed `c`, or -1 if it did not within `ms`. */
const closedWithin = (c: RawConnection, ms: number) => Promise.race([c.closed, sleep(ms).then(() => -1)]);
const GET = (path: string) => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;

/** Runs `f` while a normal client asks `path` every 100 ms on fresh connections; every answer must be 200, and the sidecar must live on. */
async function servedThroughout(t: Test, port: number, path: string, f: () => Promise<void>): Promise<void> {
  const statuses = await statusesDuring(() => freshGet(port, path).then((r) => r.status), f);
  t.ok(statuses.length >= 5, `the normal client asked ${statuses.length} times`);
  t.same([...new Set(statuses)], [200], 'and got 200 every time');
  t.equal(mesh.nodes[0]!.sidecar!.child.exitCode, null, 'the sidecar is still running');
}

/** Opens a connection, sends one whole request and reads its answer: an idle keep-alive connection. */
async function keptAlive(port: number, path: string): Promise<RawConnection> {
  const c = await rawConnect(port);
  c.write(GET(path));
  await c.until(/\r\n\r\n\{[^]*\}/);
  return c;
}

const within = (t: Test, ms: number, lo: number, hi: number, what: string) => t.ok(ms >= lo && ms <= hi, `${what}: closed after ${ms} ms (expected ${lo}–${hi})`);

// The app port answers /health at once, before Node has seen the end of the request, and so
// closes that connection; an entity read (404 here) is answered later and keeps it.
const absent = () => `/entities/document.app.absent:${uuidOwnedBy(mesh.nodes[0]!.shard.tokenRange)}`;
for (const [name, port, path, keepPath] of [['app', () => appPort, '/health', absent], ['admin', () => adminPort, '/healthz', () => '/healthz']] as const) {
  t.test(`${name}: slowloris headers and silent connections are cut off after the headers timeout`, async (t) => {
    await servedThroughout(t, port(), path, async () => {
      // A first request whose headers trickle in, a header every 200 ms.
      const slow = await rawConnect(port());
      slow.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n`);
      trickle(slow, 200);
      // A connection that says nothing at all.
      const silent = await rawConnect(port());
      // A keep-alive connection whose second request trickles (Node's own headers timer).
      const second = await keptAlive(port(), keepPath());
      const secondStart = Date.now();
      second.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n`);
      trickle(second, 200);
      const [a, b, c] = await Promise.all([closedWithin(slow, 6000), closedWithin(silent, 6000), closedWithin(second, 6000).then((ms) => (ms < 0 ? ms : Date.now() - secondStart))]);
      within(t, a, 900, 1800, 'trickled first request');
      within(t, b, 900, 1800, 'silent connection');
      within(t, c, 900, 1800, 'trickled second request');
      t.match(second.received(), /HTTP\/1\.1 408 Request Timeout/, 'the second request got 408');
      if (name === 'app') {
        // h2c: the connection preface itself, one byte every 100 ms.
        const h2 = await rawConnect(port());
        let i = 0;
        const preface = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
        const timer = setInterval(() => h2.write(preface[i++ % preface.length]!), 100);
        const d = await closedWithin(h2, 6000);
        clearInterval(timer);
        within(t, d, 900, 1800, 'trickled h2c preface');
      }
    });
  });

  t.test(`${name}: idle keep-alive connections are closed after the idle timeout`, async (t) => {
    const c = await keptAlive(port(), keepPath());
    const answered = Date.now();
    const ms = await closedWithin(c, 8000);
    within(t, ms < 0 ? ms : Date.now() - answered, 2800, 4500, 'idle HTTP/1.1 connection');
    if (name === 'app') {
      const session = http2.connect(mesh.nodes[0]!.appUrl);
      session.on('error', () => undefined);
      const closed = new Promise<number>((r) => session.once('close', () => r(Date.now())));
      const goaway = new Promise<boolean>((r) => session.once('goaway', () => r(true)));
      const status = await new Promise<number>((resolve, reject) => {
        const s = session.request({ ':path': '/health' });
        s.on('response', (h) => resolve(Number(h[':status'])));
        s.on('error', reject);
        s.resume();
      });
      t.equal(status, 200);
      const idleSince = Date.now();
      const at = await Promise.race([closed, sleep(8000).then(() => -1)]);
      within(t, at < 0 ? at : at - idleSince, 2800, 4500, 'idle h2c session');
      t.ok(await Promise.race([goaway, sleep(10).then(() => false)]), 'with GOAWAY');
    }
  });

  t.test(`${name}: one connection over the cap is closed at once; the ones open keep working`, async (t) => {
    await sleep(300); // the normal client's connections of the last test are gone
    const cap = name === 'app' ? 6 : 5;
    const open = await Promise.all(Array.from({ length: cap }, () => keptAlive(port(), keepPath())));
    const extra = await rawConnect(port());
    extra.write(GET(path));
    const ms = await closedWithin(extra, 2000);
    t.ok(ms >= 0 && ms < 1000, `the connection over the cap was closed (after ${ms} ms)`);
    t.equal(extra.received(), '', 'without an answer');
    for (const c of open) {
      const before = c.received().length;
      c.write(GET(keepPath()));
      const text = await c.until(new RegExp(`^[^]{${before}}HTTP/1\\.1 (200|404)[^]*\\r\\n\\r\\n\\{[^]*\\}`));
      t.ok(text.length > before, 'an open connection is still served');
    }
    open[0]!.socket.destroy();
    await sleep(100);
    t.equal((await freshGet(port(), path)).status, 200, 'a connection freed is a connection for the next client');
    for (const c of open) c.socket.destroy();
    const metrics = (await freshGet(adminPort, '/metrics')).text;
    t.match(metrics, new RegExp(`themis_listener_limits_total\\{listener="${name}",limit="max_connections"\\} [1-9]`), 'counted');
  });
}

t.test('app: a stalled request body gets 408 after the request timeout, and nothing of it is written', async (t) => {
  const node = mesh.nodes[0]!;
  const h1Key = `/entities/document.app.stalled:${uuidOwnedBy(node.shard.tokenRange)}`;
  const h2Key = `/entities/document.app.stalled:${uuidOwnedBy(node.shard.tokenRange)}`;
  await servedThroughout(t, appPort, '/health', async () => {
    // HTTP/1.1: the body streams to the storage node; it must not apply a cut one.
    const c = await rawConnect(appPort);
    c.write(`PUT ${h1Key} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"blob":"`);
    trickle(c, 300, () => 'a');
    // h2c: the body is read first, under the per-stream deadline.
    const session = http2.connect(node.appUrl);
    session.on('error', () => undefined);
    const started = Date.now();
    const h2 = await new Promise<{ status: number; text: string; rst: number; ms: number }>((resolve, reject) => {
      const s = session.request({ ':method': 'PUT', ':path': h2Key, 'content-length': '100' }, { endStream: false });
      s.write('{"blob":"');
      let status = 0;
      let text = '';
      s.on('response', (h) => (status = Number(h[':status'])));
      s.setEncoding('utf8');
      s.on('data', (d: string) => (text += d));
      s.on('error', () => undefined);
      s.on('close', () => resolve({ status, text, rst: s.rstCode ?? -1, ms: Date.now() - started }));
      setTimeout(() => reject(new Error('the stalled h2c stream was never closed')), 8000).unref();
    });
    const h1 = await closedWithin(c, 8000);
    within(t, h1, 1800, 3600, 'stalled HTTP/1.1 body');
    t.match(c.received(), /^HTTP\/1\.1 408 Request Timeout/, 'HTTP/1.1: 408');
    t.equal(h2.status, 408, 'h2c: 408');
    t.equal(JSON.parse(h2.text).code, 'REQUEST_TIMEOUT', 'with the stable code');
    t.equal(h2.rst, http2.constants.NGHTTP2_CANCEL, 'and the stream reset');
    within(t, h2.ms, 1800, 3600, 'stalled h2c body');
    const again = await new Promise<number>((resolve, reject) => {
      const s = session.request({ ':path': '/health' });
      s.on('response', (h) => resolve(Number(h[':status'])));
      s.on('error', reject);
      s.resume();
    });
    t.equal(again, 200, 'the h2c session still serves other streams');
    session.close();
  });
  for (const key of [h1Key, h2Key]) {
    const r = await fetch(`${node.storage.url}${key}`);
    t.equal(r.status, 404, `nothing of the stalled write reached the storage node (${key.slice(-8)})`);
  }
});
