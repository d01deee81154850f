import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPkiFixture, type PkiFixture } from '../support/pki-fixture.js';
import { startEtcd, type EtcdProcess } from '../../scripts/etcd-process.js';
import { runProgram } from '../support/cli.js';

let pki: PkiFixture;
let foreign: PkiFixture;
let etcd: EtcdProcess;
const dir = mkdtempSync(join(tmpdir(), 'themis-etcd-topo-'));
t.before(async () => {
  pki = await createPkiFixture({ shards: 3 });
  foreign = await createPkiFixture({ shards: 1 });
  // etcd serves with a certificate from our cluster CA and requires client certificates.
  etcd = await startEtcd({ cert: pki.etcd.chainPath, key: pki.etcd.keyPath, ca: pki.root.certPath });
});
t.teardown(async () => {
  await etcd?.stop();
  rmSync(dir, { recursive: true, force: true });
  await pki?.cleanup();
  await foreign?.cleanup();
});

t.test('etcd over mTLS: our certificates get in, no certificate or a foreign one does not', async (t) => {
  const admin = { cert: pki.operators.admin.chainPath, key: pki.operators.admin.keyPath, ca: pki.root.certPath };
  t.equal(etcd.etcdctl(admin, ['put', '/themis/probe', 'x']).status, 0);
  const f = foreign.operators.admin;
  t.not(etcd.etcdctl({ cert: f.chainPath, key: f.keyPath, ca: pki.root.certPath }, ['get', '/themis/probe']).status, 0, 'foreign CA refused');
});

const crlFiles = () =>
  pki.crls().map((c, i) => {
    const file = join(dir, `crl-${i}.pem`);
    writeFileSync(file, c);
    return file;
  });
const plan = (t: Test, epoch: number) => {
  const file = join(dir, `plan-${epoch}.json`);
  const r = runProgram('themis-admin', ['topology', 'plan', '--shards', 'shard-001,shard-002,shard-003', '--cluster', pki.cluster, '--epoch', String(epoch), '--sample', '0', '--out', file, '--force']);
  t.equal(r.status, 0, r.stderr);
  return file;
};
const publish = (file: string, who = pki.operators.admin, ...more: string[]) =>
  runProgram('themis-admin', ['topology', 'publish', '--plan', file, '--cluster', pki.cluster, ...more, '--operator-cert', who.chainPath, '--operator-key', who.keyPath, '--etcd', etcd.endpoint, '--ca', pki.root.certPath, '--crls', crlFiles().join(',')]);
const topologyKey = () => `/themis/${pki.cluster}/topology`;

t.test('publish signs and writes with a compare-and-swap on the epoch; show verifies; etcdctl can read it', async (t) => {
  const crls = crlFiles();
  const show = () =>
    runProgram('themis-admin', ['topology', 'show', '--etcd', etcd.endpoint, '--ca', pki.root.certPath, '--cert', pki.operators.readonly.chainPath, '--key', pki.operators.readonly.keyPath, '--cluster', pki.cluster, '--crls', crls.join(',')]);

  const first = publish(plan(t, 3));
  t.equal(first.status, 0, first.stderr);
  t.match(first.stdout, /published epoch 3 of cluster/);
  const older = publish(plan(t, 2));
  t.equal(older.status, 1, 'an older epoch is refused');
  t.match(older.stderr, /epoch 2 is not newer than the published epoch 3; plan with --epoch 4/);
  t.equal(publish(plan(t, 4)).status, 0, 'a newer one replaces it');
  const s = show();
  t.equal(s.status, 0, s.stdout + s.stderr);
  t.match(s.stdout, /epoch 4, 3 shards, \d+ ranges; signed by .*admin.*; verified/);
  const raw = etcd.etcdctl({ cert: pki.operators.readonly.chainPath, key: pki.operators.readonly.keyPath, ca: pki.root.certPath }, ['get', `/themis/${pki.cluster}/topology`, '--print-value-only']);
  t.equal(raw.status, 0);
  const stored = JSON.parse(raw.stdout);
  t.match(JSON.parse(stored.document), { cluster: pki.cluster, epoch: 4 });
  t.match(stored.cms, /^[A-Za-z0-9+/]+=*$/);
  // An attacker with etcd access writes an unsigned topology straight into etcd: show refuses it.
  const attacker = { cert: pki.shards[0]!.chainPath, key: pki.shards[0]!.keyPath, ca: pki.root.certPath };
  t.equal(etcd.etcdctl(attacker, ['put', `/themis/${pki.cluster}/topology`, JSON.stringify({ ...stored, document: stored.document.replace('"epoch": 4', '"epoch": 5') })]).status, 0);
  const refused = show();
  t.equal(refused.status, 1);
  t.match(refused.stdout, /REFUSED \(bad_signature\)/);
});

