// Replication on real processes: 3 shards, each range on its owner and replicas (RF 2, then
// RF 3), writes through every app port under a write loop. Checked with the history checker
// on the replicas' own storage nodes: nothing acknowledged is lost, reverted or invented. A
// replica's storage node killed: with RF 2 (ack majority = both copies) writes to its ranges
// fail with 503 REPLICATION_UNAVAILABLE naming it, others go on; with RF 3 writes go on; and
// after it returns it catches up on everything it missed.
import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { serializeTopology } from '../../src/topology/document.js';
import { Topology } from '../../src/topology/topology.js';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { History, writeLoop } from '../support/history.js';
import { call } from '../support/storage-process.js';

// 10,000 writes with a replica down and its catch-up: more than tap's default 120 s on a busy machine.
t.setTimeout(400_000);

let mesh: Mesh;
t.before(async () => {
  mesh = await startMesh({ shards: 3, topologyPollMs: 100, sidecarConfig: { replication: { ackTimeoutMs: 1500, longPollMs: 300 } } });
});
t.teardown(() => mesh?.close());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ids = () => mesh.nodes.map((n) => n.shard.id);

/** Every range on its owner plus the next `rf - 1` shards. */
async function publish(epoch: number, rf: number): Promise<Topology> {
  const s = ids();
  const t0 = mesh.topology;
  const topo = new Topology({
    cluster: t0.cluster,
    epoch,
    vnodes: 0,
    shards: t0.shards,
    ranges: t0.ranges.map((r) => {
      const i = s.indexOf(r.owner);
      return { ...r, replicas: Array.from({ length: rf - 1 }, (_, k) => s[(i + 1 + k) % s.length]!) };
    }),
  });
  writeFileSync(mesh.topologyFile, serializeTopology(topo));
  for (let i = 0; i < 200; i++) {
    const epochs = await Promise.all(mesh.nodes.map(async (n) => (await call(n.appUrl, 'GET', '/health')).body.topology_epoch));
    if (epochs.every((e) => e === epoch)) break;
    await sleep(25);
  }
  // Replicas start (or restart) their followers with the topology: a write to each range
  // succeeds once every copy is following.
  for (const r of topo.ranges) {
    const key = `document.warm.up:${uuidOwnedBy(r)}`;
    let status = 0;
    for (let i = 0; i < 100 && status !== 201; i++) status = (await call(mesh.nodes[0]!.appUrl, 'PUT', `/entities/${key}`, { blob: '{}' })).status;
    if (status !== 201) throw new Error(`epoch ${epoch}: writes to ${r.owner}'s range do not succeed (${status})`);
  }
  return topo;
}

const keys = Array.from({ length: 240 }, () => `document.shop.orders:${randomUUID()}`);
let app = 0;
const put = async (key: string, blob: string) => {
  const node = mesh.nodes[app++ % mesh.nodes.length]!; // through every sidecar
  const r = await call(node.appUrl, 'PUT', `/entities/${encodeURIComponent(key)}`, { blob });
  return { status: r.status, code: r.body?.code };
};
const readFrom = (storageUrl: string) => async (key: string) => {
  const r = await call(storageUrl, 'GET', `/entities/${encodeURIComponent(key)}`);
  return r.status === 200 ? (r.body.blob as string) : undefined;
};

/** Waits until every copy of every acknowledged key holds it, then checks each copy's history. */
async function checkCopies(t: Test, topo: Topology, history: History, what: string): Promise<void> {
  const copiesOf = (key: string) => {
    const r = topo.rangeOfKey(key);
    return [r.owner, ...r.replicas];
  };
  for (const [i, node] of mesh.nodes.entries()) {
    const mine = history.ackedKeys().filter((k) => copiesOf(k).includes(ids()[i]!));
    let v = await history.check(readFrom(node.storage.url), mine);
    for (let tries = 0; tries < 100 && v.lost.length + v.reverted.length > 0; tries++) {
      await sleep(50); // a replica may still be applying the last page
      v = await history.check(readFrom(node.storage.url), mine);
    }
    t.same({ lost: v.lost.length, reverted: v.reverted.length, invented: v.invented.length }, { lost: 0, reverted: 0, invented: 0 }, `${what}: ${ids()[i]} holds every acknowledged write of its ${mine.length} keys`);
  }
}

t.test('RF 2: every acknowledged write is on both copies', async (t) => {
  const topo = await publish(2, 2);
  const history = new History('rf2');
  const stats = await writeLoop(history, keys, put, { until: sleep(1500), concurrency: 16 });
  t.equal(stats.failed, 0, `no write failed (${stats.acknowledged} acknowledged; ${JSON.stringify(stats.failures)})`);
  t.ok(stats.acknowledged > 20, "the loop made progress");
  await checkCopies(t, topo, history, 'RF 2');
  // Every node holds its own ranges and a copy of another's: queries read each range once.
  const written = new Set(history.ackedKeys());
  const q = (body: unknown) => call(mesh.nodes[1]!.appUrl, 'POST', '/query', body);
  t.equal((await q({ table: 'document.shop.orders', return: 'count' })).body.count, written.size, 'count: each entity once');
  const listed = (await q({ table: 'document.shop.orders', return: 'keys' })).body.keys as string[];
  t.equal(listed.length, written.size, 'keys: each entity once');
  t.same(new Set(listed), new Set([...written].map((k) => k)), 'keys: exactly the entities written');
});

