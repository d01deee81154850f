import t from 'tap';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { loadIssuer } from '../../../src/pki/ca-store.js';
import { buildCrl, parseCrl, type ParsedCrl } from '../../../src/pki/crl.js';
import { CrlTrust } from '../../../src/pki/crl-trust.js';
import { FakeClock } from '../../../src/runtime.js';
import { CrlWatchdog, staleCrls } from '../../../proxy/control/crl-health.js';
import { FIXTURE_PASSPHRASE, createPkiFixture, type PkiFixture } from '../../support/pki-fixture.js';

const T0 = Date.UTC(2026, 0, 1);
const DAY = 86_400_000;
const clock = new FakeClock(T0);
let fx: PkiFixture;
let foreign: PkiFixture;
t.before(async () => {
  fx = await createPkiFixture({ clock, shards: 1 });
  foreign = await createPkiFixture({ clock, shards: 1 });
});
t.teardown(async () => {
  await fx.cleanup();
  await foreign.cleanup();
});

const crlOf = async (p: PkiFixture, ca: 'cluster' | 'client' | 'root', crlNumber: number, nextUpdate = T0 + DAY) =>
  (await buildCrl({ issuer: await loadIssuer(p.layout, ca, FIXTURE_PASSPHRASE), crlNumber, revoked: [], thisUpdate: new Date(T0), nextUpdate: new Date(nextUpdate) })).pem;
const none = () => undefined;

t.test('accepted: the root CRL alone, an intermediate CRL with its CA certificate', async (t) => {
  const trust = new CrlTrust(fx.root.cert, clock);
  const root = trust.check(await crlOf(fx, 'root', 5), none);
  t.ok(root.ok, 'root CRL');
  const cluster = trust.check((await crlOf(fx, 'cluster', 5)) + fx.cas.cluster.cert, none);
  t.ok(cluster.ok, 'cluster CRL with the cluster CA certificate');
  if (cluster.ok) t.equal(cluster.value.crl.crlNumber, 5n);
});

t.test('refused, each with its reason', async (t) => {
  const trust = new CrlTrust(fx.root.cert, clock);
  const cluster7 = await crlOf(fx, 'cluster', 7);
  const held = parseCrl(cluster7, 'held');
  const holding = () => held;
  const cases: [string, string, string, (() => ParsedCrl | undefined)?][] = [
    ['empty', '', 'malformed'],
    ['a certificate, no CRL', fx.cas.cluster.cert, 'malformed'],
    ['two CRLs', cluster7 + cluster7, 'malformed'],
    ['intermediate CRL without its certificate', cluster7, 'unknown_issuer'],
    ['a foreign PKI\'s cluster CRL and CA', (await crlOf(foreign, 'cluster', 9)) + foreign.cas.cluster.cert, 'unknown_issuer'],
    ['a foreign root\'s CRL (same name as ours)', await crlOf(foreign, 'root', 9), 'bad_signature'],
    ['cluster CRL carrying the client CA certificate', cluster7 + fx.cas.client.cert, 'unknown_issuer'],
    ['a lower number than held', (await crlOf(fx, 'cluster', 6)) + fx.cas.cluster.cert, 'not_newer', holding],
    ['the same number, other content', (await crlOf(fx, 'cluster', 7, T0 + 2 * DAY)) + fx.cas.cluster.cert, 'not_newer', holding],
  ];
  for (const [name, value, reason, heldFn] of cases) {
    const r = trust.check(value, heldFn ?? none);
    t.equal(r.ok ? 'accepted' : r.reason, reason, name);
    if (!r.ok && reason === 'not_newer') t.notOk(r.duplicate, `${name}: not mistaken for a re-read`);
  }
  const same = trust.check(cluster7 + fx.cas.cluster.cert, holding);
  t.match(same, { ok: false, reason: 'not_newer', duplicate: true }, 'the CRL in force, read again, is flagged as a duplicate');
  const higher = trust.check((await crlOf(fx, 'cluster', 8)) + fx.cas.cluster.cert, holding);
  t.ok(higher.ok, 'a higher number is taken');
});

t.test('a signature that does not verify is bad_signature', async (t) => {
  const trust = new CrlTrust(fx.root.cert, clock);
  const pem = await crlOf(fx, 'client', 3);
  const der = parseCrl(pem, 'x').der;
  const flipped = Buffer.from(der);
  flipped[flipped.length - 3]! ^= 0x01;
  const text = `-----BEGIN X509 CRL-----\n${flipped.toString('base64')}\n-----END X509 CRL-----\n`;
  const r = trust.check(text + fx.cas.client.cert, none);
  t.match(r, { ok: false, reason: 'bad_signature' });
});