t.test('a forged value in etcd cannot block publishing, and what publish suggests is accepted by plan', async (t) => {
  const attacker = { cert: pki.shards[0]!.chainPath, key: pki.shards[0]!.keyPath, ca: pki.root.certPath };
  // A well-formed topology with the highest epoch there is and a made-up signature, written straight into etcd.
  const document = readFileSync(plan(t, 1), 'utf8').replace(/"epoch": 1\b/, `"epoch": ${Number.MAX_SAFE_INTEGER}`);
  t.match(document, String(Number.MAX_SAFE_INTEGER));
  const forged = JSON.stringify({ document, cms: Buffer.from('not a signature').toString('base64') });
  t.equal(etcd.etcdctl(attacker, ['put', topologyKey(), forged]).status, 0);
  const replaced = publish(plan(t, 10));
  t.equal(replaced.status, 0, replaced.stderr);
  t.match(replaced.stderr, /warning: the value stored at .*topology did not verify \((malformed|bad_signature)[^)]*\); it was replaced, not trusted/);
  t.match(replaced.stdout, /published epoch 10 of cluster/);
  // Not newer: the advice names an epoch that plan accepts, and that publish then takes.
  const older = publish(plan(t, 9));
  t.equal(older.status, 1);
  const advised = /plan with --epoch (\d+)/.exec(older.stderr);
  t.ok(advised, older.stderr);
  const next = publish(plan(t, Number(advised![1])));
  t.equal(next.status, 0, next.stderr);
  // Over a value that does not verify, the epoch the shards report serving is the floor (two
  // shards' status reports, written here as those shards; no sidecar runs in this test).
  for (const i of [1, 2]) {
    const s = pki.shards[i]!;
    t.equal(etcd.etcdctl({ cert: s.chainPath, key: s.keyPath, ca: pki.root.certPath }, ['put', `/themis/${pki.cluster}/shards/${s.id}/replication`, JSON.stringify({ topology_epoch: 30 })]).status, 0);
  }
  t.equal(etcd.etcdctl(attacker, ['put', topologyKey(), forged]).status, 0, 'the forged value written again');
  const belowFloor = publish(plan(t, 20));
  t.equal(belowFloor.status, 1, 'an epoch the shards would refuse as not newer is not published');
  t.match(belowFloor.stderr, /epoch 20 is not newer than epoch 30, which the shards serve .*plan with --epoch 31/);
  const above = publish(plan(t, 31));
  t.equal(above.status, 0, above.stderr);
  for (const i of [1, 2]) {
    const s = pki.shards[i]!;
    etcd.etcdctl({ cert: s.chainPath, key: s.keyPath, ca: pki.root.certPath }, ['del', `/themis/${pki.cluster}/shards/${s.id}/replication`]);
  }
  // Two publishers of the same epoch at once: exactly one wins.
  const file = plan(t, 40);
  const { runProgramAsync } = await import('../support/cli.js');
  const both = await Promise.all([0, 1].map(() => runProgramAsync('themis-admin', ['topology', 'publish', '--plan', file, '--cluster', pki.cluster, '--operator-cert', pki.operators.admin.chainPath, '--operator-key', pki.operators.admin.keyPath, '--etcd', etcd.endpoint, '--ca', pki.root.certPath, '--crls', crlFiles().join(',')])));
  t.same(both.map((r) => r.status).sort(), [0, 1], both.map((r) => r.stderr).join(' | '));
});

t.test('publish checks every registered shard\'s certified token range', async (t) => {
  const s2 = pki.shards[1]!;
  const admin = { cert: pki.operators.admin.chainPath, key: pki.operators.admin.keyPath, ca: pki.root.certPath };
  // shard-002 registered with its certificate (a narrow range); the ring gives it tokens all over.
  t.equal(etcd.etcdctl(admin, ['put', `/themis/${pki.cluster}/shards/${s2.id}/certificate`, JSON.stringify({ cert_pem: s2.chain })]).status, 0);
  // Values a shard may write under its own prefix, 4.2 MB in all (past gRPC's 4 MB answer
  // limit): the check reads only the certificates, so they cannot switch it off.
  const { connectEtcd } = await import('../../src/control/etcd.js');
  const client = connectEtcd({ endpoints: [etcd.endpoint], certPem: pki.operators.admin.chain, keyPem: pki.operators.admin.key, caPem: pki.root.cert });
  for (let i = 0; i < 3; i++) await client.put(`/themis/${pki.cluster}/shards/${s2.id}/junk-${i}`).value('x'.repeat(1_400_000));
  const r = publish(plan(t, 50));
  t.equal(r.status, 1, 'refused');
  t.match(r.stderr, new RegExp(`refused \\(range_not_certified\\): ${s2.id} is given tokens`));
  for (let i = 0; i < 3; i++) await client.delete().key(`/themis/${pki.cluster}/shards/${s2.id}/junk-${i}`);
  client.close();
  t.equal(etcd.etcdctl(admin, ['del', `/themis/${pki.cluster}/shards/${s2.id}/certificate`]).status, 0);
  t.equal(publish(plan(t, 50)).status, 0, 'unregistered, it is left to the shard itself');
});