t.test('x-themis-read: any lets a replica answer, and says so', async (t) => {
  const topo = await publish(2, 2);
  const [primary, replica] = [mesh.nodes[0]!, mesh.nodes[1]!];
  const range = topo.ranges.find((r) => r.owner === primary.shard.id && r.replicas.includes(replica.shard.id))!;
  const key = `document.shop.orders:${uuidOwnedBy(range)}`;
  t.equal((await call(primary.appUrl, 'PUT', `/entities/${key}`, { blob: '{"v":1}' })).status, 201);
  const get = (headers: Record<string, string>) => fetch(`${replica.appUrl}/entities/${key}`, { headers });
  const any = await get({ 'x-themis-read': 'any' });
  t.equal(any.status, 200);
  t.equal(any.headers.get('x-themis-shard'), replica.shard.id, 'served by the replica');
  t.equal(any.headers.get('x-themis-copy'), 'replica');
  t.match(any.headers.get('x-themis-replica-lag'), /^\d+$/, 'with its lag in changes');
  t.equal(((await any.json()) as { blob: string }).blob, '{"v":1}', 'the acknowledged value (ack majority = both copies)');
  const plain = await get({});
  t.equal(plain.headers.get('x-themis-shard'), primary.shard.id, 'without the header: the primary');
  t.equal(plain.headers.get('x-themis-copy'), null);
  const bad = await get({ 'x-themis-read': 'nearest' });
  t.equal(bad.status, 400);
  t.equal(((await bad.json()) as { code: string }).code, 'INVALID_HEADER');
});

t.test('RF 2, a replica down: its ranges answer 503 REPLICATION_UNAVAILABLE naming it, the rest go on', async (t) => {
  const current = await publish(3, 2);
  const victim = mesh.nodes[1]!; // replica of shard-001's ranges
  await victim.storage.kill('SIGKILL');
  const affected = keys.filter((k) => current.rangeOfKey(k).replicas.includes(victim.shard.id)).slice(0, 5);
  const unaffected = keys.filter((k) => !current.rangeOfKey(k).replicas.includes(victim.shard.id) && current.rangeOfKey(k).owner !== victim.shard.id).slice(0, 5);
  for (const k of affected) {
    const started = Date.now();
    const r = await call(mesh.nodes[0]!.appUrl, 'PUT', `/entities/${encodeURIComponent(k)}`, { blob: '{"during":"outage"}' });
    t.equal(r.status, 503, 'refused as not done');
    t.equal(r.body?.code, 'REPLICATION_UNAVAILABLE');
    t.same(r.body?.missing_copies, [victim.shard.id], 'names the missing copy');
    t.ok(Date.now() - started < 4000, 'within the ack timeout, no hang');
  }
  const metrics = await fetch(`${mesh.nodes[0]!.adminUrl}/metrics`).then((r) => r.text());
  t.ok(Number(/^themis_changefeed_records (\d+)$/m.exec(metrics)?.[1]) > 0, 'the local change log is exported');
  t.match(metrics, /^themis_changefeed_follower_lag\{follower="[^"]+"\} \d+$/m, 'with its registered followers');
  t.ok(Number(/^themis_replication_ack_failures_total (\d+)/m.exec(metrics)?.[1]) >= affected.length, 'the refusals are counted');
  t.match(metrics, new RegExp(`^themis_replication_replica_silence_seconds\\{replica="${victim.shard.id}"\\} `, 'm'), 'the silent replica is visible');
  for (const k of unaffected) t.equal((await call(mesh.nodes[2]!.appUrl, 'PUT', `/entities/${encodeURIComponent(k)}`, { blob: '{"during":"outage"}' })).status, 201, 'other ranges are written');
  await victim.storage.start(); // same port, same data
  let back = 0;
  for (let i = 0; i < 200 && back !== 201; i++) {
    back = (await call(mesh.nodes[0]!.appUrl, 'PUT', `/entities/${encodeURIComponent(affected[0]!)}`, { blob: '{"after":"outage"}' })).status;
    if (back !== 201) await sleep(50);
  }
  t.equal(back, 201, 'writes to its ranges succeed again once it is back');
});

t.test('RF 3: a replica down does not stop writes; it catches up on the 10,000 writes it missed', async (t) => {
  const topo = await publish(4, 3);
  const history = new History('rf3');
  const victim = mesh.nodes[2]!;
  await victim.storage.kill('SIGKILL');
  // Its own ranges have no primary while it is down (failover is not built yet): write the others.
  const others = keys.filter((k) => topo.rangeOfKey(k).owner !== victim.shard.id);
  // Bounded by maxWrites (and the file's time limit): a long timer as `until` kept the process alive after the tests.
  const missed = await writeLoop(history, others, put, { until: new Promise(() => undefined), maxWrites: 10_000, concurrency: 32 });
  t.equal(missed.failed, 0, 'no write failed');
  t.equal(missed.acknowledged, 10_000, `10,000 writes acknowledged by 2 of 3 copies while ${victim.shard.id}'s storage node was down`);
  const started = Date.now();
  await victim.storage.start();
  await checkCopies(t, topo, history, 'RF 3 after catch-up');
  // A follower sets these lines after a page is applied and checkpointed (or later still, after a
  // repair copy), so they may trail the data being readable: once seen missing in a full run.
  const caughtUp = /^themis_replica_lag_changes\{primary="shard-001"\} 0$/m;
  const position = /^themis_replica_applied_seq\{primary="shard-001"\} [1-9]\d*$/m;
  let lag = '';
  for (let i = 0; i < 50 && !(caughtUp.test(lag) && position.test(lag)); i++) {
    if (i > 0) await sleep(100);
    lag = await fetch(`${victim.adminUrl}/metrics`).then((r) => r.text());
  }
  t.match(lag, caughtUp, 'its lag behind shard-001 is back to 0');
  t.match(lag, position, 'its position is exported');
  t.comment(`catch-up of ${missed.acknowledged} writes: ${Date.now() - started} ms after the storage node was back`);
});
