import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../support/cli.js';
import { createPkiFixture } from '../support/pki-fixture.js';
import { debianTool } from '../../scripts/debian-tool.js';
import { etcdctlPath } from '../../scripts/etcd-process.js';
import { reservePorts } from '../../scripts/ports.js';
import { writeEtcdCrlFile } from '../../src/control/etcd-crl-file.js';

t.test('the example etcd member environment starts a TLS etcd that demands unrevoked client certificates', async (t) => {
  const pki = await createPkiFixture({ shards: 2 });
  const dir = mkdtempSync(join(tmpdir(), 'themis-etcd-conf-'));
  t.teardown(async () => {
    rmSync(dir, { recursive: true, force: true });
    await pki.cleanup();
  });
  const [client, peer] = await reservePorts([{ host: '127.0.0.1' }, { host: '127.0.0.1' }]);
  const crlFile = join(dir, 'revoked.crl');
  // The CAs whose certificates are etcd users, as the file's comment says to make it.
  const clientCas = join(dir, 'etcd-client-cas.pem');
  writeFileSync(clientCas, pki.cas.cluster.cert + pki.cas.operator.cert);
  // The shipped file, made a one-member cluster on loopback with the fixture's certificates.
  const text = readFileSync(join(ROOT, 'deploy/etcd/etcd-member-1.env'), 'utf8')
    .replaceAll('10.0.0.21:2379', `127.0.0.1:${client}`)
    .replaceAll('10.0.0.21:2380', `127.0.0.1:${peer}`)
    .replace(/^ETCD_INITIAL_CLUSTER=.*$/m, `ETCD_INITIAL_CLUSTER=etcd-1=https://127.0.0.1:${peer}`)
    .replace('/var/lib/themis/etcd', join(dir, 'data'))
    .replaceAll('/var/lib/themis/etcd-crl/revoked.crl', crlFile)
    .replaceAll('/etc/themis/etcd/pki/chain.pem', pki.etcd.chainPath)
    .replaceAll('/etc/themis/etcd/pki/key.pem', pki.etcd.keyPath)
    .replaceAll('/etc/themis/etcd/pki/client-cas.pem', clientCas)
    .replaceAll('/etc/themis/pki/root.pem', pki.root.certPath)
    .replace('ETCD_LOG_LEVEL=info', 'ETCD_LOG_LEVEL=error');
  // As systemd's EnvironmentFile reads it: KEY=VALUE lines, comments and blank lines skipped.
  const env = Object.fromEntries(text.split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  t.ok(env.ETCD_CLIENT_CRL_FILE, 'it names a client CRL file');
  // The shard-002's serial is on the list etcd reads (the file themis-admin etcd crl-file writes).
  await writeEtcdCrlFile(crlFile, [{ serial: pki.shards[1]!.serial, revokedAt: new Date() }], new Date());
  const etcd = spawn(debianTool('etcd', 'etcd-server'), [], { stdio: 'ignore', env: { PATH: process.env.PATH, ...env } });
  t.teardown(() => void etcd.kill('SIGKILL'));
  const ctl = (who: { chainPath: string; keyPath: string } | undefined) =>
    spawnSync(etcdctlPath(), ['--endpoints', `https://127.0.0.1:${client}`, '--cacert', pki.root.certPath, ...(who ? ['--cert', who.chainPath, '--key', who.keyPath] : []), '--dial-timeout', '2s', 'endpoint', 'health'], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });
  let healthy = false;
  for (let i = 0; i < 60 && !healthy; i++) {
    healthy = ctl(pki.shards[0]!).status === 0;
    if (!healthy) await new Promise((r) => setTimeout(r, 250));
  }
  t.ok(healthy, 'a shard certificate gets in');
  t.not(ctl(undefined).status, 0, 'no client certificate: refused');
  t.not(ctl(pki.shards[1]!).status, 0, 'a revoked certificate: refused');
  t.equal(ctl(pki.operators.readonly).status, 0, 'an operator certificate gets in');
  t.not(ctl(pki.clients.readWrite).status, 0, 'a client app\'s certificate (client CA): refused');
});
