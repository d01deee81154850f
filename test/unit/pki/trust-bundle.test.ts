// Trust bundles (several roots at once, for a root rotation): chains and CRLs of every root in
// the bundle are honoured, each against its own root; nothing outside the bundle is; a bundle
// whose CAs share a name is refused whole.
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { buildCrl, parseCrls } from '../../../src/pki/crl.js';
import { CrlTrust } from '../../../src/pki/crl-trust.js';
import { loadIssuer } from '../../../src/pki/ca-store.js';
import { PkiError } from '../../../src/pki/errors.js';
import { certsFromPem } from '../../../src/pki/pem.js';
import { buildTrustBundle, parseTrustBundle, trustBundleDer } from '../../../src/pki/trust-bundle.js';
import { PeerVerifier } from '../../../src/pki/verify.js';
import { clientProfile } from '../../../src/pki/profiles.js';
import { x509 } from '../../../src/pki/x509.js';
import { FakeClock } from '../../../src/runtime.js';
import { FIXTURE_PASSPHRASE, createPkiFixture, type PkiFixture } from '../../support/pki-fixture.js';

const T0 = Date.UTC(2026, 0, 1);
const clock = new FakeClock(T0);
const der = (pem: string) => certsFromPem(pem, 'test').map((c) => new Uint8Array(c.rawData));
const nameKey = (pem: string) => Buffer.from(new x509.X509Certificate(pem).subjectName.toArrayBuffer()).toString('hex');

let old: PkiFixture; // today's PKI
let next: PkiFixture; // the new root generation, its CAs named "… G2"
let samename: PkiFixture; // another PKI with the default names
t.before(async () => {
  [old, next, samename] = await Promise.all([
    createPkiFixture({ clock, shards: 1 }),
    createPkiFixture({ clock, shards: 1, generation: 'G2' }),
    createPkiFixture({ clock, shards: 1 }),
  ]);
});
t.teardown(async () => {
  await Promise.all([old.cleanup(), next.cleanup(), samename.cleanup()]);
});

const bundle = () => old.root.cert + next.root.cert;

t.test('a chain of either root verifies, each with its own CRLs', async (t) => {
  const v = new PeerVerifier({ root: bundle(), crls: [...old.crls(), ...next.crls()], clock });
  t.match(v.verify(der(old.shards[0]!.chain)), { ok: true, peer: { issuer: 'CN=Themis Cluster CA, OU=cluster, O=themis-mesh' } }, 'the old generation');
  t.match(v.verify(der(next.shards[0]!.chain)), { ok: true, peer: { issuer: 'CN=Themis Cluster CA G2, OU=cluster, O=themis-mesh' } }, 'the new generation');
  t.match(v.verify(der(samename.shards[0]!.chain)), { ok: false, reason: 'unknown_issuer' }, 'a root outside the bundle vouches for nothing');

  const only = (root: string, crls: string[]) => new PeerVerifier({ root, crls, clock });
  t.match(only(old.root.cert, old.crls()).verify(der(next.shards[0]!.chain)), { ok: false, reason: 'unknown_issuer' }, 'without the new root, the new chain is refused');
  t.match(only(next.root.cert, next.crls()).verify(der(old.shards[0]!.chain)), { ok: false, reason: 'unknown_issuer' }, 'and once the old root is removed, the old chain is');

  const noNewCrls = new PeerVerifier({ root: bundle(), crls: old.crls(), clock });
  t.match(noNewCrls.verify(der(next.shards[0]!.chain)), { ok: false, reason: 'revocation_unknown' }, 'the new generation still needs its own CRLs (fail closed)');
  t.match(noNewCrls.verify(der(old.shards[0]!.chain)), { ok: true });
  t.match(v.verify(der(next.root.cert)), { ok: false, reason: 'wrong_key_usage', message: 'the root itself was presented as the peer certificate' }, 'the second root presented as a peer');
});

t.test('revocations of both roots are honoured while both are trusted', async (t) => {
  const revokedOld = await old.issue(clientProfile({ name: 'gone-old', capabilities: ['read'] }), 'gone-old');
  const revokedNew = await next.issue(clientProfile({ name: 'gone-new', capabilities: ['read'] }), 'gone-new');
  await old.revoke(revokedOld.serial);
  await next.revoke(revokedNew.serial);
  // Both generations' CRLs as one file, as `themis-pki trust-bundle --crls-out` writes it.
  const crlFile = [...old.crls(), ...next.crls()].join('');
  t.equal(parseCrls(crlFile, 'crls.pem').length, 8, 'one file holds all eight CRLs');
  const v = new PeerVerifier({ root: bundle(), crls: [crlFile], clock });
  t.match(v.verify(der(revokedOld.chain)), { ok: false, reason: 'revoked' }, 'revoked under the old root');
  t.match(v.verify(der(revokedNew.chain)), { ok: false, reason: 'revoked' }, 'revoked under the new root');
  t.match(v.verify(der(old.clients.readWrite.chain)), { ok: true });
  t.match(v.verify(der(next.clients.readWrite.chain)), { ok: true });
});

