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

// Found by mutation testing (docs/testing.md): certificates our issuer never makes, crafted here
// with @peculiar/x509 and signed by the fixture's real CA keys, and the edges of every date.
import { buildCrl, parseCrl } from '../../../src/pki/crl.js';
import { encodeIdentity } from '../../../src/pki/identity-extension.js';
import { craftCert } from '../../support/craft-cert.js';

const craft = (o: Parameters<typeof craftCert>[0]) => craftCert(o, T0);
const shardIdentity = encodeIdentity({ shardId: 'shard-080', datacenter: 'dc1', tokenRangeStart: 0n, tokenRangeEnd: 9n, capabilities: ['read'], role: 'primary' });

t.test('crafted: a CA without keyCertSign, a leaf used as a CA, a leaf without digitalSignature, the extension twice', async (t) => {
  const root = await loadIssuer(fx.layout, 'root', FIXTURE_PASSPHRASE);
  const cluster = await loadIssuer(fx.layout, 'cluster', FIXTURE_PASSPHRASE);
  const clusterDer = der(fx.cas.cluster.cert)[0]!;
  const KU = x509.KeyUsageFlags;
  const good = await craft({ issuer: cluster, cn: 'crafted-good', ku: KU.digitalSignature, identity: [shardIdentity] });
  t.match(verifier().verify([good.der, clusterDer]), { ok: true }, 'control: the crafting makes certificates that verify');

  const noCertSign = await craft({ issuer: root, cn: 'No CertSign CA', ca: true, ku: KU.cRLSign | KU.digitalSignature, kind: 'cluster' });
  const under = await craft({ issuer: noCertSign, cn: 'under-no-certsign', ku: KU.digitalSignature, identity: [shardIdentity] });
  t.match(verifier().verify([under.der, noCertSign.der]), { ok: false, reason: 'wrong_key_usage', message: 'CN=No CertSign CA, O=themis-mesh is not a CA that may sign certificates' });

  const leafAsCa = await craft({ issuer: good, cn: 'issued-by-a-leaf', ku: KU.digitalSignature, identity: [shardIdentity] });
  t.match(verifier().verify([leafAsCa.der, good.der, clusterDer]), { ok: false, reason: 'wrong_key_usage', message: /crafted-good.* is not a CA that may sign certificates/ });

  const noSig = await craft({ issuer: cluster, cn: 'no-digital-signature', ku: KU.keyEncipherment, identity: [shardIdentity] });
  t.match(verifier().verify([noSig.der, clusterDer]), { ok: false, reason: 'wrong_key_usage', message: 'CN=no-digital-signature, O=themis-mesh lacks the digitalSignature key usage' });

  const twice = await craft({ issuer: cluster, cn: 'twice', ku: KU.digitalSignature, identity: [shardIdentity, shardIdentity] });
  t.match(verifier().verify([twice.der, clusterDer]), { ok: false, reason: 'malformed_extension', message: 'CN=twice, O=themis-mesh has the ThemisIdentity extension twice' });

  // A CA that may sign certificates but not CRLs: its CRL counts for nothing.
  const noCrlSign = await craft({ issuer: root, cn: 'No CrlSign CA', ca: true, ku: KU.keyCertSign | KU.digitalSignature, kind: 'cluster' });
  const leaf = await craft({ issuer: noCrlSign, cn: 'under-no-crlsign', ku: KU.digitalSignature, identity: [shardIdentity] });
  const itsCrl = await buildCrl({ issuer: noCrlSign, crlNumber: 1, revoked: [], thisUpdate: new Date(T0 - DAY), nextUpdate: new Date(T0 + DAY) });
  t.match(verifier([...fx.crls(), itsCrl.pem]).verify([leaf.der, noCrlSign.der]), { ok: false, reason: 'revocation_unknown', message: 'CN=No CrlSign CA, O=themis-mesh may not sign CRLs' });
  t.match(verifier([...fx.crls(), itsCrl.pem]).verify([leaf.der, noCrlSign.der], 'clientAuth', { revocation: false }), { ok: true }, 'control: the chain itself is fine');
});

