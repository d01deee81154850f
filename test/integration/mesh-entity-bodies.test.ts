// The mesh port's entity path (served from the core HTTP/2 API) with request bodies that
// must not be stored: over maxBodyBytes, declared or streamed, and cut short. The sidecar
// answers or resets the stream, stores nothing, counts the answer, and keeps serving.
import t from 'tap';
import type { ClientHttp2Session } from 'node:http2';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { meshConnect, meshRequest, signHeaders } from '../support/mesh-client.js';

const LIMIT = 4096;
let mesh: Mesh;
let session: ClientHttp2Session;
t.before(async () => {
  mesh = await startMesh({ shards: 2, sidecarConfig: { maxBodyBytes: LIMIT } });
  const sender = mesh.pki.shards[0]!;
  session = meshConnect(`${mesh.nodes[1]!.shard.ip}:${mesh.nodes[1]!.meshPort}`, { cert: sender.chain, key: sender.key, ca: mesh.pki.root.cert });
});
t.teardown(async () => {
  session?.close();
  await mesh?.close();
});

const sender = () => mesh.pki.shards[0]!;
const receiver = () => mesh.nodes[1]!;
const keyPath = () => `/entities/document.app.orders:${uuidOwnedBy(receiver().shard.tokenRange)}`;
const sign = (path: string, body: string) => signHeaders({ shardId: sender().id, serial: sender().serial, key: sender().key, method: 'PUT', path, body });
const stored = async (path: string) => (await fetch(`${receiver().storage.url}${path}`)).status;
const entity4xx = async () => {
  const text = await fetch(`${receiver().adminUrl}/metrics`).then((r) => r.text());
  return Number(/^themis_requests_total\{listener="mesh",operation="entity",result="4xx"\} (\d+)$/m.exec(text)?.[1] ?? 0);
};
const blobOf = (n: number) => JSON.stringify({ blob: JSON.stringify({ pad: 'x'.repeat(n) }) });

t.test('a body over maxBodyBytes gets 413 PAYLOAD_TOO_LARGE, declared or streamed, and is not stored', async (t) => {
  const before = await entity4xx();
  const declared = keyPath();
  const body = blobOf(LIMIT + 400);
  const r = await meshRequest(session, 'PUT', declared, { ...sign(declared, body), 'content-length': String(Buffer.byteLength(body)) }, body);
  t.equal(r.status, 413, r.text);
  t.equal(r.body?.code, 'PAYLOAD_TOO_LARGE');
  t.equal(await stored(declared), 404, 'declared: nothing stored');

  // No content-length: the body is refused once it passes the limit while streaming in.
  const streamed = keyPath();
  const big = blobOf(LIMIT * 2);
  const s = await new Promise<{ status: number; code?: string }>((resolve, reject) => {
    const req = session.request({ ':method': 'PUT', ':path': streamed, ...sign(streamed, big) });
    let text = '';
    let status = 0;
    req.on('response', (h) => (status = Number(h[':status'])));
    req.setEncoding('utf8');
    req.on('data', (d: string) => (text += d));
    req.on('end', () => resolve({ status, code: (JSON.parse(text) as { code?: string }).code }));
    req.on('error', reject);
    for (let i = 0; i < big.length; i += 1000) req.write(big.slice(i, i + 1000));
    req.end();
  });
  t.equal(s.status, 413);
  t.equal(s.code, 'PAYLOAD_TOO_LARGE');
  t.equal(await stored(streamed), 404, 'streamed: nothing stored');
  t.equal(await entity4xx(), before + 2, 'both answers counted in themis_requests_total{listener="mesh",operation="entity",result="4xx"}');
});

t.test('a body that ends before its declared length is not stored, and the sidecar keeps serving', async (t) => {
  const cut = keyPath();
  const whole = blobOf(100);
  const half = whole.slice(0, 40);
  const answer = await meshRequest(session, 'PUT', cut, { ...sign(cut, half), 'content-length': String(whole.length) }, half).catch((e: Error) => e);
  t.ok(answer instanceof Error, `the stream is reset, not answered: ${answer instanceof Error ? answer.message : answer.status}`);
  t.equal(await stored(cut), 404, 'nothing stored');

  // Declared over the limit and then cut: refused at once, and the reset that follows finds
  // the stream already answered (this once took the whole sidecar down).
  const huge = keyPath();
  const r0 = await meshRequest(session, 'PUT', huge, { ...sign(huge, half), 'content-length': String(1024 ** 3) }, half).catch((e: Error) => e);
  t.ok(r0 instanceof Error || r0.status === 413, `refused: ${r0 instanceof Error ? r0.message : r0.text}`);
  t.equal(await stored(huge), 404, 'nothing stored');

  const next = keyPath();
  const ok = blobOf(10);
  const r = await meshRequest(session, 'PUT', next, sign(next, ok), ok);
  t.equal(r.status, 201, `the next request is served: ${r.text}`);
  t.equal(await stored(next), 200);
});

t.test('requests the core path leaves to the compatibility layer: expectations are answered as Node would', async (t) => {
  const path = keyPath();
  const body = blobOf(10);
  const r = await meshRequest(session, 'PUT', path, { ...sign(path, body), expect: '100-continue' }, body);
  t.equal(r.status, 201, `100-continue: served after the interim answer: ${r.text}`);
  t.equal(await stored(path), 200);
  const other = keyPath();
  const refused = await meshRequest(session, 'PUT', other, { ...sign(other, body), expect: 'something-else' }, body);
  t.equal(refused.status, 417, 'an unknown expectation: 417');
  t.equal(await stored(other), 404, 'nothing stored');
});

t.test('CONNECT gets 405, as from Node\'s own compatibility layer, and the sidecar keeps serving', async (t) => {
  const status = await new Promise<number>((resolve, reject) => {
    const req = session.request({ ':method': 'CONNECT', ':authority': 'example.com:443' });
    req.on('response', (h) => {
      resolve(Number(h[':status']));
      req.close();
    });
    req.on('error', reject);
  });
  t.equal(status, 405);
  const path = keyPath();
  const body = blobOf(10);
  t.equal((await meshRequest(session, 'PUT', path, sign(path, body), body)).status, 201);
});
