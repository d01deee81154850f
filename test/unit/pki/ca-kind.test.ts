// The CA-kind binding's edge cases: an intermediate with no kind (a PKI made before the
// binding), one claiming several, a leaf contradicting its issuer, a leaf straight under the
// root; and the same binding checked by stock openssl through certificate policies.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CA_KIND_POLICY } from '../../../src/pki/ca-kind.js';
import { loadIssuer } from '../../../src/pki/ca-store.js';
import { issueLeaf, randomSerial, validityFor, type Issuer } from '../../../src/pki/issue.js';
import { generateKeyPair, signingAlgorithm } from '../../../src/pki/keys.js';
import { operatorProfile, shardProfile } from '../../../src/pki/profiles.js';
import { PeerVerifier } from '../../../src/pki/verify.js';
import { x509 } from '../../../src/pki/x509.js';
import { FakeClock, systemClock, systemRandom } from '../../../src/runtime.js';
import { FIXTURE_PASSPHRASE, createPkiFixture, openssl, runPki, type PkiFixture } from '../../support/pki-fixture.js';
import { certsFromPem } from '../../../src/pki/pem.js';

const clock = new FakeClock(Date.UTC(2026, 0, 1));
let fx: PkiFixture;
let root: Issuer;
t.before(async () => {
  fx = await createPkiFixture({ clock, shards: 1 });
  root = await loadIssuer(fx.layout, 'root', FIXTURE_PASSPHRASE);
});
t.teardown(() => fx.cleanup());

const shard = (id: string) => shardProfile({ id, cluster: 'cluster-test', datacenter: 'dc1', ips: ['127.0.0.1'], tokenRange: { start: 0n, end: 9n }, capabilities: ['read'], role: 'primary' });

/** An intermediate signed by our root with the given policies (none: as before the binding). */
async function intermediate(name: string, policies: string[]): Promise<Issuer> {
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(systemRandom),
    subject: `CN=${name}, OU=cluster, O=themis-mesh`,
    issuer: root.cert.subjectName,
    ...validityFor(clock, 30),
    publicKey: keys.publicKey,
    signingKey: root.key,
    signingAlgorithm: signingAlgorithm(root.key),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ...(policies.length ? [new x509.CertificatePolicyExtension(policies, false)] : []),
    ],
  });
  return { cert, key: keys.privateKey };
}

async function leafUnder(issuer: Issuer, params = shard('shard-100')) {
  const keys = await generateKeyPair();
  return issueLeaf({ ...params, publicKey: keys.publicKey, issuer, validity: validityFor(clock, 10), random: systemRandom });
}

/** A verifier that trusts our root with CRLs for the root and the given CA (an empty CRL each). */
async function verifierWith(ca: Issuer): Promise<PeerVerifier> {
  const { buildCrl } = await import('../../../src/pki/crl.js');
  const now = new Date(clock.now());
  const crl = await buildCrl({ issuer: ca, crlNumber: 1, revoked: [], thisUpdate: now, nextUpdate: new Date(clock.now() + 86_400_000) });
  return new PeerVerifier({ root: fx.root.cert, crls: [...fx.crls(), crl.pem], clock });
}

const der = (pem: string) => certsFromPem(pem, 'test').map((c) => new Uint8Array(c.rawData));
const chainOf = (...certs: x509.X509Certificate[]) => certs.map((c) => new Uint8Array(c.rawData));

t.test('control: a shard from a cluster-kind intermediate made the same way verifies', async (t) => {
  const ca = await intermediate('Hand Cluster CA', [CA_KIND_POLICY.cluster]);
  const leaf = await leafUnder(ca);
  t.match((await verifierWith(ca)).verify(chainOf(leaf, ca.cert)), { ok: true, peer: { issuerKind: 'cluster', issuer: /Hand Cluster CA/ } });
});

t.test('an intermediate that names no kind (made before the binding) grants no role', async (t) => {
  const ca = await intermediate('Old Cluster CA', []);
  const leaf = await leafUnder(ca);
  t.match((await verifierWith(ca)).verify(chainOf(leaf, ca.cert)), { ok: false, reason: 'wrong_issuer', message: /carries no CA-kind policy/ });
});

t.test('an intermediate that names several kinds grants no role', async (t) => {
  const ca = await intermediate('Greedy CA', [CA_KIND_POLICY.cluster, CA_KIND_POLICY.operator]);
  const leaf = await leafUnder(ca);
  t.match((await verifierWith(ca)).verify(chainOf(leaf, ca.cert)), { ok: false, reason: 'wrong_issuer', message: /claims several CA kinds/ });
});

