import t from 'tap';
import { startMesh, type Mesh } from '../support/mesh.js';
import { adminShards } from '../support/admin-shards.js';
import { copyFileSync } from 'node:fs';
import { shardProfile } from '../../src/pki/profiles.js';
import { TOKEN_MAX } from '../../src/hash.js';

let mesh: Mesh;
t.before(async () => {
  mesh = await startMesh({ shards: 3, withEtcd: true, replicas: 1 });
});
t.teardown(() => mesh?.close());

const shards = () => adminShards(mesh);

const waitUntil = async (pred: () => boolean, ms: number) => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return pred();
};

t.test('sidecars register certificate, endpoint and a leased alive key; themis-admin shards lists them', async (t) => {
  t.ok(await waitUntil(() => shards().filter((s) => s.alive).length === 3, 10_000), 'all three alive');
  const list = shards();
  for (const node of mesh.nodes) {
    const row = list.find((s) => s.shard === node.shard.id)!;
    t.equal(row.endpoint, `${node.shard.ip}:${node.meshPort}`);
    t.equal(row.serial, node.shard.serial);
    t.equal(row.status, 'valid');
    t.equal(row.issuer, 'CN=Themis Cluster CA, OU=cluster, O=themis-mesh', 'and which CA issued it (a root rotation\'s progress)');
  }
  const raw = mesh.etcd!.etcdctl({ cert: mesh.pki.operators.readonly.chainPath, key: mesh.pki.operators.readonly.keyPath, ca: mesh.pki.root.certPath }, [
    'get', `/themis/${mesh.pki.cluster}/shards/shard-001/certificate`, '--print-value-only',
  ]);
  t.match(JSON.parse(raw.stdout), { serial_number: mesh.nodes[0]!.shard.serial, capabilities: ['read', 'write', 'replicate'] }, 'readable with etcdctl');
  const metrics = await fetch(`${mesh.nodes[0]!.adminUrl}/metrics`).then((r) => r.text());
  t.match(metrics, /^themis_etcd_connected 1$/m, 'etcd connectivity exported');
  // Each shard replicates the one before it (replicas: 1): its lag is reported through etcd.
  t.ok(await waitUntil(() => shards().find((s) => s.shard === 'shard-002')?.replication?.['shard-001']?.state === 'following', 10_000), 'shard-002 reports following shard-001');
  t.match(shards().find((s) => s.shard === 'shard-002')!.replication, { 'shard-001': { state: 'following', lag_changes: 0 } }, 'and how far behind it is');
  t.equal(shards().find((s) => s.shard === 'shard-001')!.replication?.['shard-001'], undefined, 'nobody replicates itself');
});

t.test('a rotated certificate replaces the registered one: revoking the old one leaves the shard valid', async (t) => {
  const node = mesh.nodes[0]!;
  const s = node.shard;
  const fresh = await mesh.pki.issue(
    shardProfile({ id: s.id, cluster: mesh.pki.cluster, datacenter: 'dc1', dns: ['localhost'], ips: [s.ip, '127.0.0.1'], tokenRange: { start: 0n, end: TOKEN_MAX }, capabilities: ['read', 'write', 'replicate'], role: 'primary' }),
    `${s.id}-rotated`,
  );
  copyFileSync(fresh.keyPath, s.keyPath);
  copyFileSync(fresh.chainPath, s.chainPath);
  node.sidecar!.child.kill('SIGHUP');
  t.ok(await waitUntil(() => shards().find((r) => r.shard === s.id)?.serial === fresh.serial, 10_000), 'etcd holds the new serial');
  await mesh.pki.revoke(s.serial, 'superseded');
  const row = shards().find((r) => r.shard === s.id)!;
  t.equal(row.status, 'valid', 'the old certificate, revoked as superseded, no longer speaks for the shard');
  t.equal(row.alive, true);
});

t.test('a killed sidecar stops being alive within seconds; a revoked one shows as revoked', async (t) => {
  const started = Date.now();
  await mesh.stopSidecar(2, 'SIGKILL');
  t.ok(await waitUntil(() => !shards().find((s) => s.shard === 'shard-003')!.alive, 15_000), 'alive key gone after the lease expired');
  t.ok(Date.now() - started < 15_000, `gone after ${Date.now() - started} ms (lease TTL 5 s)`);
  await mesh.pki.revoke(mesh.nodes[1]!.shard.serial);
  t.equal(shards().find((s) => s.shard === 'shard-002')!.status, 'revoked');
  t.equal(shards().find((s) => s.shard === 'shard-001')!.status, 'valid');
});

t.test('with etcd unreachable a sidecar still starts at once and serves traffic', async (t) => {
  const { startMesh: start } = await import('../support/mesh.js');
  const { call } = await import('../support/storage-process.js');
  const { reservePorts } = await import('../../scripts/ports.js');
  const [closed] = await reservePorts([{ host: '127.0.0.1' }]); // nothing listens there
  const started = Date.now();
  const offline = await start({ shards: 2, sidecarConfig: { etcd: { endpoints: [`https://127.0.0.1:${closed}`] } } });
  t.teardown(() => offline.close());
  t.ok(Date.now() - started < 30_000, 'started');
  const r = await call(offline.nodes[0]!.appUrl, 'PUT', `/entities/document.a.b:${crypto.randomUUID()}`, { blob: '{}' });
  t.equal(r.status, 201, 'traffic flows without etcd');
  const metrics = await fetch(`${offline.nodes[0]!.adminUrl}/metrics`).then((x) => x.text());
  t.match(metrics, /^themis_etcd_connected 0$/m, 'and says etcd is unreachable');
});
