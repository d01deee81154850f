// The local-mesh launcher as a test uses it: N shards with replicas, and storage nodes and
// sidecars stopped and started again one at a time (the example in docs/development.md).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { call } from '../support/storage-process.js';

let mesh: Mesh;
t.before(async () => {
  mesh = await startMesh({ shards: 4, replicas: 2 });
});
t.teardown(() => mesh?.close());

t.test('every range has its owner and the next two shards as replicas', async (t) => {
  const [a, , c] = mesh.nodes;
  t.same(mesh.topology.rangeOf(c!.shard.tokenRange.start).replicas, ['shard-004', 'shard-001']);
  t.same(JSON.parse(readFileSync(mesh.topologyFile, 'utf8')).ranges.map((r: { replicas: string[] }) => r.replicas.length), [2, 2, 2, 2]);
  const key = `/entities/document.app.orders:${uuidOwnedBy(c!.shard.tokenRange)}`;
  t.equal((await call(a!.appUrl, 'PUT', key, { blob: '{"n":1}' })).status, 201);
  await c!.storage.stop(); // the owner's storage node goes away …
  t.equal((await call(a!.appUrl, 'GET', key)).status >= 500, true, 'the owner is unreachable');
  await c!.storage.start(); // … and comes back on the same port with its data
  const got = await call(a!.appUrl, 'GET', key);
  t.equal(got.status, 200);
  t.equal(got.body.blob, '{"n":1}');
});

t.test('a sidecar stopped and started again serves on the same ports', async (t) => {
  const b = mesh.nodes[1]!;
  await mesh.stopSidecar(1);
  t.equal(b.sidecar, undefined);
  await t.rejects(fetch(`${b.appUrl}/health`));
  await mesh.startSidecar(1);
  t.equal((await call(b.appUrl, 'GET', '/health')).status, 200);
  const key = `/entities/document.app.orders:${uuidOwnedBy(b.shard.tokenRange)}`;
  t.equal((await call(mesh.nodes[0]!.appUrl, 'PUT', key, { blob: '{}' })).status, 201, 'peers reach it again');
});