t.test('a leaf whose own policy contradicts its role is refused even from the right CA', async (t) => {
  const cluster = await loadIssuer(fx.layout, 'cluster', FIXTURE_PASSPHRASE);
  // An operator profile puts the operator kind's policy in the leaf; give it a shard identity.
  const params = { ...operatorProfile({ name: 'odd', capabilities: ['view_topology'] }), identity: shard('shard-101').identity };
  const leaf = await leafUnder(cluster, params);
  t.match(new PeerVerifier({ root: fx.root.cert, crls: fx.crls(), clock }).verify(chainOf(leaf, cluster.cert)), { ok: false, reason: 'wrong_issuer', message: /policy names the operator CA/ });
});

t.test('a leaf issued by the root itself grants no role', async (t) => {
  const leaf = await leafUnder(root);
  t.match(new PeerVerifier({ root: fx.root.cert, crls: fx.crls(), clock }).verify(chainOf(leaf)), { ok: false, reason: 'wrong_issuer', message: /Root CA, O=themis-mesh carries no CA-kind policy/ });
});

t.test('openssl checks the same binding: -policy with -explicit_policy', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'themis-policy-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  const rootFile = write('root.pem', fx.root.cert);
  const cases: Array<[string, string, string]> = [
    ['shard', write('shard.pem', fx.shards[0]!.cert), write('cluster.pem', fx.cas.cluster.cert)],
    ['operator', write('operator.pem', fx.operators.admin.cert), write('operator-ca.pem', fx.cas.operator.cert)],
    ['client', write('client.pem', fx.clients.readWrite.cert), write('client-ca.pem', fx.cas.client.cert)],
  ];
  const kindOf: Record<string, keyof typeof CA_KIND_POLICY> = { shard: 'cluster', operator: 'operator', client: 'client' };
  for (const [name, leaf, ca] of cases) {
    for (const kind of ['cluster', 'operator', 'client'] as const) {
      // -purpose any: operators and clients carry clientAuth only.
      const r = openssl(['verify', '-purpose', 'any', '-policy', CA_KIND_POLICY[kind], '-explicit_policy', '-CAfile', rootFile, '-untrusted', ca, leaf]);
      if (kind === kindOf[name]) t.equal(r.status, 0, `${name} passes openssl's ${kind} policy check: ${r.stderr.trim()}`);
      else t.not(r.status, 0, `${name} fails openssl's ${kind} policy check`);
    }
  }
});

t.test('kinds are written into intermediates and leaves by our issuer', async (t) => {
  const text = openssl(['x509', '-noout', '-text'], fx.cas.operator.cert).stdout;
  t.match(text, new RegExp(`Policy: ${CA_KIND_POLICY.operator.replace(/\./g, '\\.')}`));
  t.match(openssl(['x509', '-noout', '-text'], fx.shards[0]!.cert).stdout, new RegExp(`Policy: ${CA_KIND_POLICY.cluster.replace(/\./g, '\\.')}`));
});

t.test('recertify-intermediate: a PKI made before the binding is bound without re-issuing leaves', async (t) => {
  // The CLI runs on the real clock, so this PKI does too.
  const old = await createPkiFixture({ shards: 1 });
  t.teardown(() => old.cleanup());
  const oldRoot = await loadIssuer(old.layout, 'root', FIXTURE_PASSPHRASE);
  const cluster = await loadIssuer(old.layout, 'cluster', FIXTURE_PASSPHRASE);
  // What an intermediate looked like before: same name and key, no policy.
  const before = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(systemRandom),
    subject: cluster.cert.subjectName,
    issuer: oldRoot.cert.subjectName,
    ...validityFor(systemClock, 30),
    publicKey: await cluster.cert.publicKey.export(),
    signingKey: oldRoot.key,
    signingAlgorithm: signingAlgorithm(oldRoot.key),
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
  });
  const shardDir = old.layout.leafDir('shard', 'shard-001');
  writeFileSync(old.layout.caCert('cluster'), before.toString('pem') + '\n');
  writeFileSync(join(shardDir, 'chain.pem'), old.shards[0]!.cert.trim() + '\n' + before.toString('pem') + '\n');
  const v = new PeerVerifier({ root: old.root.cert, crls: old.crls(), clock: systemClock });
  const chainFile = () => readFileSync(join(shardDir, 'chain.pem'), 'utf8');
  t.match(v.verify(der(chainFile())), { ok: false, reason: 'wrong_issuer', message: /carries no CA-kind policy/ }, 'before: the old CA grants nothing');
  const r = runPki(['recertify-intermediate', '--kind', 'cluster', '--dir', old.dir, '--json'], { THEMIS_PKI_PASSPHRASE: FIXTURE_PASSPHRASE });
  t.equal(r.status, 0, r.stderr);
  t.ok((JSON.parse(r.stdout) as { written: { path: string }[] }).written.some((w) => w.path === join(shardDir, 'chain.pem')), 'the shard chain is rewritten');
  t.match(v.verify(der(chainFile())), { ok: true, peer: { issuerKind: 'cluster', serial: old.shards[0]!.serial } }, 'after: the same leaf verifies');
  t.equal(openssl(['verify', '-policy', CA_KIND_POLICY.cluster, '-CAfile', old.root.certPath, '-untrusted', old.layout.caCert('cluster'), old.shards[0]!.certPath]).status, 0, 'openssl accepts the new CA');
});

