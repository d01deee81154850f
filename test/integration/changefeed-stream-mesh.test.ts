// GET /changefeed/stream through the sidecar: on the app port and, for a shard peer with the
// `replicate` capability, on the mesh port — events arrive as they are written (nothing buffers
// them), and an idle stream outlives timeouts.requestMs (its heartbeat keeps it open).
import t from 'tap';
import { randomUUID } from 'node:crypto';
import type { ClientHttp2Session } from 'node:http2';
import { startMesh, type Mesh } from '../support/mesh.js';
import { meshConnect, signHeaders } from '../support/mesh-client.js';
import { openSse, type SseEvent } from '../support/sse.js';
import { call } from '../support/storage-process.js';

const REQUEST_MS = 1000;
let mesh: Mesh;
let session: ClientHttp2Session;
t.before(async () => {
  mesh = await startMesh({ shards: 2, sidecarConfig: { timeouts: { connectMs: 2000, requestMs: REQUEST_MS } } });
  const sender = mesh.pki.shards[0]!;
  session = meshConnect(`${mesh.nodes[1]!.shard.ip}:${mesh.nodes[1]!.meshPort}`, { cert: sender.chain, key: sender.key, ca: mesh.pki.root.cert });
});
t.teardown(async () => {
  session?.close();
  await mesh?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ids = (events: SseEvent[]) => events.filter((e) => e.id !== undefined).map((e) => Number(e.id));
async function writeToNode1(): Promise<number> {
  const r = await call(mesh.nodes[1]!.storage.url, 'PUT', `/entities/document.sse.mesh:${randomUUID()}`, { blob: '{}' });
  if (r.status !== 201) throw new Error(`write failed: ${r.status} ${r.text}`);
  return (await call(mesh.nodes[1]!.storage.url, 'GET', '/health')).body.last_seq;
}

t.test('app port: events as they are written, heartbeats through an idle longer than requestMs', async (t) => {
  const first = await writeToNode1();
  const s = await openSse(`${mesh.nodes[1]!.appUrl}/changefeed/stream?from_seq=0&heartbeat_ms=${REQUEST_MS * 2}`);
  t.equal(s.status, 200);
  t.match(s.headers.get('content-type'), /^text\/event-stream/);
  t.same(ids(await s.read((ev) => ids(ev).includes(first))), [first]);
  const started = Date.now();
  const next = await writeToNode1();
  await s.read((ev) => ids(ev).includes(next), 3000);
  t.ok(Date.now() - started < 1000, `a new write arrived ${Date.now() - started} ms later: not buffered`);
  const events = await s.read((ev) => ev.some((e) => e.comment === 'heartbeat'), REQUEST_MS * 4);
  t.ok(events.some((e) => e.comment === 'heartbeat'), `still open after ${Date.now() - started} ms idle (requestMs ${REQUEST_MS}), heartbeat received`);
  const last = await writeToNode1();
  t.ok(ids(await s.read((ev) => ids(ev).includes(last))).includes(last), 'and still delivering');
  s.close();
});

t.test('mesh port: a shard peer (replicate) streams the node’s feed; events arrive as written', async (t) => {
  const sender = mesh.pki.shards[0]!;
  const path = '/changefeed/stream?from_seq=0&heartbeat_ms=500';
  const req = session.request({ ':method': 'GET', ':path': path, ...signHeaders({ shardId: sender.id, serial: sender.serial, key: sender.key, method: 'GET', path }) });
  let status = 0;
  let text = '';
  req.on('response', (h) => (status = Number(h[':status'])));
  req.setEncoding('utf8');
  req.on('data', (d: string) => (text += d));
  const until = async (pred: () => boolean, ms = 5000) => {
    for (const end = Date.now() + ms; !pred() && Date.now() < end; ) await sleep(20);
  };
  await until(() => text.includes(': heartbeat'));
  t.equal(status, 200, text.slice(0, 200));
  const seq = await writeToNode1();
  const started = Date.now();
  await until(() => text.includes(`id: ${seq}\n`));
  t.ok(text.includes(`id: ${seq}\n`), `event ${seq} arrived after ${Date.now() - started} ms`);
  req.close();
});
