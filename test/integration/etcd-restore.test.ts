// etcd lost and restored from a snapshot older than the topology in force (themis-admin etcd
// snapshot save|restore over a real etcd): the sidecars keep the newer topology and refuse the
// restored one, a sidecar restarted meanwhile too; themis-admin check names the rollback; only
// the operator's signed decision — the topology published at a newer epoch — moves the cluster.
import t from 'tap';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { operatorArgs, publishAsAdmin, startMesh, type Mesh } from '../support/mesh.js';
import { call } from '../support/storage-process.js';
import { runProgramAsync } from '../support/cli.js';
import { etcdctlPath } from '../../scripts/etcd-process.js';
import { serializeTopology } from '../../src/topology/document.js';

let mesh: Mesh;
t.before(async () => {
  mesh = await startMesh({ shards: 3, withEtcd: true, etcdTopology: true });
});
t.teardown(() => mesh?.close());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const epochs = () => Promise.all(mesh.nodes.map(async (n) => (n.sidecar ? (await call(n.appUrl, 'GET', '/health')).body.topology_epoch : null)));
async function until(what: () => Promise<boolean>, ms = 15_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(100)) if (await what()) return true;
  return false;
}
const admin = (args: string[]) => runProgramAsync('themis-admin', args);
const reader = () => {
  const crls = mesh.pki.crls().map((c, i) => {
    const f = join(mesh.dir, `restore-crl-${i}.pem`);
    writeFileSync(f, c);
    return f;
  });
  const ro = mesh.pki.operators.readonly;
  return ['--cluster', mesh.pki.cluster, '--etcd', mesh.etcd!.endpoint, '--ca', mesh.pki.root.certPath, '--cert', ro.chainPath, '--key', ro.keyPath, '--crls', crls.join(',')];
};

t.test('a restored etcd older than the topology in force is refused until an operator publishes a newer epoch', async (t) => {
  const e0 = mesh.topology.epoch;
  const snap = join(mesh.dir, 'etcd.db');
  const admin0 = mesh.pki.operators.admin;
  const save = await admin(['etcd', 'snapshot', 'save', '--out', snap, '--etcd', mesh.etcd!.endpoint, '--ca', mesh.pki.root.certPath, '--operator-cert', admin0.chainPath, '--operator-key', admin0.keyPath, '--etcdctl', etcdctlPath()]);
  t.equal(save.status, 0, save.stdout + save.stderr);
  t.ok(existsSync(snap), 'the snapshot was written');

  await publishAsAdmin(mesh.pki, mesh.etcd!, mesh.topology.withEpoch(e0 + 1));
  t.ok(await until(async () => (await epochs()).every((e) => e === e0 + 1)), `every sidecar serves epoch ${e0 + 1}`);

  // etcd is lost; restored from the older snapshot into the same member's data directory.
  await mesh.stopEtcd();
  const etcd = mesh.etcd!;
  rmSync(etcd.dataDir, { recursive: true, force: true });
  const peer = `http://127.0.0.1:${etcd.ports.peer}`;
  const restore = await admin(['etcd', 'snapshot', 'restore', '--from', snap, '--data-dir', etcd.dataDir, '--name', 'themis', '--initial-cluster', `themis=${peer}`, '--initial-advertise-peer-urls', peer, '--etcdctl', etcdctlPath()]);
  t.equal(restore.status, 0, restore.stdout + restore.stderr);
  await mesh.restartEtcd();
  const held = mesh.etcd!.etcdctl({ cert: admin0.chainPath, key: admin0.keyPath, ca: mesh.pki.root.certPath }, ['get', `/themis/${mesh.pki.cluster}/topology`, '--print-value-only']);
  t.equal(JSON.parse(JSON.parse(held.stdout).document).epoch, e0, `control: the restored etcd holds the older epoch ${e0}`);

  await mesh.stopSidecar(2);
  await mesh.startSidecar(2);
  await sleep(3000);
  t.same(await epochs(), [e0 + 1, e0 + 1, e0 + 1], 'every sidecar keeps the newer topology, one restarted meanwhile too');
  t.ok(mesh.sidecarLogLines(/topology from etcd refused/).some((l) => /not_newer/.test(l)), 'the older one is refused as not newer');

  let check = await admin(['check', ...reader()]);
  t.ok(await until(async () => /newer than the \d+ etcd holds/.test((check = await admin(['check', ...reader()])).stdout), 20_000), 'themis-admin check names the rollback');
  t.equal(check.status, 1, 'and fails');
  t.match(check.stdout, new RegExp(`serves epoch ${e0 + 1}, newer than the ${e0} etcd holds`));
  t.match(check.stdout, new RegExp(`--epoch ${e0 + 2}`), 'with the signed decision to take');

  // The operator's signed decision: the topology in force, published at a newer epoch.
  const plan = join(mesh.dir, 'decision.json');
  writeFileSync(plan, serializeTopology(mesh.topology.withEpoch(e0 + 2)));
  const pub = await admin(['topology', 'publish', '--plan', plan, ...operatorArgs(mesh)]);
  t.equal(pub.status, 0, pub.stdout + pub.stderr);
  t.ok(await until(async () => (await epochs()).every((e) => e === e0 + 2)), `every sidecar serves epoch ${e0 + 2}`);
  t.ok(await until(async () => (await admin(['check', ...reader()])).status === 0, 20_000), 'and themis-admin check passes again');
});

