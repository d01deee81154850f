import t from 'tap';
import { writeFileSync } from 'node:fs';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { call } from '../support/storage-process.js';
import { Topology } from '../../src/topology/topology.js';
import { serializeTopology } from '../../src/topology/document.js';

let mesh: Mesh;
t.before(async () => {
  // No polling: topology changes reach a sidecar only through SIGHUP or a peer's 421.
  mesh = await startMesh({ shards: 3, topologyPollMs: 3_600_000, sidecarConfig: { timeouts: { connectMs: 2000, requestMs: 1500 } } });
});
t.teardown(() => mesh?.close());

t.test('a sender with a stale topology gets 421, refreshes, and retries at the new owner', async (t) => {
  const [a, b, c] = mesh.nodes as [(typeof mesh.nodes)[0], (typeof mesh.nodes)[0], (typeof mesh.nodes)[0]];
  const uuid = uuidOwnedBy(b.shard.tokenRange);
  const key = `/entities/document.app.moved:${uuid}`;
  // Epoch 2: b's range now belongs to c. (Outside c's certified token range: checking a topology
  // against the certificates is the signed-topology work of the control-plane issue.)
  const t1 = mesh.topology;
  const t2 = new Topology({
    cluster: t1.cluster,
    epoch: 2,
    vnodes: 0,
    shards: t1.shards,
    ranges: t1.ranges.map((r) => (r.owner === b.shard.id ? { ...r, owner: c.shard.id } : r)),
  });
  writeFileSync(mesh.topologyFile, serializeTopology(t2));
  for (const node of [b, c]) node.sidecar!.child.kill('SIGHUP');
  // Wait until b answers with epoch 2 (SIGHUP re-reads the topology).
  for (let i = 0; i < 50; i++) {
    const h = await call(b.appUrl, 'GET', '/health');
    if (h.body.topology_epoch === 2) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const before = await call(a.appUrl, 'GET', '/health');
  t.equal(before.body.topology_epoch, 1, 'a still routes by epoch 1');
  const put = await call(a.appUrl, 'PUT', key, { blob: '{"moved":true}' });
  t.equal(put.status, 201, put.text);
  t.equal(put.headers.get('x-themis-shard'), c.shard.id, 'served by the new owner');
  t.equal(put.headers.get('x-themis-topology-epoch'), '2');
  t.equal((await call(a.appUrl, 'GET', '/health')).body.topology_epoch, 2, 'a applied epoch 2 after the 421');
  t.equal((await call(c.storage.url, 'GET', `/entities/document.app.moved:${uuid}`)).status, 200, 'on c');
  t.equal((await call(b.storage.url, 'GET', `/entities/document.app.moved:${uuid}`)).status, 404, 'not on b');
});

t.test('an upstream that hangs gives 504 after the request timeout, and the sidecar recovers', async (t) => {
  const [a, b] = mesh.nodes;
  const key = `/entities/document.app.slow:${uuidOwnedBy(a!.shard.tokenRange)}`;
  a!.storage.child.kill('SIGSTOP');
  try {
    const started = Date.now();
    const r = await call(a!.appUrl, 'GET', key);
    t.equal(r.status, 504, r.text);
    t.equal(r.body.code, 'UPSTREAM_TIMEOUT');
    t.ok(Date.now() - started >= 1400, 'waited for timeouts.requestMs');
    t.equal((await call(b!.appUrl, 'GET', '/health')).status, 200, 'other sidecars unaffected');
  } finally {
    a!.storage.child.kill('SIGCONT');
  }
  t.equal((await call(a!.appUrl, 'GET', key)).status, 404, 'answers again once the storage node resumes');
});

t.test('applied and refused topologies are audited; a refused one changes nothing', async (t) => {
  const { readFileSync } = await import('node:fs');
  const b = mesh.nodes[1]!;
  const auditOf = () => readFileSync(b.auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  t.ok(auditOf().some((e) => e.event === 'TOPOLOGY_APPLIED' && e.epoch === 2), 'epoch 2 was applied and audited');
  const waitFor = async (pred: (e: { event: string; reason?: string }) => boolean) => {
    for (let i = 0; i < 50; i++) {
      if (auditOf().some(pred)) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return false;
  };
  writeFileSync(mesh.topologyFile, '{"cluster": "x", "epoch": 9');
  b.sidecar!.child.kill('SIGHUP');
  t.ok(await waitFor((e) => e.event === 'TOPOLOGY_REJECTED' && /not valid JSON/.test(e.reason ?? '')), 'a broken file is refused and audited');
  writeFileSync(mesh.topologyFile, serializeTopology(mesh.topology)); // epoch 1: older than 2
  b.sidecar!.child.kill('SIGHUP');
  t.ok(await waitFor((e) => e.event === 'TOPOLOGY_REJECTED' && /older/.test(e.reason ?? '')), 'an older epoch is refused and audited');
  t.equal((await call(b.appUrl, 'GET', '/health')).body.topology_epoch, 2, 'still routing by epoch 2');
});
