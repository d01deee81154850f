// Automatic failover on real processes: 3 shards, every range on all three (RF 3, ack majority),
// etcd with 1 s failover leases. Under a steady write loop through the sidecars that survive,
// the acting primary of shard-001's range is made to fail three ways — kill -9 of its storage
// node, kill -9 of its sidecar, SIGSTOP of its sidecar past its lease — and each time a replica
// takes over; the old primary returns as a follower and stays one. After each fault every
// acknowledged write is read back from every copy with the history checker: none lost,
// reverted or invented. Failed writes fail with retryable codes, never by hanging.
import t from 'tap';
import { replicaGroups } from '../../src/topology/replica-groups.js';
import { FAILOVER_MESH } from '../support/mesh.js';
import { call } from '../support/storage-process.js';
import { failoverHarness } from '../support/failover-trial.js';

const h = failoverHarness(FAILOVER_MESH);
const { trial, sleep, ctl, until, keysOf, history, ids, checkCopies, CLIENT_TIMEOUT_MS } = h;

t.test('kill -9 of the primary\'s storage node', async (t) => {
  await trial(t, {
    name: 'kill -9 storage node',
    inject: async (v) => void (await h.mesh.nodes[v]!.storage.kill()),
    recover: (v) => h.mesh.nodes[v]!.storage.start(),
  });
});

t.test('kill -9 of the primary\'s sidecar', async (t) => {
  await trial(t, {
    name: 'kill -9 sidecar',
    inject: (v) => h.mesh.stopSidecar(v, 'SIGKILL'),
    recover: (v) => h.mesh.startSidecar(v),
  });
});

t.test('SIGSTOP of the primary\'s sidecar past its lease, then SIGCONT: it acknowledges nothing it lost, its clients are redirected', async (t) => {
  await trial(t, {
    name: 'SIGSTOP sidecar 2.5 s',
    viaVictim: true,
    inject: async (v) => {
      h.mesh.nodes[v]!.sidecar!.child.kill('SIGSTOP');
    },
    recover: async (v) => {
      await sleep(Math.max(0, 2500 - 700));
      h.mesh.nodes[v]!.sidecar!.child.kill('SIGCONT');
    },
  });
});

t.test('RF 2 (majority = both copies): the replica takes over and serves reads; writes wait for the old primary to rejoin', async (t) => {
  const { publishAsAdmin } = await import('../support/mesh.js');
  const { Topology } = await import('../../src/topology/topology.js');
  const s = ids();
  // A new epoch with RF 2: each range on its owner and the next shard. New groups: each owner takes its first term.
  const rf2 = new Topology({
    ...h.mesh.topology,
    epoch: h.mesh.topology.epoch + 1,
    shards: { ...h.mesh.topology.shards },
    ranges: h.mesh.topology.ranges.map((r) => ({ ...r, replicas: [s[(s.indexOf(r.owner) + 1) % s.length]!] })),
  });
  await publishAsAdmin(h.mesh.pki, h.mesh.etcd!, rf2);
  const g = replicaGroups(rf2).find((x) => x.owner === 'shard-001')!;
  const actingKey = `/themis/${h.mesh.pki.cluster}/failover/acting/${g.id}`;
  const holder = () => {
    const out = ctl(['get', actingKey, '--print-value-only']).trim();
    return out ? (JSON.parse(out) as { shard: string }).shard : undefined;
  };
  await until('shard-001 to take its new group\'s first term', () => (holder() === 'shard-001' ? true : undefined));
  const key = keysOf()[1]!;
  const via = h.mesh.nodes[2]!.appUrl; // shard-003 holds no copy of this range now
  const write = async () => {
    const { blob, n } = history.next(key);
    const r = await call(via, 'PUT', `/entities/${encodeURIComponent(key)}`, { blob }, CLIENT_TIMEOUT_MS);
    if (r.status === 201) history.ack(key, n);
    return r;
  };
  await until('a write to the RF 2 range', async () => ((await write()).status === 201 ? true : undefined));

  await h.mesh.nodes[0]!.storage.kill();
  await until('shard-002 to take over', () => (holder() === 'shard-002' ? true : undefined));
  const read = await until('a read served by the new primary', async () => {
    const r = await call(via, 'GET', `/entities/${encodeURIComponent(key)}`, undefined, CLIENT_TIMEOUT_MS);
    return r.status === 200 ? r : undefined;
  });
  t.equal(read.headers.get('x-themis-shard'), 'shard-002', 'reads go to the acting primary');
  const refused = await write();
  t.equal(refused.status, 503);
  t.equal(refused.body.code, 'REPLICATION_UNAVAILABLE', 'both copies are needed and one is down: refused, retryably');
  t.same(refused.body.missing_copies, ['shard-001']);

  await h.mesh.nodes[0]!.storage.start();
  const back = await until('writes to be acknowledged again once shard-001 rejoined', async () => {
    const r = await write();
    return r.status === 201 ? r : undefined;
  });
  t.equal(back.headers.get('x-themis-shard'), 'shard-002', 'the acting primary keeps the range');
  await checkCopies(t, 'RF 2', [0, 1]);
});
