// The cutover barrier of an operation with several sources, against a real etcd: the next
// topology is published only while every source says `held`, the topology is unchanged and no
// abort is there; a source that takes its `held` back after the publish learns that it must
// route by the new topology; a source that dies stops counting (its lease); a restarted one
// clears what its earlier run said.
import t from 'tap';
import { createPkiFixture, type PkiFixture } from '../support/pki-fixture.js';
import { startEtcd, type EtcdProcess } from '../../scripts/etcd-process.js';
import { connectEtcd, etcdKeys } from '../../src/control/etcd.js';
import { CutoverBarrier } from '../../proxy/rebalance/cutover-barrier.js';
import { silentLogger } from '../../src/log.js';
import type { Etcd3 } from 'etcd3';

let pki: PkiFixture;
let etcd: EtcdProcess;
const clients: Etcd3[] = [];
t.before(async () => {
  pki = await createPkiFixture({ shards: 3 });
  etcd = await startEtcd({ cert: pki.etcd.chainPath, key: pki.etcd.keyPath, ca: pki.root.certPath });
});
t.teardown(async () => {
  for (const c of clients) c.close();
  await etcd?.stop();
  await pki?.cleanup();
});

const cluster = 'cluster-test';
const keys = etcdKeys(cluster);
function client(): Etcd3 {
  const s = pki.shards[0]!;
  const c = connectEtcd({ endpoints: [etcd.endpoint], certPem: s.chain, keyPem: s.key, caPem: pki.root.cert });
  clients.push(c);
  return c;
}
const rev = async (c: Etcd3) => String((await c.get(keys.topology).exec()).kvs[0]!.mod_revision);

t.test('published only when every source holds, the topology is unchanged and no abort is there', async (t) => {
  const c = client();
  await c.put(keys.topology).value('epoch 1');
  const [a, b] = [new CutoverBarrier(c, cluster, 'shard-001', silentLogger), new CutoverBarrier(client(), cluster, 'shard-002', silentLogger)];
  const sources = ['shard-001', 'shard-002'];
  const op = 'op-1';
  await a.say(op, 'caught-up');
  t.same(await a.notCaughtUp(op, sources), ['shard-002'], 'one source caught up is not all of them');
  await b.say(op, 'caught-up');
  t.same(await a.notCaughtUp(op, sources), [], 'both are');
  const r = await rev(c);
  await a.say(op, 'held');
  t.notOk(await a.publish(op, sources, r, 'epoch 2'), 'not while the other source only caught up');
  t.equal(await c.get(keys.topology).string(), 'epoch 1');
  await b.say(op, 'held');
  t.notOk(await b.publish(op, sources, String(Number(r) - 1), 'epoch 2'), 'not over a topology that changed since it was read');
  await c.put(keys.rebalanceAbort(op)).value('{}');
  t.notOk(await b.publish(op, sources, r, 'epoch 2'), 'not while an abort is there (signed or not)');
  t.ok(await a.aborted(op), 'the abort is seen');
  await c.delete().key(keys.rebalanceAbort(op));
  t.ok(await b.publish(op, sources, r, 'epoch 2'), 'published once both hold');
  t.equal(await c.get(keys.topology).string(), 'epoch 2');
  t.notOk(await a.unhold(op, r), 'taking `held` back after the publish fails: that source must route by the new topology');
  t.equal(await c.get(keys.rebalanceCutover(op, 'shard-001')).string(), 'held', 'and its key stays as it was');
  await a.leave(op);
  await b.leave(op);
  t.same(await c.getAll().prefix(`${keys.rebalanceCutoverPrefix}${op}/`).keys(), [], 'leaving removes the keys');
  a.close();
  b.close();
});

t.test('a source that dies stops counting; a restarted one clears what it said before', async (t) => {
  const c = client();
  await c.put(keys.topology).value('epoch 5');
  const sources = ['shard-001', 'shard-002'];
  const op = 'op-2';
  const dying = new CutoverBarrier(client(), cluster, 'shard-001', silentLogger);
  const other = new CutoverBarrier(client(), cluster, 'shard-002', silentLogger);
  await dying.say(op, 'held');
  await other.say(op, 'held');
  dying.close(); // its lease is revoked, as etcd would expire it
  for (let i = 0; i < 50 && (await c.get(keys.rebalanceCutover(op, 'shard-001')).string()) !== null; i++) await new Promise((r) => setTimeout(r, 100));
  t.notOk(await other.publish(op, sources, await rev(c), 'epoch 6'), 'without the dead source\'s `held`, nothing is published');
  // A restart within the lease: the key is still there until the new run clears it.
  const stale = new CutoverBarrier(client(), cluster, 'shard-001', silentLogger);
  await stale.say(op, 'held');
  const restarted = new CutoverBarrier(client(), cluster, 'shard-001', silentLogger);
  await restarted.forgetOwn();
  t.equal(await c.get(keys.rebalanceCutover(op, 'shard-001')).string(), null, 'the restarted sidecar removed its earlier `held`');
  t.equal(await c.get(keys.rebalanceCutover(op, 'shard-002')).string(), 'held', 'and nobody else\'s');
  t.notOk(await other.publish(op, sources, await rev(c), 'epoch 6'), 'so nothing is published');
  stale.close();
  restarted.close();
  other.close();
});