t.test('a failed signature check is not remembered as a success', async (t) => {
  const v = verifier();
  const mixed = [...der(foreign.shards[0]!.cert), ...der(fx.cas.cluster.cert)];
  for (let i = 0; i < 3; i++) t.match(v.verify(mixed), { ok: false, reason: 'unknown_issuer' }, `attempt ${i + 1}`);
});

t.test('the root presented as a peer certificate; names of undecodable certificates', async (t) => {
  t.match(verifier().verify(der(fx.root.cert)), { ok: false, reason: 'wrong_key_usage', message: 'the root itself was presented as the peer certificate' });
  const junk = new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]);
  t.match(verifier().verify([junk]), { ok: false, reason: 'malformed_certificate', message: /^certificate 1/ });
  const r = verifier().verify([der(fx.shards[0]!.cert)[0]!, junk]);
  t.match(r, { ok: false, reason: 'malformed_certificate', message: /^certificate 2/ });
  t.notOk('serial' in r, 'no serial to name when nothing decoded as the failing certificate');
  t.throws(() => new PeerVerifier({ root: new Uint8Array([0x30, 0x00]), crls: fx.crls(), clock }), { code: 'MALFORMED_PEM', field: 'root', message: /root/ });
});

t.test('a refusal names the leaf it was about', async (t) => {
  const v = verifier();
  clock.advance(366 * DAY);
  const s = fx.shards[0]!;
  const leaf = new x509.X509Certificate(s.cert);
  t.match(v.verify(der(s.chain)), { ok: false, reason: 'expired', leaf: { subject: leaf.subject, issuer: leaf.issuer, serial: s.serial } });
});

t.test('revocation: false skips the CRLs and nothing else', async (t) => {
  const local = await createPkiFixture({ clock, shards: 1 });
  t.teardown(() => local.cleanup());
  const rw = local.clients.readWrite;
  await local.revoke(rw.serial);
  const v = new PeerVerifier({ root: local.root.cert, crls: local.crls(), clock });
  t.match(v.verify(der(rw.chain)), { ok: false, reason: 'revoked' });
  t.match(v.verify(der(rw.chain), 'clientAuth', { revocation: false }), { ok: true });
  t.match(v.verify(der(rw.chain), 'serverAuth', { revocation: false }), { ok: false, reason: 'wrong_key_usage' }, 'usage is still checked');
});

t.test('dates: valid from the first to the last millisecond; a CRL valid from thisUpdate to nextUpdate', async (t) => {
  const cluster = await loadIssuer(fx.layout, 'cluster', FIXTURE_PASSPHRASE);
  const keys = await generateKeyPair();
  const notBefore = new Date(T0 + 1000);
  const notAfter = new Date(T0 + 5 * DAY);
  const leaf = await issueLeaf({ ...shardParams('shard-081'), publicKey: keys.publicKey, issuer: cluster, validity: { notBefore, notAfter }, random: systemRandom });
  const chain = [new Uint8Array(leaf.rawData), ...der(fx.cas.cluster.cert)];
  const v = verifier();
  clock.set(notBefore.getTime() - 1);
  t.match(v.verify(chain), { ok: false, reason: 'not_yet_valid', message: `CN=shard-081.themis.local, OU=shard, O=themis-mesh is not valid before ${notBefore.toISOString()}` });
  clock.set(notBefore.getTime());
  t.match(v.verify(chain), { ok: true }, 'at notBefore');
  clock.set(notAfter.getTime());
  t.match(v.verify(chain), { ok: true }, 'at notAfter');
  clock.set(notAfter.getTime() + 1);
  t.match(v.verify(chain), { ok: false, reason: 'expired' });

  const crl = parseCrl(fx.cas.cluster.crl, 'cluster crl');
  clock.set(crl.nextUpdate!.getTime());
  t.match(verifier().verify(der(fx.shards[0]!.chain)), { ok: true }, "at the cluster CRL's nextUpdate");
  clock.set(T0);
  const early = await buildCrl({ issuer: cluster, crlNumber: 1_000, revoked: [], thisUpdate: new Date(T0 + 1000), nextUpdate: new Date(T0 + DAY) });
  const [root, , operator, client] = fx.crls() as [string, string, string, string];
  t.match(verifier([root, early.pem, operator, client]).verify(der(fx.shards[0]!.chain)), { ok: false, reason: 'revocation_unknown', message: /^the CRL of CN=Themis Cluster CA.* is not valid yet$/ });
});

