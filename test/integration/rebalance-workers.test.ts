// A range move under a write loop through sidecars with two workers each (docs/sidecar.md
// "Workers"): the cutover's hold must be on in every worker of the source and drained in all of
// them before the source reads its head, or a write served by the other worker during the
// cutover would be acknowledged at the source after the copy ended (lost). RF 1, 3 shards.
import t from 'tap';
import { startMesh, type Mesh } from '../support/mesh.js';
import { moveUnderLoad } from '../support/move-under-load.js';

let mesh: Mesh;
t.before(async () => {
  mesh = await startMesh({ shards: 3, withEtcd: true, etcdTopology: true, certifiedReplicas: 1, sidecarConfig: { workers: 2, replication: { failover: false } } });
});
t.teardown(() => mesh?.close());

t.test('a move under a write loop through two workers per sidecar: no write fails, none is lost', async (t) => moveUnderLoad(t, mesh, { back: false }));
