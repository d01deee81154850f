// Scaling out and in with replication (RF 2, failover on): a 3-shard cluster gains a 4th shard
// with `themis-admin shard add` and loses it with `shard remove`, under a write loop through
// every original sidecar. The planner keeps two copies of every token; a copy the next topology
// adds (shard-004 as a replica, then shard-004's replicas handed to the others) is brought by a
// replica move before the cutover. Throughout, no write fails; afterwards every acknowledged write
// reads back, and every token's owner *and* replica node hold every key with its latest value.
import t, { type Test } from 'tap';
import { randomUUID } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { etcdClient, operatorArgs, startMesh, type Mesh, HUNG_REQUEST } from '../support/mesh.js';
import { History, writeLoop } from '../support/history.js';
import { call } from '../support/storage-process.js';
import { runProgramAsync } from '../support/cli.js';
import { parseKey, tokenOf } from '../../src/urn/urn.js';
import { parseTopology } from '../../src/topology/document.js';
import type { Topology } from '../../src/topology/topology.js';

let mesh: Mesh;
let etcd: Etcd3;
t.before(async () => {
  // After each cutover, replicas whose ranges changed start new followers, whose first
  // confirmation a write waits for (RF 2, majority): ack timeout and request timeouts as in
  // rebalance-replicated (see there).
  mesh = await startMesh({
    shards: 3, withEtcd: true, etcdTopology: true, replicas: 1, spares: 1,
    sidecarConfig: { replication: { ackTimeoutMs: 10_000 }, timeouts: { connectMs: 2000, requestMs: 15_000 } },
  });
  etcd = etcdClient(mesh);
});
t.teardown(async () => {
  etcd?.close();
  await mesh?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const T = 'document.shop.scalerf';

async function get(key: string): Promise<string> {
  return (await etcd.get(`/themis/${mesh.pki.cluster}/${key}`).string()) ?? '';
}

async function topologyNow(): Promise<Topology> {
  return parseTopology((JSON.parse(await get('topology')) as { document: string }).document);
}

const nodeOf = (id: string) => [...mesh.nodes, ...mesh.spares].find((n) => n.shard.id === id)!;

async function keysOn(url: string): Promise<Set<string>> {
  const out = new Set<string>();
  let after = '';
  for (;;) {
    const r = await call(url, 'GET', `/entities?limit=1000${after ? `&after=${encodeURIComponent(after)}` : ''}`);
    for (const e of r.body.entities as { key: string }[]) if (e.key.startsWith(`${T}:`)) out.add(e.key);
    if (!r.body.next) return out;
    after = r.body.next as string;
  }
}

/**
 * Each node holds exactly the keys whose tokens it holds a copy of in `topo` (owned or
 * replicated), each with its latest acknowledged value: nothing missing, nothing left behind.
 */
async function copiesHold(t: Test, topo: Topology, history: History, keys: readonly string[], what: string, settled: (key: string) => boolean = () => true): Promise<void> {
  const byShard = new Map<string, string[]>([...mesh.nodes, ...mesh.spares].map((n) => [n.shard.id, []]));
  for (const key of keys) {
    const r = topo.rangeOf(tokenOf(parseKey(key)));
    for (const s of [r.owner, ...r.replicas]) byShard.get(s)!.push(key);
  }
  for (const [shard, list] of [...byShard].sort(([a], [b]) => a.localeCompare(b))) {
    const held = await keysOn(nodeOf(shard).storage.url);
    const extra = [...held].filter((k) => !list.includes(k));
    t.same(extra.length, 0, `${what}: ${shard}'s node holds no key it has no copy of (${held.size} held, ${list.length} expected)`);
    const c = await history.check(async (key) => {
      const r = await call(nodeOf(shard).storage.url, 'GET', `/entities/${encodeURIComponent(key)}`);
      return r.status === 200 ? (r.body.blob as string) : undefined;
    }, list.filter(settled));
    t.same({ lost: c.lost, reverted: c.reverted }, { lost: [], reverted: [] }, `${what}: ${shard}'s node holds its keys (owned or replicated) with their latest values (${c.checked} checked)`);
  }
}

t.test('shard add, then shard remove, with RF 2 under a write loop: no failure, every copy complete', async (t) => {
  const keys = Array.from({ length: 300 }, () => `${T}:${randomUUID()}`);
  const history = new History();
  for (const [i, key] of keys.entries()) {
    const { blob, n } = history.next(key);
    const r = await call(mesh.nodes[i % 3]!.appUrl, 'PUT', `/entities/${encodeURIComponent(key)}`, { blob }, 30_000);
    if (r.status === 201) history.ack(key, n);
  }
  for (let i = 0; i < 100 && !(await get('shards/shard-004/certificate')); i++) await sleep(100);

  let lane = 0;
  let stop!: () => void;
  const until = new Promise<void>((r) => (stop = r));
  const loop = writeLoop(history, keys.slice(0, 90), async (key, blob) => {
    const r = await call(mesh.nodes[lane++ % 3]!.appUrl, 'PUT', `/entities/${encodeURIComponent(key)}`, { blob }, 60_000);
    return { status: r.status, code: r.body?.code };
  }, { until, concurrency: 4, paceMs: 10 }); // traffic through the move, not throughput (the suite is CPU-bound)

  const add = await runProgramAsync('themis-admin', ['shard', 'add', '--id', 'shard-004', '--yes', '--wait', ...operatorArgs(mesh)]);
  t.equal(add.status, 0, add.status === 0 ? 'shard add --yes --wait ends once the operation cut over' : `${add.stdout}\n${add.stderr}`);
  t.match(add.stdout, /cut over: epoch \d+ is in force/);
  const afterAdd = await topologyNow();
  t.ok(afterAdd.ranges.every((r) => r.replicas.length === 1), 'after the add every range still has one replica');
  t.ok(afterAdd.ranges.some((r) => r.owner === 'shard-004'), 'shard-004 owns tokens');
  // The sources' cleanup and the dropped replicas' sweep run 5 s after the cutover.
  await sleep(7000);
  t.ok(afterAdd.ranges.some((r) => r.replicas.includes('shard-004')), 'and replicates others\' tokens: it took its part of the replicas');
  // Its replica followers start from the position of the copies the replica moves made, instead
  // of copying those tokens again after the cutover (when writes there wait for them).
  const handed = mesh.sidecarLogLines(/hand their position over/).map((l) => JSON.parse(l) as { shard: string; follower: string; repair: number });
  const mine = handed.filter((h) => h.shard === 'shard-004');
  t.ok(mine.length > 0 && mine.every((h) => h.repair === 0), `shard-004's replica followers took the moves' positions over, nothing left to copy (${mine.length} followers)`);
  t.same(mesh.sidecarLogLines(/full copy of the ranges/).filter((l) => mine.some((h) => l.includes(`"follower":"${h.follower}"`))), [], 'and made no full copy');
  const quiet = new Set(keys.slice(90));
  await copiesHold(t, afterAdd, history, keys, 'after shard add', (k) => quiet.has(k)); // values only of keys the loop does not write

  const remove = await runProgramAsync('themis-admin', ['shard', 'remove', '--id', 'shard-004', '--yes', '--wait', ...operatorArgs(mesh)]);
  t.equal(remove.status, 0, remove.status === 0 ? 'shard remove --yes --wait ends once the operation cut over' : `${remove.stdout}\n${remove.stderr}`);
  const copies = remove.stdout.split('\n').filter((l) => /^shard-00[1-3] +shard-00[1-3] \(replica\) /.test(l));
  t.ok(copies.length > 0, `the plan brings new replica copies before the cutover (${copies.length} replica moves)`);
  const afterRemove = await topologyNow();
  t.ok(afterRemove.ranges.every((r) => r.replicas.length === 1 && r.owner !== 'shard-004' && !r.replicas.includes('shard-004')), 'shard-004 holds nothing; every range has one replica');
  await sleep(1500);
  stop();
  const stats = await loop;
  if (stats.failed) for (const line of mesh.sidecarLogLines(new RegExp(`${HUNG_REQUEST.source}|full copy|acting`))) t.comment(`sidecar: ${line}`);
  t.equal(stats.failed, 0, `no write failed (${stats.acknowledged} acknowledged; ${JSON.stringify(stats.failures)})`);
  for (const n of mesh.nodes) {
    const v = await history.check(async (key) => {
      const r = await call(n.appUrl, 'GET', `/entities/${encodeURIComponent(key)}`);
      return r.status === 200 ? (r.body.blob as string) : undefined;
    });
    t.same({ lost: v.lost, reverted: v.reverted, invented: v.invented }, { lost: [], reverted: [], invented: [] }, `through ${n.shard.id}: every acknowledged write reads back (${v.checked} keys)`);
  }
  // The sources' cleanup and the dropped replicas' sweep run 5 s after the cutover.
  await sleep(7000);
  await copiesHold(t, afterRemove, history, keys, 'after shard remove');
});