t.test('stale CRLs are reported on every check, by issuer, until a fresh one is in force', async (t) => {
  const c = new FakeClock(T0);
  const crls = [parseCrl(await crlOf(fx, 'cluster', 1, T0 + DAY), 'a'), parseCrl(await crlOf(fx, 'root', 1, T0 + 3 * DAY), 'b')];
  t.same(staleCrls(crls, c.now()), [], 'none stale yet');
  const lines: { issuer?: string; msg?: string; level?: number }[] = [];
  const log = pino({ level: 'info' }, new Writable({ write: (chunk, _e, cb) => (lines.push(JSON.parse(String(chunk))), cb()) }));
  const dog = new CrlWatchdog(() => crls, c, log);
  t.same(dog.check(), []);
  c.advance(DAY + 1);
  const stale = dog.check();
  t.equal(stale.length, 1);
  t.match(stale[0]!.issuer, /Cluster/);
  c.advance(1000);
  dog.check();
  await new Promise((r) => setImmediate(r));
  const errors = lines.filter((l) => l.level === 50);
  t.equal(errors.length, 2, 'an error line on each check while stale');
  t.match(errors[0]!.msg, /certificates issued by this CA are refused/);
});

t.test('an intermediate revoked by the root CRL in force publishes nothing; check() never throws', async (t) => {
  const trust = new CrlTrust(fx.root.cert, clock);
  const value = (await crlOf(fx, 'cluster', 11)) + fx.cas.cluster.cert;
  const clusterSerial = BigInt('0x' + new (await import('node:crypto')).X509Certificate(fx.cas.cluster.cert).serialNumber).toString(16);
  t.ok(trust.check(value, none, () => false).ok, 'accepted while the root CRL does not list the cluster CA');
  t.match(trust.check(value, none, (s) => s === clusterSerial), { ok: false, reason: 'unknown_issuer' }, 'refused once the root CRL revokes the cluster CA');
  const r = trust.check(value, () => {
    throw new Error('boom');
  });
  t.match(r, { ok: false, reason: 'malformed' }, 'an exception inside becomes a refusal');
});

// Found by mutation testing (docs/testing.md): the exact refusals, and issuers our PKI never
// makes (crafted with real keys, test/support/craft-cert.ts).
import { craftCert, crlWithoutNumber } from '../../support/craft-cert.js';
import { x509 } from '../../../src/pki/x509.js';

t.test('what an accepted CRL says of its issuer', async (t) => {
  const trust = new CrlTrust(fx.root.cert, clock);
  t.match(trust.check(await crlOf(fx, 'root', 5), none), { ok: true, value: { issuerIsRoot: true, issuerKind: 'root' } });
  t.match(trust.check((await crlOf(fx, 'cluster', 5)) + fx.cas.cluster.cert, none), { ok: true, value: { issuerIsRoot: false, issuerKind: 'cluster' } });
});

