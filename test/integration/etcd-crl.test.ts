import t from 'tap';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type http2 from 'node:http2';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { meshConnect, meshRequest, type Identity } from '../support/mesh-client.js';
import { runProgram } from '../support/cli.js';
import { call } from '../support/storage-process.js';
import { createPkiFixture, openssl } from '../support/pki-fixture.js';
import { meshAttempt, publishCaCrl } from '../support/etcd-crl.js';
import { buildCrl } from '../../src/pki/crl.js';
import { loadPrivateKey } from '../../src/pki/keys.js';
import { certFromPem } from '../../src/pki/pem.js';

let mesh: Mesh;
t.before(async () => {
  mesh = await startMesh({ shards: 3, withEtcd: true, trustFile: true });
});
t.teardown(() => mesh?.close());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const audit = (i: number) => readFileSync(mesh.nodes[i]!.auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const admin = () => mesh.pki.operators.admin;
const etcdFlags = () => ['--etcd', mesh.etcd!.endpoint, '--cert', admin().chainPath, '--key', admin().keyPath, '--cluster', mesh.pki.cluster];
const KEY = (name: string) => `/themis/${mesh.pki.cluster}/crl/${name}`;
const ctl = (args: string[]) => mesh.etcd!.etcdctl({ cert: admin().chainPath, key: admin().keyPath, ca: mesh.pki.root.certPath }, args);
const clientId = (): Identity => ({ cert: mesh.pki.clients.readWrite.chain, key: mesh.pki.clients.readWrite.key, ca: mesh.pki.root.cert });

const attempt = (i: number, id: Identity) => meshAttempt(mesh, i, id);
const publishInProcess = (ca: 'cluster' | 'client') => publishCaCrl(mesh, ca);

t.test('themis-admin crl publish writes crl/{ca} and crl/revoked, readable with etcdctl and openssl; an old CRL is refused', async (t) => {
  const r = runProgram('themis-admin', ['crl', 'publish', '--ca', 'client', '--pki', mesh.pki.dir, ...etcdFlags()]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /published CRL number \d+ of the client CA/);
  const value = ctl(['get', KEY('client'), '--print-value-only']).stdout;
  t.match(value, /^-----BEGIN X509 CRL-----/);
  t.match(value, /-----BEGIN CERTIFICATE-----/, 'the CA certificate travels with its CRL');
  const parsed = openssl(['crl', '-noout', '-issuer', '-crlnumber'], value);
  t.equal(parsed.status, 0, parsed.stderr);
  t.match(parsed.stdout, /crlNumber=/);
  const index = JSON.parse(ctl(['get', KEY('revoked'), '--print-value-only']).stdout);
  t.ok(Array.isArray(index.revoked), 'crl/revoked is a JSON list');

  const again = runProgram('themis-admin', ['crl', 'publish', '--ca', 'client', '--pki', mesh.pki.dir, ...etcdFlags()]);
  t.equal(again.status, 1, 'the same CRL number again is refused');
  t.match(again.stderr, /not_newer/);
  const wrongCa = runProgram('themis-admin', ['crl', 'publish', '--ca', 'cluster', '--file', mesh.pki.root.crlPath, '--pki', mesh.pki.dir, ...etcdFlags()]);
  t.equal(wrongCa.status, 1, 'the root CRL published as the cluster CA\'s is refused');
  t.match(wrongCa.stderr, /not of the cluster CA/);
  const bad = runProgram('themis-admin', ['crl', 'publish', '--ca', 'nope', '--pki', mesh.pki.dir, ...etcdFlags()]);
  t.equal(bad.status, 2);
  t.match(bad.stderr, /--ca must be one of root, cluster, operator, client/);

  const show = runProgram('themis-admin', ['crl', 'show', '--root', mesh.pki.root.certPath, ...etcdFlags(), '--json']);
  t.equal(show.status, 0, show.stderr);
  t.match(JSON.parse(show.stdout), [{ ca: 'client', status: 'valid' }]);
});

let revokedClient: Identity;
t.test('revoking a connected client: publish to enforcement on every sidecar, its live session cut', async (t) => {
  const id = clientId();
  for (let i = 0; i < 3; i++) t.equal(await attempt(i, id), 404, `sidecar ${i + 1} accepts the client before`);
  const live = meshConnect(`${mesh.nodes[0]!.shard.ip}:${mesh.nodes[0]!.meshPort}`, id);
  t.equal((await meshRequest(live, 'GET', `/entities/document.app.crl:${uuidOwnedBy(mesh.nodes[0]!.shard.tokenRange)}`)).status, 404);
  const closed = new Promise<void>((resolve) => (live as http2.ClientHttp2Session).once('close', () => resolve()));

  await mesh.pki.revoke(mesh.pki.clients.readWrite.serial);
  await publishInProcess('client');
  const t0 = Date.now();
  const enforced = await Promise.all(
    [0, 1, 2].map(async (i) => {
      while (Date.now() - t0 < 10_000) {
        if ((await attempt(i, id)) === 'refused') return Date.now() - t0;
        await sleep(10);
      }
      return Infinity;
    }),
  );
  t.comment(`publish → enforcement (a new handshake refused), per sidecar: ${enforced.join(' ms, ')} ms`);
  for (const [i, ms] of enforced.entries()) t.ok(ms < 3000, `sidecar ${i + 1} refuses the revoked client ${ms} ms after publish`);
  await Promise.race([closed, sleep(5000)]);
  t.ok(live.closed || live.destroyed, 'the live session of the revoked client was cut');
  const cut = audit(0).find((e) => e.event === 'CERTIFICATE_REVOKED' && e.peer?.serial === mesh.pki.clients.readWrite.serial);
  t.ok(cut, 'CERTIFICATE_REVOKED audited for the cut session');
  const applied = audit(1).filter((e) => e.event === 'CRL_APPLIED').pop();
  t.match(applied?.reason, /client CA from etcd/);
  t.comment(`CRL_APPLIED audited at +${[0, 1, 2].map((i) => Date.parse(audit(i).filter((e) => e.event === 'CRL_APPLIED').pop()!.time) - t0).join(' ms, +')} ms`);
  const metrics = await fetch(`${mesh.nodes[2]!.adminUrl}/metrics`).then((r) => r.text());
  t.match(metrics, /themis_crl_number\{issuer="[^"]*[Cc]lient[^"]*"\} \d+/);
  revokedClient = id;
});

t.test('CRLs written straight into etcd that are not valid and newer are refused, audited, and change nothing', async (t) => {
  const cas = mesh.pki.cas;
  const valid = ctl(['get', KEY('client'), '--print-value-only']).stdout;
  const crlDer = Buffer.from(valid.split('-----BEGIN CERTIFICATE-----')[0]!.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const flipped = Buffer.from(crlDer);
  flipped[flipped.length - 5]! ^= 0xff; // inside the signature
  const pem = (der: Buffer) => `-----BEGIN X509 CRL-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END X509 CRL-----\n`;
  // A CRL "issued" by a shard's leaf key with the client CA's name: an attacker holding a shard
  // key trying to un-revoke the client with a higher CRL number.
  const shard = mesh.pki.shards[0]!;
  const leafKey = await loadPrivateKey(shard.key, undefined, 'shard key');
  const forgedParams = {
    issuer: { cert: certFromPem(cas.client.cert, 'client CA'), key: leafKey.privateKey },
    crlNumber: 999_999,
    revoked: [],
    thisUpdate: new Date(Date.now() - 60_000),
    nextUpdate: new Date(Date.now() + 86_400_000),
  };
  const forged = await buildCrl(forgedParams);
  // The same, issued in the shard's own name with its certificate attached: not a CA the root certified.
  const forgedUnderLeaf = (await buildCrl({ ...forgedParams, issuer: { cert: certFromPem(shard.cert, 'shard'), key: leafKey.privateKey } })).pem + shard.cert;
  const cases: [string, string, string][] = [
    ['not a CRL', 'garbage', 'malformed'],
    ['signature flipped', pem(flipped) + cas.client.cert, 'bad_signature'],
    ['signed with a shard key, higher number', forged.pem + cas.client.cert, 'bad_signature'],
    ['signed with a shard key, shard certificate attached', forgedUnderLeaf, 'unknown_issuer'],
    ['client CRL with the cluster CA certificate attached', valid.split('-----BEGIN CERTIFICATE-----')[0] + cas.cluster.cert, 'unknown_issuer'],
    ['client CRL without its CA certificate', valid.split('-----BEGIN CERTIFICATE-----')[0]!, 'unknown_issuer'],
    ['the same CRL number again', valid, 'none'],
  ];
  for (const [name, value, reason] of cases) {
    const before = audit(1).length;
    t.equal(ctl(['put', '--', KEY('client'), value]).status, 0, `${name}: written into etcd`);
    let refused: { reason?: string } | undefined;
    for (let i = 0; i < 60 && !refused; i++) {
      await sleep(25);
      refused = audit(1).slice(before).find((e) => e.event === 'CRL_REJECTED' || e.event === 'CRL_APPLIED');
    }
    if (reason === 'none') t.notOk(refused, `${name}: ignored (the CRL in force, read again)`);
    else t.match(refused?.reason ?? '', new RegExp(`^${reason}`), `${name}: refused (${refused?.reason?.slice(0, 70)})`);
  }
  for (let i = 0; i < 3; i++) t.equal(await attempt(i, revokedClient), 'refused', `sidecar ${i + 1} still refuses the revoked client`);
  t.equal(await attempt(1, { cert: mesh.pki.clients.readOnly.chain, key: mesh.pki.clients.readOnly.key, ca: mesh.pki.root.cert }), 404, 'and still accepts a good client');
  const metrics = await fetch(`${mesh.nodes[1]!.adminUrl}/metrics`).then((r) => r.text());
  t.match(metrics, /themis_crl_rejections_total\{reason="unknown_issuer"\} 3/);
  t.match(metrics, /themis_crl_rejections_total\{reason="bad_signature"\} 2/);
});

t.test('a sidecar restarted while etcd is down still enforces the revocation it learnt from etcd', async (t) => {
  mesh.etcd!.child.kill('SIGSTOP');
  try {
    await mesh.stopSidecar(1, 'SIGKILL');
    await mesh.startSidecar(1);
    t.equal(await attempt(1, revokedClient), 'refused', 'revoked client refused from the CRL cache');
    t.equal(await attempt(1, { cert: mesh.pki.clients.readOnly.chain, key: mesh.pki.clients.readOnly.key, ca: mesh.pki.root.cert }), 404);
  } finally {
    mesh.etcd!.child.kill('SIGCONT');
  }
});

t.test('revoking a connected peer sidecar: sessions with it are cut, it deregisters, and it cannot start again', async (t) => {
  const [a, , c] = mesh.nodes;
  const key = `/entities/document.app.peer:${uuidOwnedBy(c!.shard.tokenRange)}`;
  t.equal((await call(a!.appUrl, 'PUT', key, { blob: '{}' })).status, 201, 'A → C works (a live session)');
  const serial = c!.shard.serial;
  await mesh.pki.revoke(serial);
  await publishInProcess('cluster');
  let status = 0;
  for (let i = 0; i < 100 && status !== 503 && status !== 502; i++) {
    await sleep(30);
    status = (await call(a!.appUrl, 'GET', key)).status;
  }
  t.ok(status === 502 || status === 503, `A no longer reaches the revoked C (${status})`);
  t.ok(audit(0).some((e) => e.event === 'CERTIFICATE_REVOKED' && e.peer?.serial === serial), 'A audited the cut session');
  let ready = 200;
  for (let i = 0; i < 100 && ready === 200; i++) {
    await sleep(30);
    ready = (await fetch(`${c!.adminUrl}/readyz`)).status;
  }
  t.equal(ready, 503, 'C reports itself not ready');
  let alive = 'x';
  for (let i = 0; i < 100 && alive !== ''; i++) {
    await sleep(50);
    alive = ctl(['get', `/themis/${mesh.pki.cluster}/shards/${c!.shard.id}/alive`, '--print-value-only']).stdout.trim();
  }
  t.equal(alive, '', 'C withdrew its alive key');
  await mesh.stopSidecar(2);
  await t.rejects(mesh.startSidecar(2), /refused by a CRL published in etcd/, 'a restart refuses to start, naming the reason');
});

t.test('root rotation: the new generation\'s CRLs go to crl/next-{ca}, checked against the trust bundle, and reach sidecars that trust both roots', async (t) => {
  const next = await createPkiFixture({ shards: 1, generation: 'G2' });
  t.teardown(() => next.cleanup());
  const bundle = join(mesh.dir, 'bundle.pem');
  const made = runProgram('themis-pki', ['trust-bundle', '--pki', mesh.pki.dir, '--pki', next.dir, '--out', bundle]);
  t.equal(made.status, 0, made.stderr);
  const G2 = 'CN=Themis Cluster CA G2, OU=cluster, O=themis-mesh';
  const running = [0, 1]; // the previous test stopped the third sidecar
  const knowsG2 = async () => (await Promise.all(running.map(async (i) => (await call(mesh.nodes[i]!.adminUrl, 'GET', '/metrics')).text.includes(`themis_crl_expiry_seconds{issuer="${G2}"}`))));

  const early = runProgram('themis-admin', ['crl', 'publish', '--ca', 'cluster', '--pki', next.dir, '--next', '--trust', mesh.pki.root.certPath, ...etcdFlags()]);
  t.equal(early.status, 1, 'checked against the old root alone, the new CRL is refused');
  t.match(early.stderr, /unknown_issuer/);
  const misplaced = runProgram('themis-admin', ['crl', 'publish', '--ca', 'cluster', '--file', next.root.crlPath, '--pki', next.dir, '--next', '--trust', bundle, ...etcdFlags()]);
  t.equal(misplaced.status, 1, 'a next- slot takes only its own kind\'s CRL');
  t.match(misplaced.stderr, /CN=Themis Root CA G2, O=themis-mesh, the root CA, not of the cluster CA/);

  writeFileSync(mesh.trustFile! + '.new', readFileSync(bundle, 'utf8')); // step 2 on every host: trust both
  renameSync(mesh.trustFile! + '.new', mesh.trustFile!);
  for (const ca of ['root', 'cluster', 'operator', 'client']) {
    const r = runProgram('themis-admin', ['crl', 'publish', '--ca', ca, '--pki', next.dir, '--next', '--trust', bundle, ...etcdFlags()]);
    t.equal(r.status, 0, r.stderr);
    t.match(r.stdout, new RegExp(`as crl/next-${ca};`));
  }
  t.match(ctl(['get', KEY('next-cluster'), '--print-value-only']).stdout, /^-----BEGIN X509 CRL-----/, 'readable with etcdctl');
  let seen: boolean[] = [];
  for (let i = 0; i < 100 && !(seen = await knowsG2()).every(Boolean); i++) await sleep(100);
  t.same(seen, running.map(() => true), 'every running sidecar holds the new cluster CA\'s CRL');
  const show = runProgram('themis-admin', ['crl', 'show', '--root', bundle, ...etcdFlags(), '--json']);
  t.equal(show.status, 0, show.stderr);
  const rows = JSON.parse(show.stdout) as { ca: string; status: string }[];
  t.same(rows.filter((r) => r.ca.startsWith('next-')).map((r) => `${r.ca} ${r.status}`), ['next-root valid', 'next-cluster valid', 'next-operator valid', 'next-client valid'], 'crl show verifies them against the bundle');
});
