// A range move under a write loop through sidecars with two workers each (docs/sidecar.md
// "Workers"): the cutover's hold must be on in every worker of the source and drained in all of
// them before the source reads its head, or a write served by the other worker during the
// cutover would be acknowledged at the source after the copy ended (lost). RF 1, 3 shards.
// Workers hold no etcd client: the control process passes the topology and CRLs on.
import t from 'tap';
import { startMesh, type Mesh } from '../support/mesh.js';
import { moveUnderLoad } from '../support/move-under-load.js';
import { meshAttempt, publishCaCrl } from '../support/etcd-crl.js';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

let mesh: Mesh;
t.before(async () => {
  mesh = await startMesh({ shards: 3, withEtcd: true, etcdTopology: true, certifiedReplicas: 1, sidecarConfig: { workers: 2, replication: { failover: false } } });
});
t.teardown(() => mesh?.close());

t.test('a move under a write loop through two workers per sidecar: no write fails, none is lost', async (t) => moveUnderLoad(t, mesh, { back: false }));

/** Sockets of process `pid` connected to TCP port `port` (its fds matched against /proc/net/tcp*). */
function connectionsTo(pid: number, port: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  let n = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[2]!.endsWith(`:${hex}`) && f[3] === '01' && inodes.has(f[9]!)) n++;
    }
  }
  return n;
}

t.test('workers hold no etcd connection; the CRLs and topologies the control process takes from etcd reach them', async (t) => {
  const etcdPort = Number(new URL(mesh.etcd!.endpoint).port);
  for (const node of mesh.nodes) {
    const control = node.sidecar!.child.pid!;
    const workers = execFileSync('pgrep', ['-P', String(control)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number)
      .filter((p) => readFileSync(`/proc/${p}/environ`, 'utf8').includes('THEMIS_WORKER_SLOT='));
    t.equal(workers.length, 2, `${node.shard.id}: two workers`);
    t.ok(connectionsTo(control, etcdPort) >= 1, `${node.shard.id}: the control process talks to etcd`);
    for (const w of workers) t.equal(connectionsTo(w, etcdPort), 0, `${node.shard.id}: worker ${w} holds no etcd connection`);
  }
  // The move above published a new topology: every worker routes by it (themis_worker_topology_epoch).
  const text = await fetch(`${mesh.nodes[0]!.adminUrl}/metrics`).then((r) => r.text());
  const epochs = text.split('\n').filter((l) => l.startsWith('themis_worker_topology_epoch')).map((l) => Number(l.split(' ').pop()));
  const hostEpoch = Number(/^themis_topology_epoch (\d+)$/m.exec(text)![1]);
  t.ok(hostEpoch > 1, `the move published epoch ${hostEpoch}`);
  t.same(epochs, [hostEpoch, hostEpoch], 'both workers route by it');

  // A client certificate revoked by a CRL published in etcd: refused on every new connection,
  // which node:cluster hands to the two workers in turn.
  const id = { cert: mesh.pki.clients.readWrite.chain, key: mesh.pki.clients.readWrite.key, ca: mesh.pki.root.cert };
  for (let i = 0; i < 4; i++) t.equal(await meshAttempt(mesh, 0, id), 404, `connection ${i + 1} accepted before`);
  await mesh.pki.revoke(mesh.pki.clients.readWrite.serial);
  await publishCaCrl(mesh, 'client');
  const t0 = Date.now();
  let run = 0;
  while (run < 6 && Date.now() - t0 < 10_000) run = (await meshAttempt(mesh, 0, id)) === 'refused' ? run + 1 : 0;
  t.equal(run, 6, `6 connections in a row refused, ${Date.now() - t0} ms after the publish`);
});