t.test('publish refuses a plan of another cluster, and one that strands data unless told it knows', async (t) => {
  const other = join(dir, 'other-cluster.json');
  t.equal(runProgram('themis-admin', ['topology', 'plan', '--shards', 'shard-001,shard-002,shard-003', '--cluster', 'cluster-dev', '--epoch', '60', '--sample', '0', '--out', other]).status, 0);
  const wrong = publish(other);
  t.equal(wrong.status, 2);
  t.match(wrong.stderr, /is a topology of cluster "cluster-dev", but the target is cluster "cluster-test"/);
  const noTarget = runProgram('themis-admin', ['topology', 'publish', '--plan', other, '--operator-cert', pki.operators.admin.chainPath, '--operator-key', pki.operators.admin.keyPath, '--etcd', etcd.endpoint, '--ca', pki.root.certPath]);
  t.equal(noTarget.status, 2, 'no target cluster at all is a usage error');
  t.match(noTarget.stderr, /--cluster is required/);
  // A fourth shard in the ring takes ranges from the other three, which hold their data.
  const grown = join(dir, 'grown.json');
  t.equal(runProgram('themis-admin', ['topology', 'plan', '--shards', 'shard-001,shard-002,shard-003,shard-004', '--cluster', pki.cluster, '--epoch', '60', '--sample', '0', '--out', grown]).status, 0);
  const stranded = publish(grown);
  t.equal(stranded.status, 1, 'refused');
  t.match(stranded.stderr, /refused \(data_stranded\): this topology gives \d+ range\(s\) \([\d.]+% of the token space\) to shards that hold no copy of them \(0x[0-9a-f]{16}-0x[0-9a-f]{16} shard-00[123] → shard-004/);
  t.match(stranded.stderr, /--i-know-data-is-stranded/);
  const forced = publish(grown, pki.operators.admin, '--i-know-data-is-stranded');
  t.equal(forced.status, 0, forced.stderr);
  t.match(forced.stdout, /published epoch 60/);
});

t.test('themis-admin dials etcd by IP without Node\'s DEP0123 warning, and still checks that IP against etcd\'s certificate', async (t) => {
  const show = (endpoint: string) =>
    runProgram('themis-admin', ['topology', 'show', '--etcd', endpoint, '--ca', pki.root.certPath, '--cert', pki.operators.readonly.chainPath, '--key', pki.operators.readonly.keyPath, '--cluster', pki.cluster, '--crls', crlFiles().join(',')]);
  const ok = show(etcd.endpoint);
  t.equal(ok.status, 0, ok.stderr);
  t.notMatch(ok.stderr, /DEP0123|ServerName/, 'no warning');
  // A TLS server at 127.0.0.1 with a valid certificate from our cluster CA that names 127.0.0.9, not 127.0.0.1.
  const { serverProfile } = await import('../../src/pki/profiles.js');
  const { createServer } = await import('node:tls');
  const other = await pki.issue(serverProfile({ name: 'etcd-elsewhere', dns: ['etcd-elsewhere.example'], ips: ['127.0.0.9'] }), 'etcd-elsewhere');
  let handshakes = 0;
  const impostor = createServer({ cert: other.chain, key: other.key, ALPNProtocols: ['h2'] }, (s) => s.destroy());
  impostor.on('tlsClientError', () => handshakes++);
  impostor.on('secureConnection', () => handshakes++);
  await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', r));
  t.teardown(() => void impostor.close());
  const port = (impostor.address() as { port: number }).port;
  // Asynchronously: the impostor lives in this process, whose event loop spawnSync would block.
  const { runProgramAsync } = await import('../support/cli.js');
  const refused = await runProgramAsync('themis-admin', ['topology', 'show', '--etcd', `https://127.0.0.1:${port}`, '--ca', pki.root.certPath, '--cert', pki.operators.readonly.chainPath, '--key', pki.operators.readonly.keyPath, '--cluster', pki.cluster, '--crls', crlFiles().join(',')], { timeoutMs: 30_000 });
  t.not(refused.status, 0, 'refused');
  t.ok(handshakes > 0, 'it did reach the server');
  t.match(refused.stderr, /IP: 127\.0\.0\.1 is not in the cert's list: 127\.0\.0\.9/, 'refused for the IP the certificate does not name');
});
