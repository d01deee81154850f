// themis-pki serve's renewal service, in process over real mTLS with the fixture's real CAs:
// a shard renews its own identity on a new key; every other ask is refused with its code and
// audited. The integration test (renewal.test.ts) runs the CLI and sidecars renewing under load.
import 'reflect-metadata';
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { webcrypto } from 'node:crypto';
import { createPkiFixture, openssl, type LeafMaterial, type PkiFixture } from '../../support/pki-fixture.js';
import { loadIssuer, readState } from '../../../src/pki/ca-store.js';
import { revoke } from '../../../src/pki/commands.js';
import { decodeIdentity, encodeIdentity, THEMIS_IDENTITY_OID, type ThemisIdentity } from '../../../src/pki/identity-extension.js';
import { BACKDATE_MS } from '../../../src/pki/issue.js';
import { shardProfile } from '../../../src/pki/profiles.js';
import { RenewalService } from '../../../src/pki/renewal-server.js';
import { decideRenewal } from '../../../src/pki/renewal-policy.js';
import { PeerVerifier } from '../../../src/pki/verify.js';
import { buildCrl } from '../../../src/pki/crl.js';
import { generateKeyPair } from '../../../src/pki/keys.js';
import { createIntermediateCa, issueLeaf, validityFor } from '../../../src/pki/issue.js';
import { AuditLog } from '../../../src/audit/audit-log.js';
import { silentLogger } from '../../../src/log.js';
import { systemClock, systemRandom } from '../../../src/runtime.js';
import { x509 } from '../../../src/pki/x509.js';

const LIFETIME_MS = 60 * 60_000;
const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

let fx: PkiFixture;
let service: RenewalService;
let port: number;
let auditFile: string;

t.before(async () => {
  fx = await createPkiFixture({ shards: 3 });
  auditFile = join(fx.dir, 'serve-audit.log');
  const issuer = await loadIssuer(fx.layout, 'cluster', fx.passphrase);
  service = new RenewalService({
    layout: fx.layout, issuer, tls: { certChain: fx.etcd.chain, key: fx.etcd.key }, lifetimeMs: LIFETIME_MS,
    clock: systemClock, random: systemRandom, audit: new AuditLog({ file: auditFile, source: 'test', clock: systemClock, fsyncIntervalMs: 0 }), log: silentLogger,
  });
  port = await service.listen(0, '127.0.0.1');
});
t.teardown(async () => {
  await service.close();
  await fx.cleanup();
});

interface Ask {
  identity?: ThemisIdentity;
  cn?: string;
  dns?: string[];
  /** Any subjectAltName entries (replaces `dns`). */
  san?: Array<{ type: 'dns' | 'ip' | 'url' | 'email'; value: string }>;
  /** Sign the request with another key than the one it carries. */
  forgeSignature?: boolean;
  /** Ask for the key the certificate already holds. */
  reuse?: LeafMaterial;
  /** An identity extension of these bytes (one that need not decode). */
  rawIdentity?: Uint8Array;
}

async function csrPem(ask: Ask = {}): Promise<{ pem: string; spki: Buffer }> {
  const keys = ask.reuse
    ? { privateKey: await webcrypto.subtle.importKey('pkcs8', pemBody(ask.reuse.key), EC, true, ['sign']), publicKey: await publicOf(ask.reuse) }
    : ((await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair);
  const extensions: x509.Extension[] = [];
  if (ask.identity) extensions.push(new x509.Extension(THEMIS_IDENTITY_OID, false, encodeIdentity(ask.identity)));
  if (ask.rawIdentity) extensions.push(new x509.Extension(THEMIS_IDENTITY_OID, false, ask.rawIdentity));
  if (ask.dns) extensions.push(new x509.SubjectAlternativeNameExtension(ask.dns.map((value) => ({ type: 'dns' as const, value }))));
  if (ask.san) extensions.push(new x509.SubjectAlternativeNameExtension(ask.san));
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ ...(ask.cn ? { name: `CN=${ask.cn}` } : {}), keys, signingAlgorithm: EC, extensions });
  let der = new Uint8Array(csr.rawData);
  if (ask.forgeSignature) {
    der = new Uint8Array(der);
    der[der.length - 5]! ^= 0x01; // inside the signature's last integer
  }
  return { pem: x509.PemConverter.encode(der.buffer, 'CERTIFICATE REQUEST'), spki: Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey)) };
}

