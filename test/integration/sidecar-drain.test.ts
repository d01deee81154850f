import t from 'tap';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { call } from '../support/storage-process.js';

let mesh: Mesh;
t.before(async () => {
  mesh = await startMesh({ shards: 2 });
});
t.teardown(() => mesh?.close());

t.test('SIGTERM drains: every in-flight request completes, the sidecar exits 0, and every acknowledged write is stored', async (t) => {
  const [a, b] = mesh.nodes as [(typeof mesh.nodes)[0], (typeof mesh.nodes)[0]];
  // Hold the storage nodes so that the requests are truly in flight when SIGTERM arrives:
  // some wait on a's own storage node, some on b's behind the mesh.
  a.storage.child.kill('SIGSTOP');
  b.storage.child.kill('SIGSTOP');
  const keys = Array.from({ length: 20 }, (_, i) => `/entities/document.app.drain:${uuidOwnedBy((i % 2 ? b : a).shard.tokenRange)}`);
  const inFlight = keys.map((k, i) => call(a.appUrl, 'PUT', k, { blob: JSON.stringify({ i }) }));
  await new Promise((r) => setTimeout(r, 300));
  const exited = a.sidecar!.exited;
  a.sidecar!.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  await t.rejects(fetch(`${a.appUrl}/health`), 'no new connections once draining');
  a.storage.child.kill('SIGCONT');
  b.storage.child.kill('SIGCONT');
  const answers = await Promise.all(inFlight);
  t.same(answers.map((r) => r.status), keys.map(() => 201), 'every in-flight request succeeded');
  t.same(await exited, { code: 0, signal: null }, 'exit 0 after the drain');
  for (const [i, k] of keys.entries()) {
    const owner = i % 2 ? b : a;
    const stored = await call(owner.storage.url, 'GET', k);
    t.equal(stored.body?.blob, JSON.stringify({ i }), `acknowledged write ${i} is on ${owner.shard.id}`);
  }
  // And a restarted sidecar serves them.
  await mesh.startSidecar(0);
  t.equal((await call(mesh.nodes[0]!.appUrl, 'GET', keys[1]!)).status, 200);
});
