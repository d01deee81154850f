// A cluster from nothing, as an operator builds it: themis-admin cluster init for three loopback
// "hosts" (127.0.0.11–13), each bundle copied to its host's root, every unit's ExecStart run as
// systemd would run it (programs found on PATH, as the install step leaves them): a three-member
// etcd from the generated configs, the CRL followers, storage nodes and sidecars. The first
// topology is published through the operator context; a write through one host is read back
// through another; themis-admin check is green, and red with a fix when a storage node is down.
import t from 'tap';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { debianTool } from '../../scripts/debian-tool.js';
import { PROGRAMS, ROOT, runProgram, runProgramAsync } from '../support/cli.js';
import { call } from '../support/storage-process.js';
import { startUnit, type UnitProcess } from '../support/systemd-unit.js';
import { randomUUID } from 'node:crypto';

const dir = mkdtempSync(join(tmpdir(), 'themis-bootstrap-'));
const running: UnitProcess[] = [];
t.teardown(async () => {
  await Promise.all(running.map((u) => u.stop('SIGKILL')));
  rmSync(dir, { recursive: true, force: true });
});

// The install step: the programs on PATH (docs: npm install -g, or these symlinks).
const bin = join(dir, 'bin');
mkdirSync(bin);
for (const [name, main] of Object.entries({ ...PROGRAMS, 'themis-sidecar': 'dist/proxy/main.js' })) {
  chmodSync(join(ROOT, main), 0o755);
  symlinkSync(join(ROOT, main), join(bin, name));
}
symlinkSync(debianTool('etcd', 'etcd-server'), join(bin, 'etcd'));
const PATH = [bin, dirname(process.execPath), '/usr/local/bin', '/usr/bin', '/bin'].join(':');

const hosts = ['shard-001', 'shard-002', 'shard-003'];
const ip = (i: number) => `127.0.0.${11 + i}`;
const op = join(dir, 'operator');
const offline = join(dir, 'usb');
const hostRoot = (id: string) => join(dir, 'hosts', id);
const env = { THEMIS_CONFIG: join(op, 'admin.json'), THEMIS_PKI_PASSPHRASE: 'correct horse battery staple', PATH };
const admin = (args: string[]) => runProgram('themis-admin', args, { env: { ...process.env, ...env } });
const unit = (id: string, name: string) => join(hostRoot(id), 'etc/systemd/system', name);
const start = (id: string, name: string) => {
  const u = startUnit(unit(id, name), { path: PATH, name: `${id} ${name}` });
  running.push(u);
  return u;
};

t.test('cluster init writes the PKI, the offline root key, the topology, the context and one bundle per host', async (t) => {
  const r = admin(['cluster', 'init', '--cluster', 'cluster-prod', '--hosts', hosts.map((h, i) => `${h}=${ip(i)}`).join(','), '--out', op, '--offline-dir', offline, '--install-root', join(dir, 'hosts', '{shard}'), '--kdf-iterations', '1000']);
  t.equal(r.status, 0, r.stderr);
  t.notMatch(r.stdout + r.stderr, /PRIVATE KEY|correct horse/, 'no secret printed');
  t.ok(existsSync(join(offline, 'root-key.pem')), 'the root key in the offline folder');
  t.notOk(existsSync(join(op, 'pki/root/key.pem')), 'and nowhere in the operator folder');
  t.equal(statSync(join(offline, 'root-key.pem')).mode & 0o777, 0o600);
  t.match(readFileSync(join(offline, 'root-key.pem'), 'utf8'), /ENCRYPTED PRIVATE KEY/, 'encrypted');
  for (const [i, id] of hosts.entries()) {
    const bundle = join(op, 'hosts', id);
    t.equal(statSync(join(bundle, 'etc/themis/pki/shard/key.pem')).mode & 0o777, 0o600, `${id}: shard key 0600`);
    t.equal(statSync(join(bundle, 'etc/themis/etcd/pki/key.pem')).mode & 0o777, 0o600, `${id}: etcd member key 0600`);
    t.match(readFileSync(join(bundle, 'etc/themis/etcd/etcd.env'), 'utf8'), new RegExp(`ETCD_LISTEN_PEER_URLS=https://${ip(i).replaceAll('.', '\\.')}:2380`));
    // "Copy the bundle to the host": here, its install root.
    cpSync(bundle, hostRoot(id), { recursive: true });
  }
  const inspect = runProgram('themis-pki', ['inspect', join(hostRoot('shard-002'), 'etc/themis/etcd/pki/chain.pem')]);
  t.match(inspect.stdout, /127\.0\.0\.12/, 'the etcd member certificate names its address');
});

