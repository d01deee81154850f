// etcd's own --client-crl-file, kept by themis-admin etcd crl-file from the CRLs in etcd: a
// revoked operator cannot connect to etcd at all, tried with stock etcdctl.
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPkiFixture, type LeafMaterial, type PkiFixture } from '../support/pki-fixture.js';
import { startEtcd, type EtcdProcess } from '../../scripts/etcd-process.js';
import { runProgram, runProgramAsync } from '../support/cli.js';
import { operatorProfile } from '../../src/pki/profiles.js';

let pki: PkiFixture;
let etcd: EtcdProcess;
const dir = mkdtempSync(join(tmpdir(), 'themis-etcd-crl-file-'));
const crlFile = join(dir, 'revoked.crl');
t.before(async () => {
  pki = await createPkiFixture({ shards: 1 });
});
t.teardown(async () => {
  await etcd?.stop();
  rmSync(dir, { recursive: true, force: true });
  await pki?.cleanup();
});

const as = (who: LeafMaterial) => (args: string[]) => etcd.etcdctl({ cert: who.chainPath, key: who.keyPath, ca: pki.root.certPath }, args);
const reader = () => ['--cluster', pki.cluster, '--etcd', etcd.endpoint, '--ca', pki.root.certPath, '--cert', pki.operators.readonly.chainPath, '--key', pki.operators.readonly.keyPath];

async function publishOperatorCrl(t: Test): Promise<void> {
  const file = join(dir, 'operator.crl.pem');
  writeFileSync(file, pki.cas.operator.crl);
  const admin = pki.operators.admin;
  const r = runProgram('themis-admin', ['crl', 'publish', '--ca', 'operator', '--pki', pki.dir, '--file', file, '--etcd', etcd.endpoint, '--cert', admin.chainPath, '--key', admin.keyPath, '--cluster', pki.cluster]);
  t.equal(r.status, 0, r.stderr);
}

t.test('a revoked operator cannot reach etcd once the CRL is published and the file written', async (t) => {
  const empty = runProgram('themis-admin', ['etcd', 'crl-file', '--empty', '--out', crlFile]);
  t.equal(empty.status, 0, empty.stderr);
  const asText = spawnSync('openssl', ['crl', '-inform', 'DER', '-in', crlFile, '-noout', '-issuer'], { encoding: 'utf8' });
  t.match(asText.stdout, /not a CA CRL/, 'openssl reads it, and its issuer says what it is');
  etcd = await startEtcd({ cert: pki.etcd.chainPath, key: pki.etcd.keyPath, ca: pki.root.certPath, crlFile });

  const leaver = await pki.issue(operatorProfile({ name: 'leaver', capabilities: ['view_topology'] }), 'leaver');
  t.equal(as(leaver)(['get', '/themis/x']).status, 0, 'before: the operator reaches etcd');

  // Follow the CRLs as the etcd host's service would.
  let watcherOut = '';
  const watching = runProgramAsync('themis-admin', ['etcd', 'crl-file', '--out', crlFile, '--watch', ...reader()], {
    child: (c) => {
      c.stdout?.on('data', (d: Buffer) => (watcherOut += d.toString()));
      t.teardown(() => void c.kill('SIGTERM'));
    },
  });
  await pki.revoke(leaver.serial);
  await publishOperatorCrl(t);
  const deadline = Date.now() + 20_000;
  while (!/wrote .* 1 revoked serials/.test(watcherOut) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  t.match(watcherOut, /wrote .*revoked\.crl: 1 revoked serials/, 'the watcher rewrote the file');

  const refused = as(leaver)(['get', '/themis/x']);
  t.not(refused.status, 0, 'after: the revoked operator cannot connect');
  t.equal(as(pki.operators.readonly)(['get', '/themis/x']).status, 0, 'others still can');

  const once = runProgram('themis-admin', ['etcd', 'crl-file', '--out', crlFile, ...reader()]);
  t.equal(once.status, 0, once.stderr);
  t.match(once.stdout, /1 revoked serials/, 'one-shot mode writes the same list');
  void watching;
});
