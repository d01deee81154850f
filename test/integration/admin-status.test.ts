// `themis-admin status` against a real mesh with etcd: the verified topology, every sidecar's
// epoch and liveness, the shares of the token space, replication lag; a stopped sidecar and
// certificates inside --expiring-days become warnings (exit 1); --watch --json draws repeatedly.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runProgram, runProgramAsync } from '../support/cli.js';
import { startMesh, type Mesh } from '../support/mesh.js';
import type { ClusterStatus } from '../../src/status/cluster-status.js';

let mesh: Mesh;
t.before(async () => {
  mesh = await startMesh({ shards: 3, withEtcd: true, etcdTopology: true, replicas: 1 });
});
t.teardown(() => mesh?.close());

function args(extra: string[]): string[] {
  const crls = mesh.pki.crls().map((c, i) => {
    const f = join(mesh.dir, `status-crl-${i}.pem`);
    writeFileSync(f, c);
    return f;
  });
  const ro = mesh.pki.operators.readonly;
  return ['status', '--etcd', mesh.etcd!.endpoint, '--ca', mesh.pki.root.certPath, '--cert', ro.chainPath, '--key', ro.keyPath, '--cluster', mesh.pki.cluster, '--crls', crls.join(','), ...extra];
}

const status = (extra: string[] = []) => {
  const r = runProgram('themis-admin', args(['--json', ...extra]));
  if (r.status !== 0 && r.status !== 1) throw new Error(r.stderr);
  return { code: r.status, s: JSON.parse(r.stdout) as ClusterStatus };
};

async function until(what: string, f: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

t.test('a healthy cluster: every shard alive at the published epoch, the token space shared out, no warnings', async (t) => {
  // Each sidecar reports its epoch and followers every 2 s.
  await until('every sidecar to report following at the epoch', () => {
    const { s } = status();
    return s.shards.length === 3 && s.shards.every((x) => x.alive && x.epoch === s.epoch && Object.values(x.replication ?? {}).every((f) => f.state === 'following') && x.replication !== null);
  });
  const { code, s } = status();
  t.equal(code, 0, `no warnings: ${s.warnings.join('; ')}`);
  t.equal(s.topology, 'verified');
  t.equal(s.epoch, mesh.topology.epoch);
  t.same(s.shards.map((x) => x.shard), mesh.nodes.map((n) => n.shard.id));
  const total = s.shards.reduce((n, x) => n + x.token_share, 0);
  t.ok(Math.abs(total - 1) < 1e-5, `token shares add up to 1 (${total})`);
  for (const x of s.shards) {
    t.ok(x.ranges > 0 && x.replica_ranges > 0, `${x.shard} owns ${x.ranges} ranges and replicates ${x.replica_ranges}`);
    t.equal(x.lagging, false);
    t.ok(x.cert_days_left! > 300, `${x.shard}'s certificate: ${x.cert_days_left} days left`);
  }
  t.same(s.crls, [], 'no CRL in etcd yet');
  const admin = mesh.pki.operators.admin;
  const pub = runProgram('themis-admin', ['crl', 'publish', '--ca', 'client', '--pki', mesh.pki.dir, '--etcd', mesh.etcd!.endpoint, '--cert', admin.chainPath, '--key', admin.keyPath, '--cluster', mesh.pki.cluster]);
  t.equal(pub.status, 0, pub.stderr);
  const crls = status().s.crls;
  t.same(crls.map((c) => [c.name, c.stale]), [['client', false]], 'a published CRL is listed, fresh');
  t.ok(Date.parse(crls[0]!.next_update!) > Date.now(), `its nextUpdate: ${crls[0]!.next_update}`);
  t.same(s.moves, []);
  const text = runProgram('themis-admin', args([]));
  t.equal(text.status, 0);
  for (const n of mesh.nodes) t.match(text.stdout, new RegExp(`^${n.shard.id}\\s+yes\\s+${s.epoch}\\s`, 'm'), `${n.shard.id} on its line`);
  t.match(text.stdout, 'warnings: none');
});

t.test('certificates inside --expiring-days are flagged, and the status exits 1', async (t) => {
  const { code, s } = status(['--expiring-days', '400']);
  t.equal(code, 1);
  t.ok(s.shards.every((x) => x.cert_expiring), 'one-year certificates expire within 400 days');
  t.equal(s.warnings.filter((w) => w.includes('certificate expires')).length, 3);
});

t.test('--watch --json draws the status again and again until interrupted', async (t) => {
  let child: import('node:child_process').ChildProcess | undefined;
  let lines = 0;
  const run = runProgramAsync('themis-admin', args(['--json', '--watch', '--every', '300']), { timeoutMs: 20_000, child: (c) => {
    child = c;
    c.stdout!.on('data', (d: Buffer) => (lines += d.toString().split('\n').length - 1));
  } });
  // Interrupted once it has drawn a few times (a fixed wait drew only once on a loaded machine).
  const end = Date.now() + 15_000;
  while (lines < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  child!.kill('SIGINT');
  const r = await run;
  const docs = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as ClusterStatus);
  t.ok(docs.length >= 2, `${docs.length} documents`);
  t.ok(docs.every((d) => d.epoch === mesh.topology.epoch && d.shards.length === 3));
  t.equal(r.status, 0, `stopped cleanly on SIGINT: ${r.stderr}`);
});

t.test('a stopped sidecar is shown not alive, with a warning', async (t) => {
  await mesh.stopSidecar(2);
  t.teardown(() => mesh.startSidecar(2));
  const id = mesh.nodes[2]!.shard.id;
  await until(`${id} to lose its lease`, () => status().s.shards.find((x) => x.shard === id)?.alive === false);
  const { code, s } = status();
  t.equal(code, 1);
  t.ok(s.warnings.includes(`${id} is not alive (no lease)`), s.warnings.join('; '));
});
