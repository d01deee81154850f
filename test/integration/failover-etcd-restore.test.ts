// Failover state after an etcd restore (issue 21). Terms are etcd revisions and the failover
// keys go back with a restored etcd: a snapshot taken before a failover names the old primary
// as the last holder. Here the old primary (shard-001) lost its storage node, a replica took
// over and acknowledged writes on two of the three copies, and etcd was then restored from
// the older snapshot while shard-001's node came back without those writes. Left alone, the
// restored record makes shard-001 "the last holder, back" — it wins the election outright and
// its followers' repair copies delete the acknowledged writes. Each sidecar keeps the highest
// failover generation it saw (replication.stateDir): the copies find etcd's lower, mark the
// group rolled back, route it to the holder of the newest generation and take no term until
// the operator resolves it; then every copy holds every acknowledged write.
import t from 'tap';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { replicaGroups } from '../../src/topology/replica-groups.js';
import { FAILOVER_MESH, startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { History } from '../support/history.js';
import { call } from '../support/storage-process.js';
import { runProgramAsync } from '../support/cli.js';
import { etcdctlPath } from '../../scripts/etcd-process.js';

t.setTimeout(180_000);

let mesh: Mesh;
t.before(async () => {
  mesh = await startMesh(FAILOVER_MESH);
});
t.teardown(async () => {
  await mesh?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const range = () => mesh.topology.ranges.find((r) => r.owner === 'shard-001')!;
const group = () => replicaGroups(mesh.topology).find((g) => g.owner === 'shard-001')!;
const base = () => `/themis/${mesh.pki.cluster}/failover/`;
const history = new History();

function ctl(args: string[]): string {
  const a = mesh.pki.operators.admin;
  const r = mesh.etcd!.etcdctl({ cert: a.chainPath, key: a.keyPath, ca: mesh.pki.root.certPath }, args);
  if (r.status !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const value = (key: string): Record<string, unknown> | undefined => {
  const out = ctl(['get', key, '--print-value-only']).trim();
  return out ? (JSON.parse(out) as Record<string, unknown>) : undefined;
};
const actingShard = () => value(`${base()}acting/${group().id}`)?.shard as string | undefined;

async function until<T>(what: string, f: () => T | undefined | Promise<T | undefined>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; failover keys:\n${ctl(['get', '--prefix', base()])}`);
    await sleep(100);
  }
}

/** Writes `key` through shard-003's app port until acknowledged. */
async function write(key: string): Promise<void> {
  await until(`an acknowledged write of ${key}`, async () => {
    const { blob, n } = history.next(key);
    const r = await call(mesh.nodes[2]!.appUrl, 'PUT', `/entities/${encodeURIComponent(key)}`, { blob }, 20_000);
    if (r.status !== 201) return undefined;
    history.ack(key, n);
    return true;
  });
}

const readFrom = (storageUrl: string) => async (key: string) => {
  const r = await call(storageUrl, 'GET', `/entities/${encodeURIComponent(key)}`);
  return r.status === 200 ? (r.body.blob as string) : undefined;
};
const verdict = async (i: number) => {
  const v = await history.check(readFrom(mesh.nodes[i]!.storage.url), history.ackedKeys());
  return { lost: v.lost.length, reverted: v.reverted.length, invented: v.invented.length };
};

t.test('a restored etcd\'s older failover record does not let a copy that misses acknowledged writes take over', async (t) => {
  await until('shard-001 acting for its group', () => (actingShard() === 'shard-001' ? true : undefined));
  const keys = Array.from({ length: 12 }, () => `document.shop.orders:${uuidOwnedBy(range())}`);
  for (const k of keys.slice(0, 4)) await write(k);

  const admin0 = mesh.pki.operators.admin;
  const snap = join(mesh.dir, 'etcd-failover.db');
  const save = await runProgramAsync('themis-admin', ['etcd', 'snapshot', 'save', '--out', snap, '--etcd', mesh.etcd!.endpoint, '--ca', mesh.pki.root.certPath, '--operator-cert', admin0.chainPath, '--operator-key', admin0.keyPath, '--etcdctl', etcdctlPath()]);
  t.equal(save.status, 0, save.stdout + save.stderr);

  // shard-001's storage node dies; a replica takes over and acknowledges writes on 2 of 3 copies.
  await mesh.nodes[0]!.storage.kill();
  const holder = await until('a replica to take over', () => {
    const a = actingShard();
    return a && a !== 'shard-001' ? a : undefined;
  });
  for (const k of keys.slice(4)) await write(k);
  t.same(value(`${base()}last/${group().id}`), { shard: holder, gen: 2 }, `${holder} holds the second generation`);

  // The third copy's sidecar is paused through the restore: without it the others cannot make a
  // quorum, so the election's outcome does not depend on who stands first — with the restored
  // record alone, shard-001 ("the last holder, back") would win it.
  const other = [1, 2].find((i) => mesh.nodes[i]!.shard.id !== holder)!;
  const h = mesh.nodes.findIndex((n) => n.shard.id === holder);
  mesh.nodes[other]!.sidecar!.child.kill('SIGSTOP');
  // etcd is lost and restored from the snapshot taken before the failover.
  await mesh.stopEtcd();
  rmSync(mesh.etcd!.dataDir, { recursive: true, force: true });
  const peer = `http://127.0.0.1:${mesh.etcd!.ports.peer}`;
  const restore = await runProgramAsync('themis-admin', ['etcd', 'snapshot', 'restore', '--from', snap, '--data-dir', mesh.etcd!.dataDir, '--name', 'themis', '--initial-cluster', `themis=${peer}`, '--initial-advertise-peer-urls', peer, '--etcdctl', etcdctlPath()]);
  t.equal(restore.status, 0, restore.stdout + restore.stderr);
  await mesh.restartEtcd();
  // shard-001's node returns without the writes acknowledged after the snapshot.
  await mesh.nodes[0]!.storage.start();
  t.equal((await verdict(0)).lost, 8, 'control: shard-001\'s node misses the 8 writes acknowledged after the snapshot');

  const marked = await until('the group marked rolled back', () => value(`${base()}rolled-back/${group().id}`));
  t.match(marked, { gen: 2, holder, etcd_gen: 1, etcd_holder: 'shard-001' }, `a copy marked the group rolled back: generation 2 was held by ${holder}, etcd holds 1 (shard-001)`);
  // Long enough for the restored acting key's lease (1 s) to expire and an election to end, and for followers to repair.
  await sleep(5000);
  t.not(actingShard(), 'shard-001', 'shard-001 did not take over with the restored record');
  t.equal(actingShard(), undefined, 'nobody holds a term of the group until the operator resolves it');
  for (const i of [h, other]) t.same(await verdict(i), { lost: 0, reverted: 0, invented: 0 }, `${mesh.nodes[i]!.shard.id} still holds every acknowledged write`);
  const read = await call(mesh.nodes[0]!.appUrl, 'GET', `/entities/${encodeURIComponent(keys[11]!)}`);
  t.equal(read.status, 200, 'a write acknowledged after the snapshot is read through the mesh (shard-001\'s sidecar)');
  t.equal(read.headers.get('x-themis-shard'), holder, `from ${holder}, the holder of the newest generation`);
  const refused = await call(mesh.nodes[0]!.appUrl, 'PUT', `/entities/${encodeURIComponent(keys[0]!)}`, { blob: history.next(keys[0]!).blob }, 20_000);
  t.equal(refused.status, 503, 'writes to the group are refused meanwhile');
  t.equal(refused.body.code, 'FAILOVER_IN_PROGRESS', 'retryably');
  const crls = mesh.pki.crls().map((c, i) => {
    const f = join(mesh.dir, `fo-crl-${i}.pem`);
    writeFileSync(f, c);
    return f;
  });
  const ro = mesh.pki.operators.readonly;
  const check = await runProgramAsync('themis-admin', ['check', '--cluster', mesh.pki.cluster, '--etcd', mesh.etcd!.endpoint, '--ca', mesh.pki.root.certPath, '--cert', ro.chainPath, '--key', ro.keyPath, '--crls', crls.join(',')]);
  t.equal(check.status, 1, 'themis-admin check fails');
  t.match(check.stdout, new RegExp(`replica group ${group().id}: shard-00\\d saw generation 2 held by ${holder}, etcd holds generation 1 \\(shard-001\\)`), 'and names the group that went back');
  t.match(check.stdout, /etcdctl del .*rolled-back/, 'with the resolution');
  const audits = mesh.nodes.map((n) => readFileSync(n.auditFile, 'utf8'));
  t.ok(audits.some((a) => a.includes('"event":"FAILOVER_STATE_ROLLED_BACK"')), 'audited FAILOVER_STATE_ROLLED_BACK');

  mesh.nodes[other]!.sidecar!.child.kill('SIGCONT');
  // The operator's resolution (docs/disaster-recovery.md): the record back to the newest generation.
  ctl(['put', `${base()}last/${group().id}`, JSON.stringify({ shard: marked.holder, gen: marked.gen })]);
  ctl(['del', `${base()}acting/${group().id}`]);
  ctl(['del', `${base()}rolled-back/${group().id}`]);
  // The election starts from the true last holder: it wins if it stands first, or a quorum of the
  // others picks the highest position in its feed (shard-001 followed it meanwhile).
  const next = await until('a new acting primary', () => {
    const a = value(`${base()}acting/${group().id}`);
    return a && a.gen === 3 ? (a.shard as string) : undefined;
  });
  t.comment(`${next} took the third generation`);
  await write(keys[0]!);
  for (const i of [0, 1, 2]) {
    let v = await verdict(i);
    for (let tries = 0; tries < 100 && v.lost + v.reverted > 0; tries++) {
      await sleep(100);
      v = await verdict(i);
    }
    t.same(v, { lost: 0, reverted: 0, invented: 0 }, `${mesh.nodes[i]!.shard.id} holds every acknowledged write`);
  }
});
