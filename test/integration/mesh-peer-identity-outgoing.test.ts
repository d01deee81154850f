// Regression for "a sidecar calling shard A accepts shard B's valid certificate" (issue 25):
// the sender must check that the server is exactly the shard the topology names
// (proxy/peer-identity.ts verifyServerCert), not just any certificate of our cluster CA.
// shard-002's sidecar is stopped and, at its very mesh address, an impostor listens with
// shard-003's real certificate from the test PKI — valid, unrevoked, issued by the cluster CA —
// and would accept anything it is sent. A write through shard-001 to a key of shard-002 must
// fail with 502 UPSTREAM_PROTOCOL_ERROR, and the impostor must get no request at all (a
// signed request, its body, never leave the sender), and no storage node may hold the write.
import t from 'tap';
import http2 from 'node:http2';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { call } from '../support/storage-process.js';

let mesh: Mesh;
let impostor: http2.Http2SecureServer | undefined;
/** What the impostor saw: TCP connections and requests received (method, path). */
const seen = { connections: 0, requests: [] as string[] };

t.before(async () => {
  mesh = await startMesh({ shards: 3 });
});
const sessions = new Set<http2.ServerHttp2Session>();
t.teardown(async () => {
  // close() waits for open sessions: a sender that (wrongly) kept one would hold the test.
  for (const s of sessions) s.destroy();
  await new Promise<void>((r) => (impostor ? impostor.close(() => r()) : r()));
  await mesh?.close();
});

/** An HTTP/2 TLS 1.3 server at `ip:port` presenting `cert`; answers every request 201 as if it had stored it. */
function startImpostor(ip: string, port: number, cert: { chain: string; key: string }): Promise<http2.Http2SecureServer> {
  const server = http2.createSecureServer({
    cert: cert.chain,
    key: cert.key,
    ca: mesh.pki.root.cert,
    requestCert: true,
    rejectUnauthorized: false, // an impostor takes whoever calls
    minVersion: 'TLSv1.3',
    allowHTTP1: false,
  });
  server.on('connection', () => seen.connections++);
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('tlsClientError', () => undefined);
  server.on('stream', (stream, headers) => {
    seen.requests.push(`${headers[':method']} ${headers[':path']}`);
    stream.on('error', () => undefined);
    stream.respond({ ':status': 201, 'content-type': 'application/json' });
    stream.end(JSON.stringify({ success: true }));
  });
  server.on('sessionError', () => undefined);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, ip, () => resolve(server));
  });
}

t.test("a sender refuses shard-003's valid certificate at shard-002's address: 502, nothing sent, nothing written", async (t) => {
  const [entry, target, other] = mesh.nodes as [Mesh['nodes'][0], Mesh['nodes'][0], Mesh['nodes'][0]];
  const key = `document.app.orders:${uuidOwnedBy(target.shard.tokenRange)}`;
  // Through the real shard-002 first: the sender's path to it works.
  const warm = await call(entry.appUrl, 'PUT', `/entities/${key}`, { blob: '{"v":"real"}' });
  t.equal(warm.status, 201, `the real shard-002 takes the write: ${warm.text}`);

  await mesh.stopSidecar(1);
  impostor = await startImpostor(target.shard.ip, target.meshPort, mesh.pki.shards[2]!);

  const r = await call(entry.appUrl, 'PUT', `/entities/${key}`, { blob: '{"v":"to-the-impostor"}' });
  t.equal(r.status, 502, `the write is refused: ${r.text}`);
  t.equal(r.body?.code, 'UPSTREAM_PROTOCOL_ERROR', 'with the stable code for a peer of the wrong identity');
  t.match(r.body?.message, /certificate for "shard-003", expected shard shard-002/, 'naming the shard it found and the one it expected');
  t.equal(seen.requests.length, 0, `the impostor received no request (got: ${seen.requests.join(', ') || 'none'})`);

  const stored = await call(target.storage.url, 'GET', `/entities/${key}`);
  t.equal(stored.body?.blob, '{"v":"real"}', "shard-002's storage still holds the value written through the real shard-002");
  for (const n of [entry, other]) {
    const elsewhere = await call(n.storage.url, 'GET', `/entities/${key}`);
    t.equal(elsewhere.status, 404, `${n.shard.id}'s storage holds nothing of it`);
  }
  t.ok(seen.connections > 0, 'the sender did connect to the impostor (refused by the identity check, not a dead port)');
});
