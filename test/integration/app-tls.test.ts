// app.tls: the app port as TLS 1.3 with client certificates from the client CA, each request
// checked against the certificate's capabilities, as on the mesh port. Real sidecar, real
// certificates; stock curl too.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import http2 from 'node:http2';
import { startMesh, type Mesh } from '../support/mesh.js';
import type { LeafMaterial } from '../support/pki-fixture.js';

let mesh: Mesh;
let port: number;
t.before(async () => {
  mesh = await startMesh({ shards: 1, sidecarConfig: { app: { tls: true } } });
  port = Number(new URL(mesh.nodes[0]!.appUrl).port);
});
t.teardown(() => mesh?.close());

const KEY = '/entities/document.shop.orders:5f0c6a3e-8d1b-4c2a-9e7f-1a2b3c4d5e6f';

/** Whether a line of the sidecar's audit trail has all these fields. */
function audited(fields: Record<string, string>): boolean {
  return readFileSync(mesh.nodes[0]!.auditFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .some((l) => {
      const e = JSON.parse(l) as Record<string, unknown>;
      return Object.entries(fields).every(([k, v]) => e[k] === v);
    });
}

/** One HTTP/1.1 request over TLS as `who` (undefined: no client certificate). */
function request(who: LeafMaterial | undefined, method: string, path: string, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, method, path, ca: mesh.pki.root.cert, ...(who ? { cert: who.chain, key: who.key } : {}), agent: false, timeout: 5000 },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body: text }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

t.test('a read-write client certificate reads and writes, over HTTP/1.1 and HTTP/2', async (t) => {
  const rw = mesh.pki.clients.readWrite;
  const put = await request(rw, 'PUT', KEY, JSON.stringify({ blob: '{"via":"tls"}' }));
  t.ok(put.status === 201 || put.status === 200, `PUT: ${put.status} ${put.body}`);
  const got = await request(rw, 'GET', KEY);
  t.equal(got.status, 200);
  t.match(got.body, /via/);
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca: mesh.pki.root.cert, cert: rw.chain, key: rw.key });
  t.teardown(() => session.close());
  const h2 = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const s = session.request({ ':method': 'GET', ':path': KEY });
    let status = 0;
    let text = '';
    s.on('response', (h) => (status = Number(h[':status'])));
    s.on('data', (d: Buffer) => (text += d.toString()));
    s.on('end', () => resolve({ status, body: text }));
    s.on('error', reject);
    s.end();
  });
  t.equal(h2.status, 200, 'HTTP/2 (ALPN h2)');
  t.match(h2.body, /via/);
  const curl = spawnSync('curl', ['-sS', '--cert', rw.chainPath, '--key', rw.keyPath, '--cacert', mesh.pki.root.certPath, `https://127.0.0.1:${port}${KEY}`], { encoding: 'utf8' });
  t.equal(curl.status, 0, curl.stderr);
  t.match(curl.stdout, /via/, 'stock curl with the client certificate');
});

t.test('each request needs its capability: a read-only client cannot write', async (t) => {
  const ro = mesh.pki.clients.readOnly;
  const put = await request(ro, 'PUT', KEY, JSON.stringify({ blob: '{"via":"read-only"}' }));
  t.equal(put.status, 403);
  t.match(JSON.parse(put.body), { code: 'CAPABILITY_DENIED' });
  const got = await request(ro, 'GET', KEY);
  t.equal(got.status, 200, 'it reads');
  t.notMatch(got.body, /read-only/, 'the refused write changed nothing');
  t.ok(audited({ event: 'CAPABILITY_DENIED', listener: 'app' }), 'the refusal is audited');
});

t.test('no certificate, another role\'s certificate or plaintext: not served', async (t) => {
  await t.rejects(request(undefined, 'GET', KEY), 'no client certificate: the connection is closed');
  await t.rejects(request(mesh.nodes[0]!.shard, 'GET', KEY), 'a shard certificate: the app port takes client certificates only');
  await t.rejects(request(mesh.pki.operators.admin, 'GET', KEY), 'an operator certificate: likewise');
  const plain = await fetch(`http://127.0.0.1:${port}${KEY}`, { signal: AbortSignal.timeout(5000) }).then(
    (r) => `answered ${r.status}`,
    (e: Error) => `refused: ${e.message}`,
  );
  t.match(plain, /^refused/, 'plaintext HTTP gets no answer');
  t.ok(audited({ event: 'MTLS_CONNECTION_FAILED', listener: 'app', reason: 'not_a_client' }), 'a shard certificate on the app port is audited');
});
