// etcd least privilege against a real etcd: themis-admin etcd rbac apply, then each identity
// tried with stock etcdctl, as an attacker holding that certificate would.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPkiFixture, type LeafMaterial, type PkiFixture } from '../support/pki-fixture.js';
import { startEtcd, type EtcdProcess } from '../../scripts/etcd-process.js';
import { runProgram } from '../support/cli.js';

let pki: PkiFixture;
let etcd: EtcdProcess;
const dir = mkdtempSync(join(tmpdir(), 'themis-etcd-rbac-'));
t.before(async () => {
  pki = await createPkiFixture({ shards: 3 });
  etcd = await startEtcd({ cert: pki.etcd.chainPath, key: pki.etcd.keyPath, ca: pki.root.certPath });
});
t.teardown(async () => {
  await etcd?.stop();
  rmSync(dir, { recursive: true, force: true });
  await pki?.cleanup();
});

const crls = () =>
  pki.crls().map((c, i) => {
    const f = join(dir, `crl-${i}.pem`);
    writeFileSync(f, c);
    return f;
  });
const rbac = (sub: 'apply' | 'plan', who: LeafMaterial, certs: string[]) =>
  runProgram('themis-admin', ['etcd', 'rbac', sub, '--cluster', pki.cluster, '--etcd', etcd.endpoint, '--ca', pki.root.certPath, '--crls', crls().join(','), '--operator-cert', who.chainPath, '--operator-key', who.keyPath, ...certs]);
const as = (who: LeafMaterial) => (args: string[]) => etcd.etcdctl({ cert: who.chainPath, key: who.keyPath, ca: pki.root.certPath }, args);
const key = (rest: string) => `/themis/${pki.cluster}/${rest}`;

t.test('rbac apply: each certificate gets only its own rights, tried with etcdctl', async (t) => {
  const s1 = pki.shards[0]!;
  const s2 = pki.shards[1]!;
  // Before: every certificate under the root may write anything (the finding this fixes).
  t.equal(as(pki.clients.readWrite)(['put', key('topology'), 'garbage']).status, 0, 'before: a client writes the topology');

  const refused = rbac('apply', pki.operators.readonly, []);
  t.equal(refused.status, 2, refused.stderr);
  t.match(refused.stderr, /lacks the admin capability/);

  const certs = [...pki.shards.map((s) => s.chainPath), pki.operators.readonly.chainPath, pki.clients.readWrite.chainPath];
  const first = rbac('apply', pki.operators.admin, certs);
  t.equal(first.status, 0, first.stdout + first.stderr);
  t.match(first.stdout, new RegExp(`user ${s1.id}\\.themis\\.local: themis\\.${pki.cluster}\\.read, themis\\.${pki.cluster}\\.shard\\.${s1.id}, themis\\.${pki.cluster}\\.shards`));
  t.match(first.stdout, /user readonly\.operator\.themis\.local: themis\.[a-z-]+\.read\b/);
  t.notMatch(first.stdout, /app-rw/, 'a client gets no user');
  t.match(first.stdout, /authentication enabled|applied \d+ changes/);

  const client = as(pki.clients.readWrite);
  t.not(client(['get', key('topology')]).status, 0, 'a client cannot read');
  t.not(client(['put', key('topology'), 'x']).status, 0, 'a client cannot write the topology');
  t.not(client(['put', key(`shards/${s1.id}/endpoint`), 'x']).status, 0, 'a client cannot write a registration');

  const shard = as(s1);
  t.equal(shard(['put', key(`shards/${s1.id}/endpoint`), '{"host":"127.0.0.1","port":1}']).status, 0, 'a shard writes its own registration');
  t.equal(shard(['get', key(`shards/${s2.id}/`), '--prefix']).status, 0, 'a shard reads the others');
  const other = shard(['put', key(`shards/${s2.id}/endpoint`), '{"host":"10.9.9.9","port":1}']);
  t.not(other.status, 0, 'a shard cannot write another shard’s registration');
  t.match(other.stderr, /permission denied/);
  t.not(shard(['put', key('crl/operator'), 'x']).status, 0, 'a shard cannot write CRLs');
  t.not(shard(['put', key('rebalance/op-1'), 'x']).status, 0, 'a shard cannot write rebalance orders');
  t.not(shard(['put', key('rebalance-abort/op-1'), 'x']).status, 0, '… nor aborts');
  t.not(shard(['put', '/elsewhere', 'x']).status, 0, 'nor anything outside the cluster');
  t.equal(shard(['put', key(`rebalance-status/op-1/${s1.id}`), '{}']).status, 0, 'a shard reports its status');

  const readonly = as(pki.operators.readonly);
  t.equal(readonly(['get', key('topology')]).status, 0, 'a read-only operator reads');
  t.not(readonly(['put', key('topology'), 'x']).status, 0, 'a read-only operator cannot write the topology');
  t.not(readonly(['del', key(`shards/${s1.id}/endpoint`)]).status, 0, '… nor delete a registration');

  const admin = as(pki.operators.admin);
  t.equal(admin(['put', key('rebalance/op-2'), '{}']).status, 0, 'an admin operator writes rebalance orders');
  t.equal(admin(['user', 'list']).status, 0, 'an admin operator holds etcd’s root role');

  const again = rbac('apply', pki.operators.admin, certs);
  t.equal(again.status, 0, again.stderr);
  t.match(again.stdout, /nothing to change/, 'apply is idempotent');
});

t.test('reading the topology, registrations or rebalance status with themis-admin needs view_topology', async (t) => {
  const { operatorProfile } = await import('../../src/pki/profiles.js');
  const mover = await pki.issue(operatorProfile({ name: 'mover-only', capabilities: ['rebalance'] }), 'mover-only');
  const common = ['--cluster', pki.cluster, '--etcd', etcd.endpoint, '--ca', pki.root.certPath];
  const commands = (who: LeafMaterial) => [
    ['topology', 'show', ...common, '--crls', crls().join(','), '--cert', who.chainPath, '--key', who.keyPath],
    ['shards', ...common, '--crls', crls().join(','), '--cert', who.chainPath, '--key', who.keyPath],
    ['rebalance', 'status', ...common, '--cert', who.chainPath, '--key', who.keyPath],
  ];
  for (const [who, what] of [[pki.clients.readWrite, /a client certificate, not an operator's with view_topology/], [pki.shards[0]!, /a primary certificate, not an operator's/], [mover, /an operator certificate without view_topology/]] as const) {
    for (const args of commands(who)) {
      const r = runProgram('themis-admin', args);
      t.equal(r.status, 2, `${args.slice(0, 2).join(' ')} as ${who.chainPath}`);
      t.match(r.stderr, what);
    }
  }
  const ok = runProgram('themis-admin', commands(pki.operators.readonly)[2]!);
  t.equal(ok.status, 0, ok.stderr);
});
