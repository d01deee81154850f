// admitPeer over a real TLS 1.3 connection, certificates from the test PKI: a shard must come
// from *this* cluster's CA. A second cluster-kind CA under the same root (another cluster's)
// may grant the shard role — chain verification accepts its leaf — but its shards must not act
// as shards here: refused as wrong_issuer by the mesh port's own check, and refused by a sender
// that expects our shard of the same id (verifyServerCert) (issue 25).
import t from 'tap';
import tls from 'node:tls';
import { createPkiFixture, FIXTURE_PASSPHRASE, type PkiFixture } from '../../support/pki-fixture.js';
import { admitPeer, auditPeer, verifyServerCert, type Admission } from '../../../proxy/peer-identity.js';
import { TOKEN_MAX } from '../../../src/hash.js';
import { loadIssuer } from '../../../src/pki/ca-store.js';
import { buildCrl } from '../../../src/pki/crl.js';
import { CAPABILITIES } from '../../../src/pki/identity-extension.js';
import { createIntermediateCa, issueLeaf, validityFor } from '../../../src/pki/issue.js';
import { exportPrivateKeyPem, generateKeyPair } from '../../../src/pki/keys.js';
import { certToPem, parsePem } from '../../../src/pki/pem.js';
import { PeerVerifier } from '../../../src/pki/verify.js';
import { clientProfile, shardProfile } from '../../../src/pki/profiles.js';
import { systemClock, systemRandom } from '../../../src/runtime.js';

let pki: PkiFixture;
/** Another cluster's CA under our root, its CRL, and a shard-001 certificate it issued. */
let other: { crl: string; chain: string; key: string };
t.before(async () => {
  pki = await createPkiFixture({ shards: 1 });
  const root = await loadIssuer(pki.layout, 'root', FIXTURE_PASSPHRASE);
  const caKeys = await generateKeyPair('ecdsa-p256');
  const caCert = await createIntermediateCa({ kind: 'cluster', publicKey: caKeys.publicKey, issuer: root, commonName: 'Themis Cluster CA of cluster-b', validity: validityFor(systemClock, 30), random: systemRandom });
  const ca = { cert: caCert, key: caKeys.privateKey };
  const now = Date.now();
  const crl = await buildCrl({ issuer: ca, crlNumber: 1, revoked: [], thisUpdate: new Date(now - 60_000), nextUpdate: new Date(now + 86_400_000) });
  const leafKeys = await generateKeyPair('ecdsa-p256');
  const leaf = await issueLeaf({
    profile: 'shard',
    commonName: 'shard-001.themis.local',
    publicKey: leafKeys.publicKey,
    issuer: ca,
    dns: ['localhost'],
    ips: ['127.0.0.1'],
    identity: { shardId: 'shard-001', datacenter: 'dc1', tokenRangeStart: 0n, tokenRangeEnd: TOKEN_MAX, capabilities: [...CAPABILITIES], role: 'primary' },
    validity: validityFor(systemClock, 10),
    random: systemRandom,
  });
  other = { crl: crl.pem, chain: certToPem(leaf) + certToPem(caCert), key: await exportPrivateKeyPem(leafKeys.privateKey, undefined) };
});
t.teardown(() => pki?.cleanup());

const der = (pem: string) => parsePem(pem, 'chain').map((b) => new Uint8Array(b.der));

/** A TLS 1.3 server on 127.0.0.1 that runs admitPeer on the client's chain; resolves with its verdict. */
async function admit(client: { chain?: string; key?: string }, opts: { version?: tls.SecureVersion } = {}): Promise<Admission> {
  const verifier = new PeerVerifier({ root: pki.root.cert, crls: [...pki.crls(), other.crl], clock: systemClock });
  const own = verifier.verify(der(pki.shards[0]!.chain), 'serverAuth');
  if (!own.ok) throw new Error(`the fixture's own shard certificate does not verify: ${own.message}`);
  const clusterIssuer = own.peer.issuerName; // what the sidecar derives from its own certificate
  const shard = pki.shards[0]!;
  const version = opts.version ?? 'TLSv1.3';
  const server = tls.createServer({ cert: shard.chain, key: shard.key, ca: pki.root.cert, requestCert: true, rejectUnauthorized: false, minVersion: version });
  const verdict = new Promise<Admission>((resolve) => server.once('secureConnection', (s) => {
    resolve(admitPeer(s, verifier, clusterIssuer));
    s.destroy();
  }));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const socket = tls.connect({ host: '127.0.0.1', port, cert: client.chain, key: client.key, ca: pki.root.cert, checkServerIdentity: () => undefined, minVersion: version, maxVersion: version });
  socket.on('error', () => undefined);
  try {
    return await verdict;
  } finally {
    socket.destroy();
    await new Promise((r) => server.close(r));
  }
}

t.test("control: this cluster's shard certificate is admitted as that shard", async (t) => {
  const a = await admit(pki.shards[0]!);
  t.match(a, { ok: true, peer: { kind: 'shard', identity: { shardId: 'shard-001' } } });
});