t.test('the shape of the value: one CRL, at most one certificate, nothing else', async (t) => {
  const trust = new CrlTrust(fx.root.cert, clock);
  const cluster = await crlOf(fx, 'cluster', 5);
  const shape = 'expected one X509 CRL block, optionally followed by the issuing CA certificate';
  t.match(trust.check(cluster + fx.cas.cluster.cert + fx.cas.cluster.cert, none), { ok: false, reason: 'malformed', message: shape }, 'two certificates');
  const key = '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n';
  t.match(trust.check(cluster + fx.cas.cluster.cert + key, none), { ok: false, reason: 'malformed', message: shape }, 'another block');
  t.match(trust.check('-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n', none), { ok: false, reason: 'malformed', message: /value/ }, 'names the value');
  t.match(trust.check('no PEM here', none), { ok: false, reason: 'malformed', message: /^value: no complete PEM block/ }, 'no block at all: names the value');
  t.match(trust.check(cluster + '-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n', none), { ok: false, reason: 'unknown_issuer', message: /^the issuer certificate does not parse \(/ }, 'a certificate block that is no certificate');
});

t.test('each refusal, word for word', async (t) => {
  const trust = new CrlTrust(fx.root.cert, clock);
  const cluster7 = await crlOf(fx, 'cluster', 7);
  const name = parseCrl(cluster7, 'x').issuer;
  t.match(trust.check(cluster7, none), { reason: 'unknown_issuer', message: `${name} is not the root and the value carries no issuer certificate`, issuer: name });
  t.match(trust.check(cluster7 + fx.cas.client.cert, none), { reason: 'unknown_issuer', message: /^the certificate carried is for CN=Themis Client CA, OU=client, O=themis-mesh, not the CRL's issuer CN=Themis Cluster CA/ });
  t.match(trust.check((await crlOf(foreign, 'cluster', 9)) + foreign.cas.cluster.cert, none), { reason: 'unknown_issuer', message: `${name} is not a CA certified by the trusted root` });
  t.match(trust.check(await crlOf(foreign, 'root', 9), none), { reason: 'bad_signature', message: /^the CRL is not signed by CN=Themis Root CA/ });
  const held = parseCrl(cluster7, 'held');
  t.match(trust.check((await crlOf(fx, 'cluster', 6)) + fx.cas.cluster.cert, () => held), { reason: 'not_newer', message: `CRL number 6 of ${name} is not higher than the one in force (7)` });
  const serial = BigInt('0x' + new (await import('node:crypto')).X509Certificate(fx.cas.cluster.cert).serialNumber).toString(16);
  t.match(trust.check(cluster7 + fx.cas.cluster.cert, none, (s) => s === serial), { message: `${name} is revoked by the root's CRL; its CRLs count for nothing` });
});

t.test('crafted issuers: a leaf, one with our root\'s name but not its signature, an expired CA, a CA without cRLSign, a CRL without a number', async (t) => {
  const root = await loadIssuer(fx.layout, 'root', FIXTURE_PASSPHRASE);
  const KU = x509.KeyUsageFlags;
  const trust = new CrlTrust(fx.root.cert, clock);
  const valueOf = async (issuer: Awaited<ReturnType<typeof craftCert>>) =>
    (await buildCrl({ issuer, crlNumber: 1, revoked: [], thisUpdate: new Date(T0), nextUpdate: new Date(T0 + DAY) })).pem + issuer.pem;

  const ok = await craftCert({ issuer: root, cn: 'Good Crafted CA', ca: true, ku: KU.keyCertSign | KU.cRLSign, kind: 'cluster' }, T0);
  t.match(trust.check(await valueOf(ok), none), { ok: true }, 'control: a crafted CA the root signed, with cRLSign, is accepted');

  const leaf = await craftCert({ issuer: root, cn: 'Leaf Of Root', ku: KU.digitalSignature | KU.cRLSign }, T0);
  t.match(trust.check(await valueOf(leaf), none), { ok: false, reason: 'unknown_issuer', message: 'CN=Leaf Of Root, O=themis-mesh is not a CA certificate' });

  const otherKey = await craftCert({ issuer: root, cn: 'scratch' }, T0);
  const impostor = await craftCert({ issuer: { cert: root.cert, key: otherKey.key }, cn: 'Impostor CA', ca: true, ku: KU.keyCertSign | KU.cRLSign }, T0);
  t.match(trust.check(await valueOf(impostor), none), { ok: false, reason: 'unknown_issuer', message: 'CN=Impostor CA, O=themis-mesh is not a CA certified by the trusted root' }, "our root's name as issuer, another key's signature");

  const dated = await craftCert({ issuer: root, cn: 'Dated CA', ca: true, ku: KU.keyCertSign | KU.cRLSign, notBefore: new Date(T0 - 1000), notAfter: new Date(T0 + 1000) }, T0);
  const value = await valueOf(dated);
  const at = (ms: number) => new CrlTrust(fx.root.cert, new FakeClock(ms)).check(value, none);
  t.match(at(T0 - 1000), { ok: true }, 'at notBefore');
  t.match(at(T0 + 1000), { ok: true }, 'at notAfter');
  t.match(at(T0 - 1001), { ok: false, reason: 'unknown_issuer', message: 'CN=Dated CA, O=themis-mesh is outside its validity period' });
  t.match(at(T0 + 1001), { ok: false, reason: 'unknown_issuer', message: 'CN=Dated CA, O=themis-mesh is outside its validity period' });

  const noCrlSign = await craftCert({ issuer: root, cn: 'No CrlSign CA', ca: true, ku: KU.keyCertSign }, T0);
  t.match(trust.check(await valueOf(noCrlSign), none), { ok: false, reason: 'unknown_issuer', message: 'CN=No CrlSign CA, O=themis-mesh lacks the cRLSign key usage' });

  t.match(trust.check(await crlWithoutNumber(root, T0), none), { ok: false, reason: 'no_crl_number', message: /^the CRL of CN=Themis Root CA.* has no CRL number, so it cannot be ordered$/ });
});