t.test('a restored etcd holding an older CRL does not un-revoke a certificate; check names it; a newer CRL published after the restore is taken', async (t) => {
  const { readFileSync } = await import('node:fs');
  const { clientProfile } = await import('../../src/pki/profiles.js');
  const { etcdClient } = await import('../support/mesh.js');
  const admin0 = mesh.pki.operators.admin;
  const etcdFlags = ['--etcd', mesh.etcd!.endpoint, '--cert', admin0.chainPath, '--key', admin0.keyPath, '--cluster', mesh.pki.cluster];
  const publishClientCrl = async () => {
    const r = await admin(['crl', 'publish', '--ca', 'client', '--pki', mesh.pki.dir, ...etcdFlags]);
    t.equal(r.status, 0, `crl publish: ${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  type Id = { cert: string; key: string; ca: string };
  const { meshAttempt } = await import('../support/etcd-crl.js');
  const attempt = (i: number, id: Id) => meshAttempt(mesh, i, id);
  const everywhere = async (id: Id) => Promise.all(mesh.nodes.map((_, i) => attempt(i, id)));
  const asId = (m: { chain: string; key: string }): Id => ({ cert: m.chain, key: m.key, ca: mesh.pki.root.cert });
  const firstLeaf = await mesh.pki.issue(clientProfile({ name: 'crl-rollback-1', capabilities: ['read'] }), 'crl-rollback-1');
  const first = asId(firstLeaf);
  const second = await mesh.pki.issue(clientProfile({ name: 'crl-rollback-2', capabilities: ['read'] }), 'crl-rollback-2');
  t.ok((await everywhere(first)).every((s) => s !== 'refused'), 'control: the first client is accepted everywhere');
  t.ok((await everywhere(asId(second))).every((s) => s !== 'refused'), 'control: the second client too');

  // etcd holds the client CA's CRL n0 when the snapshot is taken.
  t.match(await publishClientCrl(), /published CRL number \d+ of the client CA/);
  const snap = join(mesh.dir, 'etcd-crl.db');
  const save = await admin(['etcd', 'snapshot', 'save', '--out', snap, '--etcd', mesh.etcd!.endpoint, '--ca', mesh.pki.root.certPath, '--operator-cert', admin0.chainPath, '--operator-key', admin0.keyPath, '--etcdctl', etcdctlPath()]);
  t.equal(save.status, 0, save.stdout + save.stderr);

  // More revisions after the snapshot, as any busy etcd has: the restored one starts below them,
  // and below the revision at which the sidecars see CRL n1.
  const pad = etcdClient(mesh);
  for (let i = 0; i < 200; i++) await pad.put('/test-revision-pad').value(String(i));
  pad.close();
  // Then the first client is revoked: CRL n1, published through etcd only (the sidecars' CRL files stay at n0).
  await mesh.pki.revoke(firstLeaf.serial);
  t.match(await publishClientCrl(), /published CRL number \d+ of the client CA/);
  t.ok(await until(async () => (await everywhere(first)).every((s) => s === 'refused')), 'every sidecar refuses the revoked client');

  // etcd lost; restored from the snapshot holding CRL n0.
  await mesh.stopEtcd();
  const etcd = mesh.etcd!;
  rmSync(etcd.dataDir, { recursive: true, force: true });
  const peer = `http://127.0.0.1:${etcd.ports.peer}`;
  const restore = await admin(['etcd', 'snapshot', 'restore', '--from', snap, '--data-dir', etcd.dataDir, '--name', 'themis', '--initial-cluster', `themis=${peer}`, '--initial-advertise-peer-urls', peer, '--etcdctl', etcdctlPath()]);
  t.equal(restore.status, 0, restore.stdout + restore.stderr);
  await mesh.restartEtcd();
  await mesh.stopSidecar(2);
  await mesh.startSidecar(2);
  await sleep(3000);
  t.same(await everywhere(first), ['refused', 'refused', 'refused'], 'the revoked client stays refused by every sidecar, the one restarted meanwhile too');
  const audit = readFileSync(mesh.nodes[2]!.auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; ca?: string; reason?: string });
  t.ok(audit.some((e) => e.event === 'CRL_REJECTED' && e.ca === 'client' && /^not_newer: /.test(e.reason ?? '')), 'the restarted sidecar refused the restored CRL as not newer (audited CRL_REJECTED)');
  const metrics = await (await fetch(`${mesh.nodes[2]!.adminUrl}/metrics`)).text();
  t.match(metrics, /themis_crl_rejections_total\{reason="not_newer"\} [1-9]/, 'and counted it');

  let check = await admin(['check', ...reader()]);
  t.ok(await until(async () => /enforces CRL number \d+ of .*newer than the \d+ etcd holds \(crl\/client\)/.test((check = await admin(['check', ...reader()])).stdout), 20_000), `themis-admin check names the CRL rollback:\n${check.stdout}`);
  t.equal(check.status, 1, 'and fails');
  t.match(check.stdout, /themis-admin crl publish --ca client/, 'with the decision to take');

  // The decision: the client CA's current CRL published again; then a newer revocation reaches
  // every sidecar, though the restored etcd's revisions are below those they had seen.
  await publishClientCrl();
  t.ok(await until(async () => !/enforces CRL number/.test((await admin(['check', ...reader()])).stdout), 20_000), 'check no longer names a CRL rollback');
  await mesh.pki.revoke(second.serial);
  await publishClientCrl();
  // A running sidecar's watch resumed above the restored etcd's revision (etcd3 resumes at the
  // last revision it saw + 1, and etcd waits for a future one): src/control/watch.ts notices
  // that etcd went back and watches again from its current revision.
  const t0 = Date.now();
  const reached = await until(async () => (await everywhere(asId(second))).every((s) => s === 'refused'), 10_000);
  t.ok(reached, 'a client revoked after the restore is refused by every sidecar, the ones that never restarted too');
  if (reached) t.comment(`the revocation after the restore reached every sidecar in ${Date.now() - t0} ms`);
  const rewatched = mesh.nodes.map((n) => n.sidecar!.stderr().split('\n').some((l) => /etcd went back.*watching the CRL again/.test(l)));
  t.same(rewatched.slice(0, 2), [true, true], 'the sidecars that kept running noticed that etcd went back and watched the CRLs again');
  t.same(await everywhere(first), ['refused', 'refused', 'refused'], 'and the first stays refused');
});