t.test('a bundle is refused whole when two roots share a name, or one is no CA', async (t) => {
  t.throws(() => new PeerVerifier({ root: old.root.cert + samename.root.cert, crls: old.crls(), clock }), new PkiError('MALFORMED_PEM', 'root', 'holds two CA certificates named "CN=Themis Root CA, O=themis-mesh"; each CA of a trust bundle needs its own name (give the new generation another --cn)'));
  t.throws(() => new CrlTrust(old.root.cert + samename.root.cert, clock), { code: 'MALFORMED_PEM' }, 'CrlTrust applies the same rule');
  t.throws(() => trustBundleDer(old.root.cert + old.shards[0]!.cert, 'tls.ca'), { message: /^tls\.ca: "CN=shard-001.*" is not a CA certificate, so it cannot be a trusted root$/ });
  t.equal(trustBundleDer(old.root.cert + old.root.cert, 'tls.ca').length, 1, 'the same root twice is one root');
  t.equal(trustBundleDer(bundle(), 'tls.ca').length, 2);
  t.throws(() => parseTrustBundle(old.root.cert + old.cas.operator.cert, 'tls.ca'), { message: /^tls\.ca: "CN=Themis Operator CA, OU=operator, O=themis-mesh" is neither a root nor a cluster CA/ }, 'an operator CA has no place in it');
  t.throws(() => parseTrustBundle(next.cas.cluster.cert, 'tls.ca'), { message: 'tls.ca: holds no root (self-issued CA certificate)' }, 'a cluster CA alone is no bundle');
  t.same(parseTrustBundle(bundle() + next.cas.cluster.cert, 'tls.ca'), { roots: der(bundle()), clusterCas: [nameKey(next.cas.cluster.cert)] }, 'roots are anchors; the cluster CA is named, not trusted as an anchor');
});

t.test('CRLs from etcd: each intermediate is checked against its own root, and that root\'s CRL', async (t) => {
  const trust = new CrlTrust(bundle(), clock);
  const none = () => undefined;
  const crl = async (p: PkiFixture, ca: 'root' | 'cluster') =>
    (await buildCrl({ issuer: await loadIssuer(p.layout, ca, FIXTURE_PASSPHRASE), crlNumber: 9, revoked: [], thisUpdate: new Date(T0), nextUpdate: new Date(T0 + 86_400_000) })).pem;
  t.match(trust.check(await crl(next, 'root'), none), { ok: true, value: { issuerIsRoot: true } }, 'the new root\'s own CRL');
  t.match(trust.check(await crl(old, 'root'), none), { ok: true, value: { issuerIsRoot: true } }, 'the old root\'s own CRL');
  const value = (await crl(next, 'cluster')) + next.cas.cluster.cert;
  t.match(trust.check(value, none), { ok: true, value: { issuerIsRoot: false, issuerKind: 'cluster' } }, 'the new cluster CA\'s CRL');
  const serial = BigInt('0x' + new X509Certificate(next.cas.cluster.cert).serialNumber).toString(16);
  const asked: string[] = [];
  const byNewRoot = (s: string, rootKey: string) => (asked.push(rootKey), s === serial && rootKey === nameKey(next.root.cert));
  t.match(trust.check(value, none, byNewRoot), { ok: false, reason: 'unknown_issuer', message: /is revoked by the root's CRL/ }, 'revoked by its own root');
  t.same(asked, [nameKey(next.root.cert)], 'the revocation is looked up in the CRL of the root that signed the CA, not the first root');
  t.match(new CrlTrust(old.root.cert, clock).check(value, none), { ok: false, reason: 'unknown_issuer', message: /is not a CA certified by the trusted root$/ }, 'without the new root it is refused');
  t.match(trust.check((await crl(samename, 'cluster')) + samename.cas.cluster.cert, none), { ok: false, reason: 'unknown_issuer', message: /is not a CA certified by a trusted root$/ }, 'an intermediate of a root outside the bundle');
});

t.test('themis-pki trust-bundle: both PKI folders as one tls.ca and one CRL file, or refused on a shared name', async (t) => {
  const b = await buildTrustBundle([old.dir, next.dir]);
  t.same(certsFromPem(b.bundlePem, 'b').map((c) => c.subject), [
    'CN=Themis Root CA, O=themis-mesh', 'CN=Themis Root CA G2, O=themis-mesh',
    'CN=Themis Cluster CA, OU=cluster, O=themis-mesh', 'CN=Themis Cluster CA G2, OU=cluster, O=themis-mesh',
  ], 'both roots, then both cluster CAs');
  t.same(parseTrustBundle(b.bundlePem, 'b').clusterCas, [nameKey(old.cas.cluster.cert), nameKey(next.cas.cluster.cert)], 'which name the cluster CAs that may issue shards');
  t.equal(parseCrls(b.crlsPem, 'b').length, 8);
  t.same(b.pkis.map((p) => p.cas.length), [4, 4]);
  await t.rejects(buildTrustBundle([old.dir, samename.dir]), { code: 'INVALID_ARGUMENT', message: /root\/cert\.pem: is named "CN=Themis Root CA, O=themis-mesh" like .*root\/cert\.pem; each CA trusted at once needs its own name/ });
});
