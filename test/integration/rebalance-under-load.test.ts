// A range moves (auto cutover) while a steady write loop runs through every sidecar against keys
// in it and outside it — and at once moves back, while the first move's source is still due to
// clean up those tokens. Clients see a pause, never an error: no write fails, and afterwards
// every acknowledged write reads back through the mesh (none lost, reverted or invented). The
// longest write during the moves and the cutovers' holds are printed. RF 1, 3 shards.
import t from 'tap';
import { startMesh, type Mesh } from '../support/mesh.js';
import { moveUnderLoad } from '../support/move-under-load.js';

let mesh: Mesh;
t.before(async () => {
  mesh = await startMesh({ shards: 3, withEtcd: true, etcdTopology: true, certifiedReplicas: 1 });
});
t.teardown(() => mesh?.close());

t.test('a move under a write loop: no write fails, none is lost', async (t) => moveUnderLoad(t, mesh, { back: true }));