t.test("another cluster's CA under the same root: its shard-001 verifies, but is refused here as wrong_issuer", async (t) => {
  const v = new PeerVerifier({ root: pki.root.cert, crls: [...pki.crls(), other.crl], clock: systemClock });
  const chain = v.verify(der(other.chain), 'clientAuth');
  t.equal(chain.ok ? chain.peer.issuerKind : chain.reason, 'cluster', 'the chain verifies: a cluster-kind CA signed by our root may grant the shard role');
  const a = await admit(other);
  t.equal(a.ok ? `admitted as ${a.peer.kind} ${a.peer.identity.shardId}` : a.reason, 'wrong_issuer', 'the mesh port refuses it: it would otherwise act as our shard-001');
  if (!a.ok) t.match(a.message, /claims a shard role but was not issued by this cluster's CA/);
});

/** The client's side: connects to a TLS 1.3 server presenting `server`, runs verifyServerCert for `expected`. */
async function verifyAsSender(server: { chain: string; key: string }, expected: string): Promise<string> {
  const verifier = new PeerVerifier({ root: pki.root.cert, crls: [...pki.crls(), other.crl], clock: systemClock });
  const own = verifier.verify(der(pki.shards[0]!.chain), 'clientAuth');
  if (!own.ok) throw new Error(own.message);
  const srv = tls.createServer({ cert: server.chain, key: server.key, minVersion: 'TLSv1.3' }, (s) => s.on('error', () => undefined));
  srv.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  try {
    return await new Promise<string>((resolve, reject) => {
      const socket = tls.connect({
        host: '127.0.0.1', port, cert: pki.shards[0]!.chain, key: pki.shards[0]!.key, ca: pki.root.cert, minVersion: 'TLSv1.3',
        checkServerIdentity: (_h, cert) => {
          try {
            const r = verifyServerCert(cert as tls.DetailedPeerCertificate, expected, verifier, own.peer.issuerName);
            resolve(`accepted ${r.serial}`);
          } catch (e) {
            resolve((e as Error).message);
          }
          return undefined;
        },
      });
      socket.on('secureConnect', () => socket.destroy());
      socket.on('error', reject);
    });
  } finally {
    await new Promise((r) => srv.close(r));
  }
}

t.test("a sender expecting shard-001 refuses another cluster's shard-001 (same root, same shard id)", async (t) => {
  t.match(await verifyAsSender(pki.shards[0]!, 'shard-001'), /^accepted /, "control: our shard-001's own certificate is accepted");
  t.match(await verifyAsSender(other, 'shard-001'), /peer presented a certificate for "shard-001", expected shard shard-001/, 'refused: not issued by our cluster CA');
});

// Found by mutation testing (docs/testing.md): every refusal of admitPeer's own, and what it admits.
t.test('admitPeer refuses TLS 1.2, a missing certificate and a chain the verifier refuses, each by name', async (t) => {
  const old = await admit(pki.shards[0]!, { version: 'TLSv1.2' });
  t.match(old, { ok: false, reason: 'tls_version', message: 'protocol TLSv1.2 is not TLS 1.3' });
  t.match(await admit({}), { ok: false, reason: 'no_client_certificate', message: 'the client presented no certificate' });
  const revoked = await pki.issue(clientProfile({ name: 'soon-revoked', capabilities: ['read'] }), 'soon-revoked');
  await pki.revoke(revoked.serial);
  const r = await admit(revoked);
  t.match(r, { ok: false, reason: 'revoked', serial: revoked.serial, leaf: { serial: revoked.serial } }, "the verifier's reason, serial and claimed leaf are passed on");
});

t.test('clients and operators are admitted as what they are, with the address they came from', async (t) => {
  const c = await admit(pki.clients.readWrite);
  t.match(c, { ok: true, peer: { kind: 'client', serial: pki.clients.readWrite.serial, address: /^127\.0\.0\.1:\d+$/ } });
  const o = await admit(pki.operators.admin);
  t.match(o, { ok: true, peer: { kind: 'operator' } });
  if (c.ok) {
    t.same(auditPeer(c.peer), { shardId: undefined, cn: c.peer.subject, serial: c.peer.serial, issuer: c.peer.issuer, address: c.peer.address }, 'a client has no shard id in the audit trail');
    t.same(Buffer.from(c.peer.chain[0]!), Buffer.from(der(pki.clients.readWrite.cert)[0]!), 'the chain as presented, leaf first');
  }
  const s = await admit(pki.shards[0]!);
  if (s.ok) t.equal(auditPeer(s.peer).shardId, 'shard-001');
});

t.test('a sender refuses another shard of this cluster, and a chain that does not verify', async (t) => {
  t.match(await verifyAsSender(pki.shards[0]!, 'shard-002'), 'peer presented a certificate for "shard-001", expected shard shard-002');
  const gone = await pki.issue(shardProfile({ id: 'shard-009', cluster: pki.cluster, datacenter: 'dc1', ips: ['127.0.0.1'], tokenRange: { start: 0n, end: TOKEN_MAX }, capabilities: ['read', 'write', 'replicate'], role: 'primary' }), 'shard-009');
  t.match(await verifyAsSender(gone, 'shard-009'), /^accepted /, 'control: shard-009 before its revocation');
  await pki.revoke(gone.serial);
  t.match(await verifyAsSender(gone, 'shard-009'), /^peer certificate refused: revoked: /, 'a revoked shard-009');
});
