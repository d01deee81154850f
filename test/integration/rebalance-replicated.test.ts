// A range move in a replicated cluster (RF 2, failover on): shard-001 hands half of its range to
// shard-002, which replicated it; the two trade places (shard-001 keeps a copy as the replica),
// so the replication factor stays 2. Under a write loop through every sidecar: no write fails,
// every acknowledged write reads back, and afterwards both the new owner and the new replica
// hold every key of the moved tokens with its latest value; the replica whose ranges shrank keeps
// following from where it was.
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { buildOperation, signOperation } from '../../src/rebalance/operation.js';
import { loadPrivateKey } from '../../src/pki/keys.js';
import { parsePem } from '../../src/pki/pem.js';
import { etcdClient, startMesh, uuidOwnedBy, type Mesh, HUNG_REQUEST } from '../support/mesh.js';
import { History, writeLoop } from '../support/history.js';
import { call } from '../support/storage-process.js';

let mesh: Mesh;
t.before(async () => {
  // After the cutover the old source follows the new owner with a new follower, whose first
  // confirmation a write waits for (RF 2, majority). Its full copy and first page took over the
  // default 2 s on this 2-core machine while CI ran another mesh beside it, and 5 s once: 10 s here, and a
  // request timeout between sidecars above a write's worst wait at its owner (hold 1 s, the
  // group's first term 2 s, confirmations 10 s). The client waits for the sidecars' worst case
  // (connect and request, twice after a 421, plus those waits) and more: 60 s.
  mesh = await startMesh({
    shards: 3, withEtcd: true, etcdTopology: true, replicas: 1,
    sidecarConfig: { replication: { ackTimeoutMs: 10_000 }, timeouts: { connectMs: 2000, requestMs: 15_000 } },
  });
});
t.teardown(() => mesh?.close());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a move to the range\'s replica keeps RF 2: nothing fails, nothing is lost, both copies complete', async (t) => {
  const r1 = mesh.topology.ranges.find((r) => r.owner === 'shard-001')!;
  t.same(r1.replicas, ['shard-002'], 'shard-002 replicates shard-001\'s range');
  const part = { start: r1.start, end: r1.start + (r1.end - r1.start) / 2n };
  const inside = Array.from({ length: 40 }, () => `document.shop.rf2:${uuidOwnedBy(part)}`);
  const outside = Array.from({ length: 20 }, () => `document.shop.rf2:${randomUUID()}`);
  const history = new History();
  let lane = 0;
  let stop!: () => void;
  const until = new Promise<void>((r) => (stop = r));
  const loop = writeLoop(history, [...inside, ...outside], async (key, blob) => {
    const r = await call(mesh.nodes[lane++ % 3]!.appUrl, 'PUT', `/entities/${encodeURIComponent(key)}`, { blob }, 60_000);
    return { status: r.status, code: r.body?.code };
  }, { until, concurrency: 4 });
  await sleep(1000);

  const admin = mesh.pki.operators.admin;
  const op = buildOperation(mesh.topology, [{ from: 'shard-001', to: 'shard-002', ...part }]);
  t.same(op.next.rangeOf(part.start).replicas, ['shard-001'], 'in the next topology shard-001 is the replica of the moved tokens');
  const signed = await signOperation(op, parsePem(admin.chain, 'admin').map((b) => new Uint8Array(b.der)), (await loadPrivateKey(admin.key, undefined, 'admin')).privateKey);
  // An async etcd client: etcdctl (spawnSync) would block this process's write loop meanwhile.
  const etcd = etcdClient(mesh);
  t.teardown(() => etcd.close());
  await etcd.put(`/themis/${mesh.pki.cluster}/rebalance/${op.id}`).value(JSON.stringify(signed));
  let status: Record<string, unknown> = {};
  for (let i = 0; i < 300 && status.phase !== 'cleaned'; i++) {
    await sleep(100);
    const out = await etcd.get(`/themis/${mesh.pki.cluster}/rebalance-status/${op.id}/shard-001`).string();
    status = out ? (JSON.parse(out) as Record<string, unknown>) : {};
  }
  t.match(status, { phase: 'cleaned', epoch: op.next.epoch, keys_deleted: 0 }, 'cut over; the source deletes nothing, it stays a replica');
  await sleep(1500);
  stop();
  const stats = await loop;
  if (stats.failed) for (const line of mesh.sidecarLogLines(new RegExp(`${HUNG_REQUEST.source}|follower|full copy|acting`))) t.comment(`sidecar: ${line}`);
  t.equal(stats.failed, 0, `no write failed (${stats.acknowledged} acknowledged; ${JSON.stringify(stats.failures)})`);
  const v = await history.check(async (key) => {
    const r = await call(mesh.nodes[2]!.appUrl, 'GET', `/entities/${encodeURIComponent(key)}`);
    return r.status === 200 ? (r.body.blob as string) : undefined;
  });
  t.same({ lost: v.lost, reverted: v.reverted, invented: v.invented }, { lost: [], reverted: [], invented: [] }, `every acknowledged write reads back (${v.checked} keys)`);
  // shard-002 now replicates only the half shard-001 kept: its new follower of shard-001 goes on
  // from its predecessor's position, with nothing to copy (no full repair copy, during which
  // writes to shard-001's half would wait for its confirmation).
  const carried = mesh.sidecarLogLines(/carries its predecessor's position over/).map((l) => JSON.parse(l) as { shard: string; primary: string; to: string; gained: number });
  const successor = carried.find((c) => c.shard === 'shard-002' && c.primary === 'shard-001');
  t.match(successor, { gained: 0 }, 'shard-002\'s follower of shard-001 carried its position over, with no span to copy');
  t.same(mesh.sidecarLogLines(/full copy of the ranges/).filter((l) => successor && l.includes(`"follower":"${successor.to}"`)), [], 'and made no full copy');
  const served = await call(mesh.nodes[2]!.appUrl, 'GET', `/entities/${encodeURIComponent(inside[0]!)}`);
  t.equal(served.headers.get('x-themis-shard'), 'shard-002', 'shard-002 serves the moved keys');
  // Both copies: the new owner's node and the new replica's, each with the latest acknowledged value.
  await sleep(1000);
  for (const [i, role] of [[1, 'owner'], [0, 'replica']] as const) {
    const c = await history.check(async (key) => {
      const r = await call(mesh.nodes[i]!.storage.url, 'GET', `/entities/${encodeURIComponent(key)}`);
      return r.status === 200 ? (r.body.blob as string) : undefined;
    }, inside);
    t.same({ lost: c.lost, reverted: c.reverted }, { lost: [], reverted: [] }, `the new ${role} (${mesh.nodes[i]!.shard.id}) holds every moved key with its latest value`);
  }
});
