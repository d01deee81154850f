import t from 'tap';
import { certsFromPem } from '../../../src/pki/pem.js';
import { createIntermediateCa, issueLeaf, serialHex, validityFor } from '../../../src/pki/issue.js';
import { loadIssuer } from '../../../src/pki/ca-store.js';
import { generateKeyPair } from '../../../src/pki/keys.js';
import { shardProfile } from '../../../src/pki/profiles.js';
import { PeerVerifier } from '../../../src/pki/verify.js';
import { x509 } from '../../../src/pki/x509.js';
import { FakeClock, systemRandom } from '../../../src/runtime.js';
import { FIXTURE_PASSPHRASE, createPkiFixture, type PkiFixture } from '../../support/pki-fixture.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 1);
const clock = new FakeClock(T0);
const der = (pem: string) => certsFromPem(pem, 'test').map((c) => new Uint8Array(c.rawData));

let fx: PkiFixture;
let foreign: PkiFixture;
t.before(async () => {
  [fx, foreign] = await Promise.all([createPkiFixture({ clock, shards: 2 }), createPkiFixture({ clock, shards: 1 })]);
});
t.teardown(async () => {
  await fx.cleanup();
  await foreign.cleanup();
});
t.beforeEach(() => clock.set(T0));

const verifier = (crls = fx.crls()) => new PeerVerifier({ root: fx.root.cert, crls, clock });
const shardParams = (id: string) =>
  shardProfile({ id, cluster: 'cluster-test', datacenter: 'dc1', ips: ['127.0.0.1'], tokenRange: { start: 0n, end: 9n }, capabilities: ['read'], role: 'replica' });

t.test('a good shard chain gives its identity, serial and issuer', async (t) => {
  const s = fx.shards[1]!;
  const r = verifier().verify(der(s.chain), 'clientAuth');
  t.match(r, { ok: true });
  if (!r.ok) return;
  t.same(r.peer.identity, {
    shardId: 'shard-002', datacenter: 'dc1', tokenRangeStart: s.tokenRange.start, tokenRangeEnd: s.tokenRange.end,
    capabilities: ['read', 'write', 'replicate'], role: 'primary',
  });
  t.equal(r.peer.serial, s.serial);
  t.equal(r.peer.serial, serialHex(new x509.X509Certificate(s.cert)));
  const cluster = new x509.X509Certificate(fx.cas.cluster.cert);
  t.equal(r.peer.issuerName, Buffer.from(cluster.subjectName.toArrayBuffer()).toString('hex'));
  t.match(verifier().verify(der(s.chain), 'serverAuth'), { ok: true }, 'shards are servers too');
});

t.test('operators and clients verify for clientAuth with their own capabilities', async (t) => {
  const v = verifier();
  t.match(v.verify(der(fx.operators.admin.chain)), { ok: true, peer: { identity: { role: 'operator', shardId: '', capabilities: ['rebalance', 'add_shard', 'remove_shard', 'view_topology', 'admin'] } } });
  t.match(v.verify(der(fx.operators.readonly.chain)), { ok: true, peer: { identity: { capabilities: ['view_topology'] } } });
  t.match(v.verify(der(fx.clients.readOnly.chain)), { ok: true, peer: { identity: { role: 'client', capabilities: ['read'] } } });
});

t.test('expired and not yet valid, by certificate dates and by the clock', async (t) => {
  const old = await fx.issue(shardParams('shard-090'), 'shard-090', { validity: { notBefore: new Date(T0 - 10 * DAY), notAfter: new Date(T0 - DAY) } });
  t.match(verifier().verify(der(old.chain)), { ok: false, reason: 'expired', serial: old.serial, message: /expired at 2025-12-31/ });
  const future = await fx.issue(shardParams('shard-091'), 'shard-091', { validity: { notBefore: new Date(T0 + DAY), notAfter: new Date(T0 + 10 * DAY) } });
  t.match(verifier().verify(der(future.chain)), { ok: false, reason: 'not_yet_valid', serial: future.serial });
  const v = verifier();
  t.match(v.verify(der(fx.shards[0]!.chain)), { ok: true }, 'control: valid now');
  clock.advance(366 * DAY);
  t.match(v.verify(der(fx.shards[0]!.chain)), { ok: false, reason: 'expired' }, 'same chain, a year later');
});

t.test('unknown issuer: foreign PKI with identical names, missing intermediate, mixed chain', async (t) => {
  const v = verifier();
  const alien = foreign.shards[0]!;
  t.match(v.verify(der(alien.chain)), { ok: false, reason: 'unknown_issuer', message: /no trusted issuer/ });
  t.match(v.verify(der(fx.shards[0]!.cert)), { ok: false, reason: 'unknown_issuer' }, 'leaf without its intermediate');
  t.match(v.verify([...der(alien.cert), ...der(fx.cas.cluster.cert)]), { ok: false, reason: 'unknown_issuer' }, 'foreign leaf + our intermediate (same issuer name)');
  t.match(v.verify([...der(fx.shards[0]!.cert), ...der(foreign.cas.cluster.cert)]), { ok: false, reason: 'unknown_issuer' }, 'our leaf + foreign intermediate');
});

t.test('revoked leaf, and a leaf under a revoked intermediate', async (t) => {
  const local = await createPkiFixture({ clock, shards: 1 });
  t.teardown(() => local.cleanup());
  const v = new PeerVerifier({ root: local.root.cert, crls: local.crls(), clock });
  const rw = local.clients.readWrite;
  t.match(v.verify(der(rw.chain)), { ok: true }, 'control: before revocation');
  await local.revoke(rw.serial, 'keyCompromise');
  v.setCrls(local.crls());
  t.match(v.verify(der(rw.chain)), { ok: false, reason: 'revoked', serial: rw.serial, message: /keyCompromise/ });
  t.match(v.verify(der(local.clients.readOnly.chain)), { ok: true }, 'the other client is untouched');
  await local.revoke(serialHex(new x509.X509Certificate(local.cas.client.cert)), 'cACompromise');
  v.setCrls(local.crls());
  t.match(v.verify(der(local.clients.readOnly.chain)), { ok: false, reason: 'revoked', message: /Client CA.*cACompromise/ });
  t.match(v.verify(der(local.shards[0]!.chain)), { ok: true }, 'the cluster CA is untouched');
});