t.test('etcd from the generated configs, the first topology published through the context, the services from their units', async (t) => {
  const members = hosts.map((id) => start(id, 'themis-etcd.service'));
  // Members find each other; publishing (the context names all three) succeeds once they have a leader.
  let published = admin(['topology', 'publish', '--plan', join(op, 'topology.json')]);
  for (let i = 0; published.status !== 0 && i < 40; i++) {
    await new Promise((r) => setTimeout(r, 500));
    published = admin(['topology', 'publish', '--plan', join(op, 'topology.json')]);
  }
  t.equal(published.status, 0, published.stderr + members.map((m) => m.stderr().slice(-1000)).join('\n'));
  t.match(published.stdout, /published epoch 1 of cluster cluster-prod/);
  for (const id of hosts) start(id, 'themis-etcd-crl.service');
  await Promise.all(hosts.map((id) => start(id, 'themis-storage.service').waitFor(/"event":"listening"/)));
  await Promise.all(hosts.map((id) => start(id, 'themis-sidecar.service').waitFor(/"event":"listening"/, 30_000)));
});

t.test('a write through one host is read back through another; themis-admin check is green', async (t) => {
  const key = `/entities/document.app.boot:${randomUUID()}`;
  const put = await call(`http://${ip(0)}:7080`, 'PUT', key, { blob: '{"hello":"bare metal"}' });
  t.equal(put.status, 201, put.text);
  const got = await call(`http://${ip(2)}:7080`, 'GET', key);
  t.equal(got.status, 200, got.text);
  t.match(got.text, /bare metal/);
  let check = await runProgramAsync('themis-admin', ['check', '--config', join(hostRoot('shard-001'), 'etc/themis/sidecar.json')], { env });
  // Every sidecar reports the epoch it serves every 2 s: the first reports may still be on their way.
  for (let i = 0; (check.status !== 0 || /\[warn\]/.test(check.stdout)) && i < 10; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    check = await runProgramAsync('themis-admin', ['check', '--config', join(hostRoot('shard-001'), 'etc/themis/sidecar.json')], { env });
  }
  t.equal(check.status, 0, check.stdout + check.stderr);
  for (const what of ['crl', 'certificate', 'etcd', 'topology', 'shard', 'clock', 'cache', 'storage']) t.match(check.stdout, new RegExp(`^\\[ok\\]\\s+${what}\\s`, 'm'), `${what} checked`);
  t.match(check.stdout, /all checks passed\n$/, 'and no warning');
});

t.test('check fails, with a fix, when a host\'s storage node is down or a cache cannot be written', async (t) => {
  const storage = running.find((u) => u.name === 'shard-003 themis-storage.service')!;
  await storage.stop();
  const config = join(hostRoot('shard-003'), 'etc/themis/sidecar.json');
  const cfg = JSON.parse(readFileSync(config, 'utf8'));
  cfg.etcd.topologyCache = join(dir, 'nowhere', 'topology-cache.json');
  const broken = join(dir, 'broken-sidecar.json');
  writeFileSync(broken, JSON.stringify({ ...cfg, tls: { ...cfg.tls, cert: join(hostRoot('shard-003'), 'etc/themis', cfg.tls.cert), key: join(hostRoot('shard-003'), 'etc/themis', cfg.tls.key), ca: join(hostRoot('shard-003'), 'etc/themis', cfg.tls.ca), crls: cfg.tls.crls.map((c: string) => join(hostRoot('shard-003'), 'etc/themis', c)) } }));
  const check = await runProgramAsync('themis-admin', ['check', '--config', broken], { env });
  t.equal(check.status, 1);
  t.match(check.stdout, /^\[FAIL\] storage\s+http:\/\/127\.0\.0\.13:8765: .*\n\s+fix: start it: systemctl start themis-storage/m);
  t.match(check.stdout, /^\[FAIL\] cache\s+etcd\.topologyCache .*nowhere.*: cannot write \(ENOENT\)\n\s+fix: /m);
  t.match(check.stdout, /2 checks failed/);
});

t.test('host add: one more host\'s bundle from the same PKI', async (t) => {
  const r = admin(['host', 'add', '--out', op, '--host', 'shard-004=127.0.0.14']);
  t.equal(r.status, 0, r.stderr);
  const bundle = join(op, 'hosts', 'shard-004');
  t.equal(statSync(join(bundle, 'etc/themis/pki/shard/key.pem')).mode & 0o777, 0o600);
  t.equal(JSON.parse(readFileSync(join(bundle, 'etc/themis/sidecar.json'), 'utf8')).mesh.host, '127.0.0.14');
  t.notOk(existsSync(join(bundle, 'etc/themis/etcd')), 'not an etcd member');
  const again = admin(['host', 'add', '--out', op, '--host', 'shard-004=127.0.0.15']);
  t.equal(again.status, 2);
  t.match(again.stderr, /shard-004 is already a host of cluster-prod/);
});
