// A replica's lost disk restored from a backup, on real processes (etcd, 2 shards, RF 2, ack
// majority, failover on): writes go on through both sidecars; shard-002's storage node (the
// replica of shard-001's range) is backed up, more writes are acknowledged, its data directory is
// destroyed and restored from the backup with `themis-admin restore`, and the node is started
// under its running sidecar. The replica's follower must notice that its storage node went back
// (its checkpoint is ahead of the data), copy again from the primary and catch up: the history
// checker finds every acknowledged write on both copies, none reverted, none invented. Reads
// with `x-themis-read: any` at the replica are never answered from the restored, older data.
import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { operatorArgs, startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { History, writeLoop } from '../support/history.js';
import { call } from '../support/storage-process.js';
import { runProgramAsync } from '../support/cli.js';

t.setTimeout(300_000);

let mesh: Mesh;
let work: string;
t.before(async () => {
  mesh = await startMesh({
    shards: 2,
    replicas: 1,
    withEtcd: true,
    etcdTopology: true,
    sidecarConfig: { replication: { ackTimeoutMs: 1500, longPollMs: 300, leaseTtlSeconds: 1 } },
  });
  work = mkdtempSync(join(tmpdir(), 'themis-replica-restore-'));
});
t.teardown(async () => {
  await mesh?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const admin = (args: string[]) => runProgramAsync('themis-admin', args);
function trustArgs(): string[] {
  const a = operatorArgs(mesh);
  return ['--ca', a[a.indexOf('--ca') + 1]!, '--crls', a[a.indexOf('--crls') + 1]!];
}
const counter = (blob: string | undefined) => (blob === undefined ? -1 : (JSON.parse(blob) as { n: number }).n);
const readFrom = (storageUrl: string) => async (key: string) => {
  const r = await call(storageUrl, 'GET', `/entities/${encodeURIComponent(key)}`);
  return r.status === 200 ? (r.body.blob as string) : undefined;
};

async function checkCopy(t: Test, history: History, i: number, what: string): Promise<void> {
  const read = readFrom(mesh.nodes[i]!.storage.url);
  let v = await history.check(read, history.ackedKeys());
  for (let tries = 0; tries < 300 && v.lost.length + v.reverted.length > 0; tries++) {
    await sleep(100);
    v = await history.check(read, history.ackedKeys());
  }
  t.same({ lost: v.lost, reverted: v.reverted, invented: v.invented }, { lost: [], reverted: [], invented: [] }, `${what}: ${mesh.nodes[i]!.shard.id} holds every acknowledged write (${v.checked} keys)`);
}

t.test('a replica restored from a backup copies again from its primary and catches up; stale data is never served', async (t) => {
  const primary = mesh.nodes[0]!;
  const replica = mesh.nodes[1]!;
  const range = mesh.topology.ranges.find((r) => r.owner === primary.shard.id)!;
  t.same(range.replicas, [replica.shard.id], 'shard-002 is the replica of shard-001’s range');
  const keys = Array.from({ length: 40 }, () => `document.shop.baskets:${uuidOwnedBy(range)}`);
  const history = new History('restore');
  let lane = 0;
  const put = async (key: string, blob: string) => {
    const r = await call(mesh.nodes[lane++ % 2]!.appUrl, 'PUT', `/entities/${encodeURIComponent(key)}`, { blob }, 15_000);
    return { status: r.status, code: r.body?.code };
  };
  let stopFirst!: () => void;
  const first = writeLoop(history, keys, put, { until: new Promise<void>((r) => (stopFirst = r)), concurrency: 4 });
  await sleep(1500);

  const dir = join(work, 'shard-002');
  const b = await admin(['backup', '--shard', replica.shard.id, '--out', dir, '--storage', replica.storage.url, ...operatorArgs(mesh)]);
  t.equal(b.status, 0, `backup of the replica's node: ${b.stdout}${b.stderr}`);
  const backupSeq = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')).seq as number;
  await sleep(2000); // more writes, acknowledged by both copies

  // What the replica held just before its disk was lost: a copy never goes below it.
  const held = new Map(await Promise.all(keys.map(async (k) => [k, counter(await readFrom(replica.storage.url)(k))] as const)));
  const fullCopiesBefore = mesh.sidecarLogLines(/target behind/).length;
  stopFirst();
  const firstStats = await first;
  // From the loss on, writes go on to half of the keys only: the other half reach the restored
  // replica through its copy from the primary alone, or not at all.
  let stop!: () => void;
  const loop = writeLoop(history, keys.slice(0, 20), put, { until: new Promise<void>((r) => (stop = r)), concurrency: 4 });
  await replica.storage.kill('SIGKILL');
  rmSync(replica.storage.dataDir!, { recursive: true, force: true });
  const r = await admin(['restore', '--from', dir, '--data-dir', replica.storage.dataDir!, '--shard', replica.shard.id, '--cluster', mesh.pki.cluster, ...trustArgs()]);
  t.equal(r.status, 0, `restore: ${r.stdout}${r.stderr}`);
  const restoredAt = Date.now();
  await replica.storage.start();
  const restored = await Promise.all(keys.map(async (k) => counter(await readFrom(replica.storage.url)(k))));
  t.ok(keys.some((k, i) => restored[i]! < held.get(k)!), 'control: the restored node holds older values than the replica had');

  // Meanwhile: replica reads through its sidecar answer from a copy that never went back.
  let fromReplica = 0;
  let fromPrimary = 0;
  const stale: string[] = [];
  const reads = (async () => {
    while (Date.now() - restoredAt < 6000) {
      for (const k of keys.slice(0, 10)) {
        const res = await fetch(`${replica.appUrl}/entities/${encodeURIComponent(k)}`, { headers: { 'x-themis-read': 'any' } }).catch(() => undefined);
        if (!res || res.status !== 200) continue;
        const body = (await res.json()) as { blob: string };
        if (res.headers.get('x-themis-copy') === 'replica') {
          fromReplica++;
          if (counter(body.blob) < held.get(k)!) stale.push(`${k}: n=${counter(body.blob)} < ${held.get(k)}`);
        } else fromPrimary++;
      }
      await sleep(20);
    }
  })();
  await reads;
  stop();
  const stats = await loop;
  t.ok(firstStats.acknowledged > 100 && stats.acknowledged > 20, `${firstStats.acknowledged} writes acknowledged before the loss, ${stats.acknowledged} after it (${stats.failed} failed: ${JSON.stringify(stats.failures)})`);
  t.same(stale, [], `no replica read answered from the restored data (${fromReplica} from the replica, ${fromPrimary} from the primary)`);
  t.ok(fromReplica > 0, 'the replica serves reads again once it caught up');

  await checkCopy(t, history, 0, 'the primary');
  await checkCopy(t, history, 1, 'the restored replica');
  const seen = mesh.sidecarLogLines(/target behind/);
  t.ok(seen.length > fullCopiesBefore, `the replica's follower saw its node behind its checkpoint and copied again: ${seen.at(-1)?.slice(0, 300)}`);
  const health = await call(replica.storage.url, 'GET', '/health');
  t.ok(health.body.last_seq > backupSeq, `the restored node took new changes after the backup's seq ${backupSeq} (now ${health.body.last_seq})`);
});