t.test('the path is built by name and signature, whatever else is presented and in whatever order', async (t) => {
  const root = await loadIssuer(fx.layout, 'root', FIXTURE_PASSPHRASE);
  const cluster = await loadIssuer(fx.layout, 'cluster', FIXTURE_PASSPHRASE);
  const KU = x509.KeyUsageFlags;
  const leaf = await craft({ issuer: cluster, cn: 'among-decoys', ku: KU.digitalSignature, identity: [shardIdentity] });
  const unrelated = await craft({ issuer: root, cn: 'Unrelated CA', ca: true, ku: KU.keyCertSign | KU.cRLSign, kind: 'cluster' });
  const impostor = der(foreign.cas.cluster.cert)[0]!; // the same name as our cluster CA, another key
  const real = der(fx.cas.cluster.cert)[0]!;
  t.match(verifier().verify([leaf.der, impostor, unrelated.der, leaf.der, real]), { ok: true }, 'decoys first, the leaf again, the real issuer last');
  t.match(verifier().verify([leaf.der, impostor, unrelated.der]), { ok: false, reason: 'unknown_issuer', message: /no trusted issuer for CN=among-decoys/ }, 'control: without the real issuer');
  const misnamed = await craft({ issuer: { cert: unrelated.cert, key: cluster.key }, cn: 'misnamed-issuer', ku: KU.digitalSignature, identity: [shardIdentity] });
  t.match(verifier().verify([misnamed.der, real, unrelated.der]), { ok: false, reason: 'unknown_issuer', message: /no trusted issuer for CN=misnamed-issuer/ }, 'signed by the cluster key under another CA’s name: names must chain');
  const foreignRoot = der(foreign.root.cert)[0]!; // self-signed, with our root's name
  t.match(verifier().verify([...der(foreign.shards[0]!.chain), foreignRoot]), { ok: false, reason: 'unknown_issuer', message: /^no trusted issuer for .*Root/ }, 'a self-signed impostor root is not its own issuer');
});

t.test('a chain of five intermediates is too long, refused before anything else about it', async (t) => {
  const KU = x509.KeyUsageFlags;
  const chain = async (levels: number) => {
    let issuer: Pick<Awaited<ReturnType<typeof craft>>, 'cert' | 'key'> = await loadIssuer(fx.layout, 'root', FIXTURE_PASSPHRASE);
    const cas: Uint8Array[] = [];
    for (let i = 1; i <= levels; i++) {
      const ca = await craft({ issuer, cn: `Level ${i} CA`, ca: true, ku: KU.keyCertSign | KU.cRLSign, kind: 'cluster' });
      cas.unshift(ca.der);
      issuer = ca;
    }
    const leaf = await craft({ issuer, cn: 'deep-leaf', ku: KU.digitalSignature, identity: [shardIdentity] });
    return [leaf.der, ...cas];
  };
  t.match(verifier().verify(await chain(5)), { ok: false, reason: 'unknown_issuer', message: 'chain too long' });
  const four = await chain(4);
  t.match(verifier().verify(four), { ok: false, reason: 'wrong_key_usage' }, 'control: four make a path, refused for what an intermediate may sign');
  t.match(verifier().verify(four.slice(0, 4)), { ok: false, reason: 'unknown_issuer', message: /no trusted issuer for CN=Level 2 CA/ }, 'control: the top one missing');
});

t.test('a root that does not parse is named as the root', async (t) => {
  t.throws(() => new PeerVerifier({ root: 'not a certificate', crls: [], clock }), { code: 'MALFORMED_PEM', field: 'root' });
  t.throws(() => new PeerVerifier({ root: new Uint8Array([48, 3, 2, 1, 1]), crls: [], clock }), { code: 'MALFORMED_PEM', field: 'root', message: 'root: certificate does not decode as X.509 (Data does not match to Certificate ASN1 schema. Inconsistent length between ASN.1 data and schema)' });
});
