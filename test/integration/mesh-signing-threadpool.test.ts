// `signing.threadpool` (docs/sidecar.md "Signatures on the thread pool"): the sidecars sign and
// verify on libuv's thread pool, with workers whose pools `signing.threads` sizes. Every check of
// a signed request must answer exactly as on the event loop, in the same order, and a request
// through the app port (signed on A's pool, verified on B's) must be served.
import t from 'tap';
import type { ClientHttp2Session } from 'node:http2';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { meshConnect } from '../support/mesh-client.js';
import { everyCheckInOrder } from '../support/signed-checks.js';
import { call } from '../support/storage-process.js';

let mesh: Mesh;
let session: ClientHttp2Session;
t.before(async () => {
  mesh = await startMesh({ shards: 2, sidecarConfig: { workers: 2, signing: { threadpool: true, threads: 3 } } });
  const sender = mesh.pki.shards[0]!;
  session = meshConnect(`${mesh.nodes[1]!.shard.ip}:${mesh.nodes[1]!.meshPort}`, { cert: sender.chain, key: sender.key, ca: mesh.pki.root.cert });
});
t.teardown(async () => {
  session?.close();
  await mesh?.close();
});

t.test('every check of a signed request, in order, verified on the thread pool', (t) => everyCheckInOrder(t, mesh, session));

t.test('through the app port: signed on A\'s thread pool, verified on B\'s, stored on B', async (t) => {
  const [a, b] = mesh.nodes as [Mesh['nodes'][0], Mesh['nodes'][0]];
  const path = `/entities/${encodeURIComponent(`document.app.pooled:${uuidOwnedBy(b.shard.tokenRange)}`)}`;
  for (let i = 0; i < 20; i++) {
    const put = await call(a.appUrl, 'PUT', path, { blob: JSON.stringify({ i }) });
    t.equal(put.status, 201, `PUT ${i}: ${put.text}`);
  }
  const got = await call(a.appUrl, 'GET', path);
  t.equal(got.status, 200, got.text);
  t.equal(got.headers.get('x-themis-shard'), b.shard.id, 'served by the owner');
  const stored = (await fetch(`${b.storage.url}${path}`).then((r) => r.json())) as { blob: string };
  t.same(JSON.parse(stored.blob), { i: 19 }, 'the last write is on B\'s storage node');
});

t.test('each worker is started with the configured pool size and drain time (the harness\'s --drain-ms 2000)', async (t) => {
  for (const node of mesh.nodes) {
    const control = node.sidecar!.child.pid!;
    const pids = execFileSync('pgrep', ['-P', String(control)], { encoding: 'utf8' }).split('\n').filter(Boolean);
    const envs = pids.map((p) => readFileSync(`/proc/${p}/environ`, 'utf8').split('\0')).filter((e) => e.some((v) => v.startsWith('THEMIS_WORKER_SLOT=')));
    t.equal(envs.length, 2, `${node.shard.id}: two workers`);
    for (const env of envs) {
      t.ok(env.includes('UV_THREADPOOL_SIZE=3'), `${node.shard.id}: UV_THREADPOOL_SIZE=3`);
      t.ok(env.includes('THEMIS_DRAIN_MS=2000'), `${node.shard.id}: the worker drains for --drain-ms`);
    }
    t.not(readFileSync(`/proc/${control}/environ`, 'utf8').split('\0').find((v) => v.startsWith('UV_THREADPOOL_SIZE=')), 'UV_THREADPOOL_SIZE=3', 'the control process is not resized (it signs no requests)');
  }
});