t.test('wrong key usage: CA as leaf, operator as server, server-only as client', async (t) => {
  const v = verifier();
  t.match(v.verify(der(fx.cas.cluster.chain)), { ok: false, reason: 'wrong_key_usage', message: /is a CA certificate/ });
  t.match(v.verify(der(fx.operators.admin.chain), 'serverAuth'), { ok: false, reason: 'wrong_key_usage', message: /not valid for serverAuth/ });
  const serverOnly = await fx.issue(shardParams('shard-092'), 'shard-092', { overrides: { extendedKeyUsages: [x509.ExtendedKeyUsage.serverAuth] } });
  t.match(v.verify(der(serverOnly.chain), 'serverAuth'), { ok: true }, 'control: fine as a server');
  t.match(v.verify(der(serverOnly.chain), 'clientAuth'), { ok: false, reason: 'wrong_key_usage', serial: serverOnly.serial });
});

t.test('path length: an intermediate may not sign another CA', async (t) => {
  const cluster = await loadIssuer(fx.layout, 'cluster', FIXTURE_PASSPHRASE);
  const subKeys = await generateKeyPair();
  const sub = await createIntermediateCa({ kind: 'client', commonName: 'Rogue Sub CA', publicKey: subKeys.publicKey, issuer: cluster, validity: validityFor(clock, 30), random: systemRandom });
  const leafKeys = await generateKeyPair();
  const leaf = await issueLeaf({ ...shardParams('shard-095'), publicKey: leafKeys.publicKey, issuer: { cert: sub, key: subKeys.privateKey }, validity: validityFor(clock, 10), random: systemRandom });
  const chain = [leaf, sub, new x509.X509Certificate(fx.cas.cluster.cert)].map((c) => new Uint8Array(c.rawData));
  t.match(verifier().verify(chain), { ok: false, reason: 'wrong_key_usage', message: /Themis Cluster CA.* allows 0 intermediate\(s\) below it/ });
});

t.test('missing and malformed identity extension', async (t) => {
  const v = verifier();
  t.match(v.verify(der(fx.etcd.chain), 'serverAuth'), { ok: false, reason: 'missing_extension', message: /no ThemisIdentity extension/ });
  const garbage = await fx.issue(shardParams('shard-093'), 'shard-093', { overrides: { identityDer: new Uint8Array([0x0c, 0x01, 0x61]) } });
  t.match(v.verify(der(garbage.chain)), { ok: false, reason: 'malformed_extension', message: /not a SEQUENCE/ });
  // well-formed DER, but role 7 does not exist
  const role7 = Buffer.from('3011' + '0c0173' + '0c0164' + '020100' + '020101' + '3000' + '0a0107', 'hex');
  const bad = await fx.issue(shardParams('shard-094'), 'shard-094', { overrides: { identityDer: role7 } });
  t.match(v.verify(der(bad.chain)), { ok: false, reason: 'malformed_extension', message: /role: value 7/ });
});

t.test('revocation unknown: a CA without CRL, a stale CRL, a CRL not signed by its CA', async (t) => {
  const [root, cluster, operator, client] = fx.crls() as [string, string, string, string];
  const chain = der(fx.shards[0]!.chain);
  t.match(verifier([root, operator, client]).verify(chain), { ok: false, reason: 'revocation_unknown', message: /no CRL from CN=Themis Cluster CA/ });
  t.match(verifier([cluster, operator, client]).verify(chain), { ok: false, reason: 'revocation_unknown', message: /no CRL from CN=Themis Root CA/ }, 'the root must publish one too');
  const v = verifier();
  clock.advance(31 * DAY);
  t.match(v.verify(chain), { ok: false, reason: 'revocation_unknown', message: /CRL of CN=Themis Cluster CA.* expired/ });
  clock.set(T0);
  const forged = foreign.cas.cluster.crl; // same issuer name, other key
  t.match(verifier([root, forged, operator, client]).verify(chain), { ok: false, reason: 'revocation_unknown', message: /is not signed by it/ });
});

t.test('malformed input: nothing presented, bytes that are no certificate, a bad CRL', async (t) => {
  const v = verifier();
  t.match(v.verify([]), { ok: false, reason: 'malformed_certificate', message: 'no certificate presented' });
  t.match(v.verify([new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01])]), { ok: false, reason: 'malformed_certificate' });
  t.throws(() => v.setCrls(['-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n']), { code: 'MALFORMED_PEM', field: 'crls[0]' });
});

t.test('each certificate is decoded once, however often it is verified', async (t) => {
  const v = verifier();
  t.equal(v.parsed, 1, 'the root, at construction');
  const chain = der(fx.shards[0]!.chain);
  const results = Array.from({ length: 50 }, () => v.verify(chain).ok);
  t.same(new Set(results), new Set([true]), '50 verifications all pass');
  t.equal(v.parsed, 3, 'root + leaf + intermediate');
  v.verify(der(fx.shards[1]!.chain));
  t.equal(v.parsed, 4, 'a second shard adds only its own leaf');
  v.setCrls(fx.crls());
  v.verify(der(fx.shards[1]!.chain));
  t.equal(v.parsed, 4, 'new CRLs do not drop the certificate cache');
});
