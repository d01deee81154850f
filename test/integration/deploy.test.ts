import t from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../support/cli.js';
import { validateSidecarConfig } from '../../src/config/sidecar.js';
import { validateStorageConfig } from '../../src/config/storage.js';
import { SIDECAR_NODE_FLAGS } from '../../scripts/processes.js';

const units = ['themis-storage.service', 'themis-sidecar.service', 'themis-etcd-crl.service', 'themis-etcd.service', 'themis-pki-serve.service'];
const dir = mkdtempSync(join(tmpdir(), 'themis-units-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
for (const u of units) copyFileSync(join(ROOT, 'deploy/systemd', u), join(dir, u));
const verify = (...files: string[]) => spawnSync('systemd-analyze', ['verify', '--man=no', ...files.map((f) => `./${f}`)], { cwd: dir, encoding: 'utf8' });

t.test('the unit files pass systemd-analyze verify without a single warning', async (t) => {
  const r = verify(...units);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stderr.trim(), '', 'no warnings');
  // The check itself can fail: a misspelt directive is reported.
  writeFileSync(join(dir, 'broken.service'), readFileSync(join(dir, units[0]!), 'utf8').replace('NoNewPrivileges=yes', 'NoNewPrivilege=yes'));
  t.match(verify('broken.service').stderr, /Unknown key 'NoNewPrivilege'/);
});

t.test('the units run unprivileged and hardened, and the sidecar depends on its storage node', async (t) => {
  for (const u of units) {
    const text = readFileSync(join(dir, u), 'utf8');
    t.match(text, u === 'themis-etcd.service' ? /^User=etcd$/m : /^User=themis$/m, `${u}: its own unprivileged user`);
    for (const d of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'PrivateTmp=yes', 'Restart=on-failure', ...(u === 'themis-etcd.service' ? [] : ['CapabilityBoundingSet=\n', 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX'])]) {
      t.ok(text.includes(d), `${u}: ${d.trim()}`);
    }
    t.match(text, /^ReadWritePaths=\/var\/lib\/themis\//m, `${u}: writable data dir`);
  }
  const sidecar = readFileSync(join(dir, 'themis-sidecar.service'), 'utf8');
  t.match(sidecar, /^Requires=themis-storage\.service$/m);
  t.match(sidecar, /^After=themis-storage\.service/m);
  t.match(sidecar, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
  // Node is found through PATH, as npm install -g or the symlink step leaves it: no hard-coded path.
  for (const u of units.filter((u) => u !== 'themis-etcd.service')) t.match(readFileSync(join(dir, u), 'utf8'), /^ExecStart=\/usr\/bin\/env themis-(sidecar|storage|admin|pki) /m, `${u}: runs its program from PATH`);
  for (const u of units) t.notMatch(readFileSync(join(dir, u), 'utf8'), /^ExecStart=.*\/node\b/m, `${u}: no path to node`);
  t.notMatch(sidecar, /^Environment=.*PASS/m, 'not an environment variable');
  t.match(sidecar, /ReadWritePaths=.*\/var\/log\/themis/, 'audit dir writable');
});

t.test('the sidecar unit runs Node with the V8 flags the benchmark and the tests measure, and they take effect', async (t) => {
  const sidecar = readFileSync(join(dir, 'themis-sidecar.service'), 'utf8');
  const options = /^Environment="NODE_OPTIONS=([^"]*)"$/m.exec(sidecar)?.[1];
  t.equal(options, SIDECAR_NODE_FLAGS.join(' '), 'NODE_OPTIONS is SIDECAR_NODE_FLAGS (scripts/processes.ts)');
  // The heap limit is the old generation's plus the young generation's (3 semi-spaces); Node's
  // default on this machine is several GiB.
  const limit = spawnSync(process.execPath, ['-p', 'require("v8").getHeapStatistics().heap_size_limit / 2 ** 20'], { env: { ...process.env, NODE_OPTIONS: options ?? '' }, encoding: 'utf8' });
  t.equal(limit.status, 0, limit.stderr);
  t.equal(Number(limit.stdout), 1024 + 3 * 16, 'a 1 GiB old generation and 16 MiB semi-spaces');
});

t.test('the example configs are valid configs', async (t) => {
  const sidecar = validateSidecarConfig(JSON.parse(readFileSync(join(ROOT, 'deploy/config/sidecar.json'), 'utf8')), '/etc/themis');
  t.equal(sidecar.etcd?.topologyCache, '/var/lib/themis/sidecar/topology-cache.json', 'the etcd caches in the state directory, which the unit may write');
  t.equal(sidecar.etcd?.crlCache, '/var/lib/themis/sidecar/crl-cache.json');
  t.equal(sidecar.auditFile, '/var/log/themis/audit-shard-001.log');
  t.equal(sidecar.replay.stateFile, '/var/lib/themis/sidecar/replay.json', 'replay marks in the state directory (the config folder is read-only under systemd)');
  const storage = validateStorageConfig(JSON.parse(readFileSync(join(ROOT, 'deploy/config/storage.json'), 'utf8')));
  t.equal(storage.host, '127.0.0.1');
  t.equal(storage.dataDir, '/var/lib/themis/storage');
});
