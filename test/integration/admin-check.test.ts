// themis-admin check against a real mesh with etcd: green when all is well (cluster and host
// checks), and a failing line with its fix, and exit status 1, when something is not.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startMesh, type Mesh } from '../support/mesh.js';
import { runProgramAsync } from '../support/cli.js';
import { loadIssuer } from '../../src/pki/ca-store.js';
import { buildCrl } from '../../src/pki/crl.js';

let mesh: Mesh;
t.before(async () => {
  mesh = await startMesh({ shards: 3, withEtcd: true, etcdTopology: true });
});
t.teardown(() => mesh?.close());

const reader = () => {
  const crls = mesh.pki.crls().map((c, i) => {
    const f = join(mesh.dir, `check-crl-${i}.pem`);
    writeFileSync(f, c);
    return f;
  });
  const ro = mesh.pki.operators.readonly;
  return ['--etcd', mesh.etcd!.endpoint, '--ca', mesh.pki.root.certPath, '--cert', ro.chainPath, '--key', ro.keyPath, '--crls', crls.join(',')];
};
const check = (args: string[]) => runProgramAsync('themis-admin', ['check', ...reader(), ...args]);

t.test('a healthy mesh passes every check, cluster-wide and for one host', async (t) => {
  let r = await check(['--cluster', mesh.pki.cluster, '--config', mesh.nodes[0]!.configPath]);
  // Status reports (the epoch each shard serves) arrive every 2 s after start.
  for (let i = 0; (r.status !== 0 || /\[warn\]/.test(r.stdout)) && i < 10; i++) {
    await new Promise((res) => setTimeout(res, 1000));
    r = await check(['--cluster', mesh.pki.cluster, '--config', mesh.nodes[0]!.configPath]);
  }
  t.equal(r.status, 0, r.stdout + r.stderr);
  for (const id of ['shard-001', 'shard-002', 'shard-003']) {
    t.match(r.stdout, new RegExp(`^\\[ok\\]\\s+shard\\s+${id} registered, alive`, 'm'));
    t.match(r.stdout, new RegExp(`^\\[ok\\]\\s+topology\\s+${id} serves epoch \\d+`, 'm'));
    t.match(r.stdout, new RegExp(`^\\[ok\\]\\s+clock\\s+${id}'s clock within \\d+ s`, 'm'));
  }
  t.match(r.stdout, /^\[ok\]\s+certificate\s+shard shard-001 .* valid for \d+ more days/m);
  t.match(r.stdout, /^\[ok\]\s+storage\s+http:\/\/127\.0\.0\.1:\d+ answers/m);
  t.match(r.stdout, /all checks passed\n$/, 'and no warning');
  const json = await check(['--cluster', mesh.pki.cluster, '--json']);
  t.equal(JSON.parse(json.stdout).ok, true);
});

t.test('a wrong cluster name, or a stopped sidecar, fails with a fix', async (t) => {
  const wrong = await check(['--cluster', 'cluster-nope']);
  t.equal(wrong.status, 1);
  t.match(wrong.stdout, /^\[FAIL\] topology\s+no topology published for cluster cluster-nope .*\n\s+fix: publish one: .*is --cluster right\?/m);
  await mesh.stopSidecar(2);
  let r = await check(['--cluster', mesh.pki.cluster]);
  // The alive key goes with its lease (5 s) once the sidecar has deregistered or died.
  for (let i = 0; !/shard-003 registered but not alive/.test(r.stdout) && i < 15; i++) {
    await new Promise((res) => setTimeout(res, 1000));
    r = await check(['--cluster', mesh.pki.cluster]);
  }
  t.equal(r.status, 1);
  t.match(r.stdout, /^\[FAIL\] shard\s+shard-003 registered but not alive \(no lease\)\n\s+fix: start its sidecar/m);
  t.match(r.stdout, /^\[ok\]\s+shard\s+shard-001 registered, alive/m, 'the others still pass');
});

t.test('a CRL past its nextUpdate fails, with a fix', async (t) => {
  // The client CA's CRL as it would be had nobody issued one for 40 days (30-day CRLs).
  const issuer = await loadIssuer(mesh.pki.layout, 'client', mesh.pki.passphrase);
  const day = 86_400_000;
  const { pem } = await buildCrl({ issuer, crlNumber: 1, revoked: [], thisUpdate: new Date(Date.now() - 40 * day), nextUpdate: new Date(Date.now() - 10 * day) });
  const stale = join(mesh.dir, 'stale-client.crl.pem');
  writeFileSync(stale, pem);
  const args = reader();
  const i = args.indexOf('--crls');
  args[i + 1] = args[i + 1]!.split(',').slice(0, 3).concat(stale).join(',');
  const r = await runProgramAsync('themis-admin', ['check', ...args, '--cluster', mesh.pki.cluster]);
  t.equal(r.status, 1);
  t.match(r.stdout, /^\[FAIL\] crl\s+.*stale-client\.crl\.pem \(.*\) is stale: nextUpdate \S+ has passed\n\s+fix: issue a fresh CRL/m);
  t.match(r.stdout, /^\[ok\]\s+crl\s+.*check-crl-0\.pem .*fresh until/m, 'the fresh ones pass');
});