t.test('a CA kind counts only when the root signed it: a sub-CA under a root without pathLen grants nothing', async (t) => {
  const { buildCrl } = await import('../../../src/pki/crl.js');
  const ca = async (name: string, issuer: Issuer | undefined, policies: string[]): Promise<Issuer> => {
    const keys = await generateKeyPair();
    const signer = issuer ?? { cert: undefined as unknown as x509.X509Certificate, key: keys.privateKey };
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(systemRandom),
      subject: `CN=${name}, O=elsewhere`,
      issuer: issuer ? issuer.cert.subjectName : `CN=${name}, O=elsewhere`,
      ...validityFor(clock, 30),
      publicKey: keys.publicKey,
      signingKey: signer.key,
      signingAlgorithm: signingAlgorithm(signer.key),
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true), // no path length: nothing stops a sub-CA
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        ...(policies.length ? [new x509.CertificatePolicyExtension(policies, false)] : []),
      ],
    });
    return { cert, key: keys.privateKey };
  };
  const looseRoot = await ca('Loose Root', undefined, []);
  const cluster = await ca('Loose Cluster CA', looseRoot, [CA_KIND_POLICY.cluster]);
  const sub = await ca('Sub CA', cluster, [CA_KIND_POLICY.operator]);
  const leaf = await leafUnder(sub, { ...operatorProfile({ name: 'sneaky', capabilities: ['rebalance'] }) });
  const now = new Date(clock.now());
  const crls = await Promise.all([looseRoot, cluster, sub].map((i) => buildCrl({ issuer: i, crlNumber: 1, revoked: [], thisUpdate: now, nextUpdate: new Date(clock.now() + 86_400_000) })));
  const v = new PeerVerifier({ root: looseRoot.cert.toString('pem'), crls: crls.map((c) => c.pem), clock });
  t.match(v.verify(chainOf(leaf, sub.cert, cluster.cert)), { ok: false, reason: 'wrong_issuer', message: /Sub CA.* is not signed by the root itself/ });
  const shard = await leafUnder(cluster);
  t.match(v.verify(chainOf(shard, cluster.cert)), { ok: true, peer: { issuerKind: 'cluster' } }, 'control: the same root’s direct CA grants its kind');
});

t.test('inspect does not take a name for a signature, nor a leaf’s own claim for its issuer', async (t) => {
  const { inspectFile } = await import('../../../src/pki/inspect.js');
  const cluster = await loadIssuer(fx.layout, 'cluster', FIXTURE_PASSPHRASE);
  const client = await loadIssuer(fx.layout, 'client', FIXTURE_PASSPHRASE);
  // Names the cluster CA as its issuer, but the client CA's key signed it.
  const forged = await leafUnder({ cert: cluster.cert, key: client.key });
  const pem = (...c: x509.X509Certificate[]) => Buffer.from(c.map((x) => x.toString('pem')).join('\n') + '\n');
  t.match(inspectFile(pem(forged, cluster.cert), 'forged.pem')[0], { roleIssuer: /^MISMATCH: .*did not sign it/ });
  const honest = await leafUnder(cluster);
  t.match(inspectFile(pem(honest, cluster.cert), 'chain.pem')[0], { roleIssuer: /^ok: the cluster CA may grant primary/ }, 'control: the real chain');
  t.match(inspectFile(pem(honest), 'cert.pem')[0], { roleIssuer: /^unknown: the issuer's certificate is not in this file/ }, 'a lone leaf is never "ok"');
});