function pemBody(pem: string): ArrayBuffer {
  const b = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.length);
}

async function publicOf(m: LeafMaterial): Promise<webcrypto.CryptoKey> {
  return new x509.X509Certificate(m.cert).publicKey.export(EC, ['verify']);
}

function renew(as: LeafMaterial | undefined, body: string, to?: { port: number; ca: string }): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: to?.port ?? port, method: 'POST', path: '/v1/renew', ca: to?.ca ?? fx.root.cert, servername: 'localhost', ...(as ? { cert: as.chain, key: as.key } : {}), headers: { 'content-type': 'application/pkcs10' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const identityOf = (pem: string): ThemisIdentity => decodeIdentity(new Uint8Array(new x509.X509Certificate(pem).getExtension(THEMIS_IDENTITY_OID)!.value));
const auditLines = (): Array<Record<string, unknown>> => readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

t.test('a shard renews: same identity and names on the new key, the service lifetime, recorded, audited, openssl verifies it', async (t) => {
  const shard = fx.shards[0]!;
  const { pem, spki } = await csrPem();
  const r = await renew(shard, pem);
  t.equal(r.status, 200, r.text);
  const certs = x509.PemConverter.decode(r.text);
  t.equal(certs.length, 2, 'leaf and cluster CA');
  const leaf = new x509.X509Certificate(certs[0]!);
  const held = new x509.X509Certificate(shard.cert);
  t.same(identityOf(leaf.toString('pem')), identityOf(shard.cert), 'the identity extension is the held one');
  t.equal(leaf.subject, held.subject);
  t.same(leaf.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON(), held.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON(), 'the names are the held ones');
  t.ok(Buffer.from(leaf.publicKey.rawData).equals(spki), 'on the requested key');
  t.equal(leaf.notAfter.getTime() - leaf.notBefore.getTime(), LIFETIME_MS + BACKDATE_MS, 'valid for the lifetime (plus the usual 5 min back-dating)');
  t.not(leaf.serialNumber, held.serialNumber);
  const serial = BigInt('0x' + leaf.serialNumber).toString(16);
  const state = await readState(fx.layout, 'cluster');
  t.ok(state.issued.some((i) => i.serial === serial && i.name === shard.id), 'the CA records the serial (revoke finds it)');
  const issued = auditLines().find((l) => l.event === 'CERTIFICATE_ISSUED' && (l.peer as { serial: string }).serial === serial);
  t.ok(issued, 'CERTIFICATE_ISSUED with the new serial');
  t.equal(issued?.renewed_serial, shard.serial, 'and the serial it replaces');
  const leafFile = join(fx.dir, 'renewed.pem');
  writeFileSync(leafFile, x509.PemConverter.encode(certs[0]!, 'CERTIFICATE'));
  const v = openssl(['verify', '-CAfile', fx.root.certPath, '-untrusted', fx.cas.cluster.certPath, leafFile]);
  t.equal(v.status, 0, `openssl verify: ${v.stdout}${v.stderr}`);
  // Asking again for exactly the held identity (extension, names) is a renewal too.
  const again = await renew(shard, (await csrPem({ identity: identityOf(shard.cert), cn: held.subject.match(/CN=([^,]+)/)![1], dns: held.getExtension(x509.SubjectAlternativeNameExtension)!.names.items.filter((n) => n.type === 'dns').map((n) => n.value) })).pem);
  t.equal(again.status, 200, again.text);
});

const refusal = (r: { status: number; text: string }) => ({ status: r.status, ...(JSON.parse(r.text) as { code: string; reason?: string; fields?: string[] }) });

t.test('a renewal asking for more than the certificate holds is refused and audited', async (t) => {
  const shard = fx.shards[1]!;
  const mine = identityOf(shard.cert);
  const cases: Array<[string, Ask, string[]]> = [
    ['a broader token range', { identity: { ...mine, tokenRangeEnd: mine.tokenRangeEnd + 1000n } }, ['token range']],
    ['more capabilities', { identity: { ...mine, capabilities: [...mine.capabilities, 'admin'] } }, ['capabilities']],
    ['another role', { identity: { ...mine, role: mine.role === 'primary' ? 'replica' : 'primary' } }, ['role']],
    ["shard-001's identity", { identity: identityOf(fx.shards[0]!.cert) }, ['shard id', 'token range']],
    ["shard-001's common name", { cn: 'shard-001.themis.local' }, ['subject']],
    ['another DNS name', { dns: ['shard-002.themis.local', 'evil.example'] }, ['subjectAltName']],
  ];
  for (const [what, ask, fields] of cases) {
    const r = refusal(await renew(shard, (await csrPem(ask)).pem));
    t.same({ status: r.status, code: r.code }, { status: 403, code: 'IDENTITY_CHANGE_REFUSED' }, what);
    t.same(r.fields, fields, `${what}: names the fields`);
  }
  const audited = auditLines().filter((l) => l.event === 'CERTIFICATE_RENEWAL_REFUSED' && l.code === 'IDENTITY_CHANGE_REFUSED' && (l.peer as { serial?: string })?.serial === shard.serial);
  t.equal(audited.length, cases.length, 'each refusal is audited with the asking serial');
  // The words, pinned (mutation testing: a refusal that says nothing useful is a refusal all the same).
  const say = async (ask: Ask) => (refusal(await renew(shard, (await csrPem(ask)).pem)) as { message?: string }).message;
  t.equal(await say(cases[0]![1]), "the request asks for another token range than shard-002's certificate holds; changes need an operator (themis-pki issue-shard)");
  t.equal(await say({ cn: 'shard-001.themis.local' }), 'the request names shard-001.themis.local, the certificate shard-002.themis.local; changes need an operator');
  t.equal(await say(cases[3]![1]), "the request asks for another shard id, token range than shard-002's certificate holds; changes need an operator (themis-pki issue-shard)", 'two fields, both named');
});

t.test('who may not renew: no certificate, a revoked one (in a CRL or only in the CA records), an expired one, an operator', async (t) => {
  const { pem } = await csrPem();
  const none = refusal(await renew(undefined, pem));
  t.same({ status: none.status, code: none.code }, { status: 401, code: 'CERTIFICATE_REQUIRED' });
  t.equal((none as { message?: string }).message, 'renewal needs the current certificate, presented as the TLS client certificate');

  const shard3 = fx.shards[2]!;
  await revoke(fx.ctx, { serial: shard3.serial, reason: 'keyCompromise' }); // recorded, no CRL written yet
  const unpublished = refusal(await renew(shard3, pem));
  t.same({ status: unpublished.status, code: unpublished.code, reason: unpublished.reason }, { status: 403, code: 'RENEWAL_REFUSED', reason: 'revoked' }, 'revoked in the CA records, before any CRL');

  const other = await fx.issue(shardProfile({ id: 'shard-009', cluster: fx.cluster, datacenter: 'dc1', tokenRange: { start: 0n, end: 10n }, capabilities: ['read'], role: 'replica' }), 'shard-009');
  await fx.revoke(other.serial); // recorded and published
  const published = refusal(await renew(other, pem));
  t.same({ status: published.status, code: published.code, reason: published.reason }, { status: 403, code: 'RENEWAL_REFUSED', reason: 'revoked' }, 'revoked by the CRL');

  const past = { notBefore: new Date(Date.now() - 3 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) };
  const expired = await fx.issue(shardProfile({ id: 'shard-008', cluster: fx.cluster, datacenter: 'dc1', tokenRange: { start: 0n, end: 10n }, capabilities: ['read'], role: 'replica' }), 'shard-008', { validity: past });
  const e = refusal(await renew(expired, pem));
  t.same({ status: e.status, code: e.code, reason: e.reason }, { status: 403, code: 'RENEWAL_REFUSED', reason: 'expired' }, 'an expired certificate');
  t.match((e as { message?: string }).message, /^the presented certificate cannot renew: CN=shard-008\.themis\.local, OU=shard, O=themis-mesh expired at \d{4}-/, 'says why, naming the certificate');

  const op = refusal(await renew(fx.operators.admin, pem));
  t.same({ status: op.status, code: op.code, reason: op.reason }, { status: 403, code: 'RENEWAL_REFUSED', reason: 'not_a_shard' }, 'an operator certificate');
  t.equal((op as { message?: string }).message, 'only shard certificates renew here; this one is a operator certificate from the operator CA');
  const client = refusal(await renew(fx.clients.readWrite, pem));
  t.same({ status: client.status, code: client.code, reason: client.reason }, { status: 403, code: 'RENEWAL_REFUSED', reason: 'not_a_shard' }, 'a client certificate');
  t.ok(auditLines().some((l) => l.event === 'CERTIFICATE_RENEWAL_REFUSED' && (l.peer as { serial?: string })?.serial === shard3.serial && l.reason === 'revoked' && l.message === `certificate ${shard3.serial} is revoked by its CA: a revoked certificate cannot renew`), 'the revoked renewal is audited');
});

t.test('a malformed request: not a CSR, a forged self-signature, the old key again, too large', async (t) => {
  const shard = fx.shards[0]!;
  const garbage = refusal(await renew(shard, 'hello'));
  t.same({ status: garbage.status, code: garbage.code }, { status: 400, code: 'INVALID_CSR' }, 'not a CSR');
  const forged = refusal(await renew(shard, (await csrPem({ forgeSignature: true })).pem));
  t.same({ status: forged.status, code: forged.code }, { status: 400, code: 'INVALID_CSR' }, 'a self-signature that does not verify');
  const reused = refusal(await renew(shard, (await csrPem({ reuse: shard })).pem));
  t.same({ status: reused.status, code: reused.code }, { status: 400, code: 'INVALID_CSR' }, 'the held key again');
  t.match(JSON.parse((await renew(shard, (await csrPem({ reuse: shard })).pem)).text).message, /reuses the current key/);
  const pemBad = refusal(await renew(shard, '-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n'));
  t.match((pemBad as { message?: string }).message, /^the body is not a PKCS#10 certificate request: request body: /, 'a broken PEM block: the message names the request body');
  const twoBlocks = refusal(await renew(shard, (await csrPem()).pem + (await csrPem()).pem));
  t.equal((twoBlocks as { message?: string }).message, 'the body is not a PKCS#10 certificate request: expected exactly one CERTIFICATE REQUEST block');
  const undecodable = refusal(await renew(shard, (await csrPem({ rawIdentity: new Uint8Array([0x30, 0x03, 0x02, 0x01]) })).pem));
  t.same({ status: undecodable.status, code: undecodable.code }, { status: 400, code: 'INVALID_CSR' }, 'an identity extension that does not decode');
  t.match((undecodable as { message?: string }).message, /^the request's identity extension does not decode: /);
  const big = refusal(await renew(shard, 'x'.repeat(20_000)));
  t.same({ status: big.status, code: big.code }, { status: 413, code: 'PAYLOAD_TOO_LARGE' });
});

t.test('root rotation: with --previous, a shard of the old generation renews into the new one; without it, it cannot', async (t) => {
  const next = await createPkiFixture({ shards: 1, generation: 'G2' });
  const services: RenewalService[] = [];
  t.teardown(async () => {
    for (const s of services) await s.close();
    await next.cleanup();
  });
  const start = async (previous: boolean) => {
    const s = new RenewalService({
      layout: next.layout, ...(previous ? { previous: fx.layout } : {}), issuer: await loadIssuer(next.layout, 'cluster', next.passphrase),
      tls: { certChain: next.etcd.chain, key: next.etcd.key }, lifetimeMs: LIFETIME_MS, clock: systemClock, random: systemRandom,
      audit: new AuditLog({ file: join(next.dir, `audit-${previous}.log`), source: 'test', clock: systemClock, fsyncIntervalMs: 0 }), log: silentLogger,
    });
    services.push(s);
    return { port: await s.listen(0, '127.0.0.1'), ca: next.root.cert };
  };
  const shard = fx.shards[1]!;
  const moving = await start(true);
  const r = await renew(shard, (await csrPem()).pem, moving);
  t.equal(r.status, 200, r.text);
  const leaf = new x509.X509Certificate(x509.PemConverter.decode(r.text)[0]!);
  t.equal(leaf.issuer, 'CN=Themis Cluster CA G2, OU=cluster, O=themis-mesh', 'issued by the new generation');
  t.same(identityOf(leaf.toString('pem')), identityOf(shard.cert), 'with the identity it held');
  const chain = join(next.dir, 'moved.pem');
  writeFileSync(chain, leaf.toString('pem'));
  t.equal(openssl(['verify', '-CAfile', next.root.certPath, '-untrusted', next.cas.cluster.certPath, chain]).status, 0, 'openssl verifies it under the new root');
  const doomed = await fx.issue(shardProfile({ id: 'shard-007', cluster: fx.cluster, datacenter: 'dc1', tokenRange: { start: 0n, end: 10n }, capabilities: ['read'], role: 'replica' }), 'shard-007-doomed');
  await revoke(fx.ctx, { serial: doomed.serial, reason: 'keyCompromise' });
  const gone = await renew(doomed, (await csrPem()).pem, moving);
  t.equal(gone.status, 403, 'the old generation\'s revocation records still count');
  t.match(gone.text, /"reason":"revoked"/);

  const plain = await start(false);
  const refused = await renew(shard, (await csrPem()).pem, plain);
  t.match({ status: refused.status, code: JSON.parse(refused.text).code, reason: JSON.parse(refused.text).reason }, { status: 403, code: 'RENEWAL_REFUSED', reason: 'unknown_issuer' }, 'without --previous the old generation is a stranger');
});

t.test('a cluster-kind CA of another cluster under the same root: its shards do not renew here', async (t) => {
  const root = await loadIssuer(fx.layout, 'root', fx.passphrase);
  const caKeys = await generateKeyPair('ecdsa-p256');
  const ca = { cert: await createIntermediateCa({ kind: 'cluster', publicKey: caKeys.publicKey, issuer: root, commonName: 'Themis Cluster CA of cluster-b', validity: validityFor(systemClock, 30), random: systemRandom }), key: caKeys.privateKey };
  const now = Date.now();
  const crl = await buildCrl({ issuer: ca, crlNumber: 1, revoked: [], thisUpdate: new Date(now - 60_000), nextUpdate: new Date(now + 86_400_000) });
  const leafKeys = await generateKeyPair('ecdsa-p256');
  const held = identityOf(fx.shards[0]!.cert);
  const leaf = await issueLeaf({ profile: 'shard', commonName: 'shard-001.themis.local', publicKey: leafKeys.publicKey, issuer: ca, ips: ['127.0.0.1'], identity: held, validity: validityFor(systemClock, 10), random: systemRandom });
  const verifier = new PeerVerifier({ root: fx.root.cert, crls: [...fx.crls(), crl.pem], clock: systemClock });
  const csr = new x509.Pkcs10CertificateRequest((await csrPem()).pem);
  const ours = new x509.X509Certificate(fx.cas.cluster.cert).subjectName.toArrayBuffer();
  const decide = (clusterCas?: Set<string>) => () => decideRenewal({ chain: [new Uint8Array(leaf.rawData), new Uint8Array(ca.cert.rawData)], csr, verifier, revoked: new Set(), ...(clusterCas ? { clusterCas } : {}) });
  t.throws(decide(new Set([Buffer.from(ours).toString('hex')])), { code: 'RENEWAL_REFUSED', details: { reason: 'unknown_issuer' }, message: /was issued by CN=Themis Cluster CA of cluster-b, OU=cluster, O=themis-mesh, not by this service's cluster CA/ });
  t.doesNotThrow(decide(new Set([Buffer.from(ca.cert.subjectName.toArrayBuffer()).toString('hex')])), 'control: named as a cluster CA of this service, it renews');
});

// Found by mutation testing (issue 25): names of every type, the replica role, a shard-less identity.
const heldSan = (m: LeafMaterial) => new x509.X509Certificate(m.cert).getExtension(x509.SubjectAlternativeNameExtension)!.names.items.map((n) => ({ type: n.type as 'dns' | 'ip' | 'url', value: n.value }));

t.test('names: the held DNS names, IPs and URIs (or fewer) renew; another IP or URI, or another type of name, is refused', async (t) => {
  const shard = fx.shards[0]!;
  const held = heldSan(shard);
  t.same([...new Set(held.map((n) => n.type))].sort(), ['dns', 'ip', 'url'], 'the fixture shard holds names of each type');
  for (const [what, san] of [['all of them', held], ['only the IP and the URI', held.filter((n) => n.type !== 'dns')]] as const) {
    const r = await renew(shard, (await csrPem({ san: [...san] })).pem);
    t.equal(r.status, 200, `${what}: ${r.text}`);
  }
  const cases: Array<[string, Ask['san'], string]> = [
    ['another IP', [...held, { type: 'ip', value: '127.0.0.99' }], 'the request asks for names (subjectAltName) the certificate does not hold; changes need an operator'],
    ['another URI', [{ type: 'url', value: 'urn:themis:shard:other:001' }], 'the request asks for names (subjectAltName) the certificate does not hold; changes need an operator'],
    ['an email name', [{ type: 'email', value: 'shard@example.org' }], 'the request asks for a email name, which shard certificates do not carry'],
  ];
  for (const [what, san, message] of cases) {
    const r = refusal(await renew(shard, (await csrPem({ san })).pem));
    t.same({ status: r.status, code: r.code, fields: r.fields, message: (r as { message?: string }).message }, { status: 403, code: 'IDENTITY_CHANGE_REFUSED', fields: ['subjectAltName'], message }, what);
  }
});

t.test('a replica shard renews too; a cluster-CA certificate naming no shard does not', async (t) => {
  const replica = await fx.issue(shardProfile({ id: 'shard-007', cluster: fx.cluster, datacenter: 'dc1', tokenRange: { start: 0n, end: 10n }, capabilities: ['read'], role: 'replica' }), 'shard-007');
  const ok = await renew(replica, (await csrPem()).pem);
  t.equal(ok.status, 200, ok.text);
  t.same(identityOf(x509.PemConverter.decode(ok.text).map((d) => x509.PemConverter.encode(d, 'CERTIFICATE'))[0]!), identityOf(replica.cert), 'the replica identity');
  const profile = shardProfile({ id: 'shard-006', cluster: fx.cluster, datacenter: 'dc1', tokenRange: { start: 0n, end: 10n }, capabilities: ['read'], role: 'primary' });
  const nameless = await fx.issue({ ...profile, identity: { ...profile.identity!, shardId: '' } as ThemisIdentity }, 'shard-006-nameless');
  const answer = await renew(nameless, (await csrPem()).pem);
  t.equal(answer.status, 403, `refused, not renewed: ${answer.text.slice(0, 80)}`);
  if (answer.status === 403) t.same((({ code, reason }) => ({ code, reason }))(refusal(answer)), { code: 'RENEWAL_REFUSED', reason: 'not_a_shard' });
});
