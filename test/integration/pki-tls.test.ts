// Real TLS 1.3 mTLS handshakes between two Node endpoints with certificates and CRLs from our
// PKI: good ones connect; revoked, expired, foreign-CA and wrong-usage ones do not. Node gives no
// reason when rejectUnauthorized refuses, so each refusal is also run once in diagnosis mode
// (rejectUnauthorized: false) to read OpenSSL's verdict from authorizationError.
import t, { type Test } from 'tap';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { shardProfile } from '../../src/pki/profiles.js';
import { serialHex } from '../../src/pki/issue.js';
import { PeerVerifier } from '../../src/pki/verify.js';
import { x509 } from '../../src/pki/x509.js';
import { systemClock } from '../../src/runtime.js';
import { createPkiFixture, type LeafMaterial, type PkiFixture } from '../support/pki-fixture.js';

let fx: PkiFixture;
let foreign: PkiFixture;
t.before(async () => {
  [fx, foreign] = await Promise.all([createPkiFixture({ shards: 3 }), createPkiFixture({ shards: 1 })]);
});
t.teardown(async () => {
  await fx.cleanup();
  await foreign.cleanup();
});

interface Outcome {
  delivered: boolean; // the client read the server's greeting
  protocol?: string | null;
  serverAuthorized?: boolean;
  serverAuthError?: string; // OpenSSL's verdict on the client certificate
  clientError?: string; // the client's error code (its verdict on the server, or a reset)
  presented: Uint8Array[]; // the client chain as the server received it
}

/** `crls: null` turns CRL checking off (only to isolate a chain error in diagnosis). */
async function handshake(server: LeafMaterial, client: LeafMaterial, o: { strict?: boolean; crls?: string[] | null } = {}): Promise<Outcome> {
  const strict = o.strict ?? true;
  const crl = o.crls === null ? {} : { crl: o.crls ?? fx.crls() };
  const trust = { ca: fx.root.cert, ...crl, minVersion: 'TLSv1.3' as const, maxVersion: 'TLSv1.3' as const };
  const out: Outcome = { delivered: false, presented: [] };
  const srv = tls.createServer({ ...trust, key: server.key, cert: server.chain, requestCert: true, rejectUnauthorized: strict }, (sock) => {
    out.protocol = sock.getProtocol();
    out.serverAuthorized = sock.authorized;
    if (sock.authorizationError) out.serverAuthError = String((sock.authorizationError as NodeJS.ErrnoException).code ?? sock.authorizationError);
    let c = sock.getPeerCertificate(true);
    while (c?.raw && !out.presented.some((d) => Buffer.from(d).equals(c.raw))) {
      out.presented.push(new Uint8Array(c.raw));
      c = c.issuerCertificate;
    }
    sock.end('hello');
  });
  srv.on('tlsClientError', () => {});
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    await new Promise<void>((resolve) => {
      const sock = tls.connect({ ...trust, host: '127.0.0.1', port: (srv.address() as AddressInfo).port, key: client.key, cert: client.chain, rejectUnauthorized: strict });
      let data = '';
      sock.on('data', (d) => (data += d));
      sock.on('error', (e: NodeJS.ErrnoException) => (out.clientError = e.code));
      sock.on('close', () => {
        out.delivered = data === 'hello';
        resolve();
      });
    });
  } finally {
    await new Promise((r) => srv.close(r));
  }
  return out;
}

/** Refused in strict mode, and OpenSSL's reason (server side) is `reason`. */
async function refusedByServer(t: Test, server: LeafMaterial, client: LeafMaterial, reason: string, crls?: string[]) {
  t.match(await handshake(server, client, { crls }), { delivered: false }, 'strict: no connection');
  t.match(await handshake(server, client, { strict: false, crls }), { serverAuthorized: false, serverAuthError: reason }, `reason: ${reason}`);
}

const shardParams = (id: string) =>
  shardProfile({ id, cluster: fx.cluster, datacenter: 'dc1', ips: ['127.0.0.1'], tokenRange: { start: 0n, end: 1n }, capabilities: ['read'], role: 'replica' });
const DAY = 86_400_000;

t.test('two shards complete a TLS 1.3 mTLS handshake, and verify() names the peer', async (t) => {
  const [s1, s2] = [fx.shards[0]!, fx.shards[1]!];
  const r = await handshake(s1, s2);
  t.match(r, { delivered: true, protocol: 'TLSv1.3', serverAuthorized: true, clientError: undefined });
  const v = new PeerVerifier({ root: fx.root.cert, crls: fx.crls(), clock: systemClock });
  t.match(v.verify(r.presented, 'clientAuth'), { ok: true, peer: { serial: s2.serial, identity: { shardId: 'shard-002' } } });
  t.match(await handshake(s1, fx.clients.readWrite), { delivered: true, serverAuthorized: true }, 'a client-CA app connects too');
  t.match(await handshake(s1, fx.operators.admin), { delivered: true, serverAuthorized: true }, 'an operator connects too');
});

t.test('a revoked client certificate is refused (CERT_REVOKED)', async (t) => {
  const s1 = fx.shards[0]!;
  t.match(await handshake(s1, fx.clients.readOnly), { delivered: true }, 'control: before revocation');
  await fx.revoke(fx.clients.readOnly.serial, 'keyCompromise');
  await refusedByServer(t, s1, fx.clients.readOnly, 'CERT_REVOKED');
});

t.test('a revoked server certificate is refused by the client (CERT_REVOKED)', async (t) => {
  const s3 = fx.shards[2]!;
  t.match(await handshake(s3, fx.shards[0]!), { delivered: true }, 'control: before revocation');
  await fx.revoke(s3.serial, 'superseded');
  t.match(await handshake(s3, fx.shards[0]!), { delivered: false, clientError: 'CERT_REVOKED' });
});

t.test('expired and not-yet-valid client certificates are refused', async (t) => {
  const now = Date.now();
  const expired = await fx.issue(shardParams('shard-090'), 'shard-090', { validity: { notBefore: new Date(now - 10 * DAY), notAfter: new Date(now - DAY) } });
  await refusedByServer(t, fx.shards[0]!, expired, 'CERT_HAS_EXPIRED');
  const early = await fx.issue(shardParams('shard-091'), 'shard-091', { validity: { notBefore: new Date(now + DAY), notAfter: new Date(now + 10 * DAY) } });
  await refusedByServer(t, fx.shards[0]!, early, 'CERT_NOT_YET_VALID');
});

t.test('a certificate from a foreign CA (same names, other keys) is refused', async (t) => {
  const alien = foreign.shards[0]!;
  t.match(await handshake(fx.shards[0]!, alien), { delivered: false }, 'strict: no connection');
  // With CRL checks on, OpenSSL's last complaint is the missing CRL of the foreign intermediate;
  // without them the chain error itself shows.
  t.match(await handshake(fx.shards[0]!, alien, { strict: false }), { serverAuthorized: false, serverAuthError: 'UNABLE_TO_GET_CRL' });
  t.match(await handshake(fx.shards[0]!, alien, { strict: false, crls: null }), { serverAuthorized: false, serverAuthError: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' });
  t.match(await handshake(fx.shards[0]!, fx.shards[1]!, { strict: false, crls: null }), { serverAuthorized: true }, 'control: our own shard passes the same check');
  t.match(await handshake(alien, fx.shards[0]!), { delivered: false, clientError: 'UNABLE_TO_GET_CRL' }, 'a foreign server is refused by our client');
});

t.test('wrong usage: an operator certificate as server, a server-only certificate as client', async (t) => {
  t.match(await handshake(fx.operators.admin, fx.shards[0]!), { delivered: false, clientError: 'INVALID_PURPOSE' }, 'clientAuth-only certificate serving');
  const serverOnly = await fx.issue(shardParams('shard-092'), 'shard-092', { overrides: { extendedKeyUsages: [x509.ExtendedKeyUsage.serverAuth] } });
  t.match(await handshake(serverOnly, fx.shards[0]!), { delivered: true }, 'control: it works as a server');
  await refusedByServer(t, fx.shards[0]!, serverOnly, 'INVALID_PURPOSE');
});

t.test("Node's crl option checks every CA of the chain, so the root must publish a CRL too", async (t) => {
  const [, cluster, operator, client] = fx.crls() as [string, string, string, string];
  await refusedByServer(t, fx.shards[0]!, fx.shards[1]!, 'UNABLE_TO_GET_CRL', [cluster, operator, client]);
});

t.test('revoking an intermediate at the root cuts off everything it issued', async (t) => {
  const app = fx.clients.readWrite;
  t.match(await handshake(fx.shards[0]!, app), { delivered: true }, 'control');
  await fx.revoke(serialHex(new x509.X509Certificate(fx.cas.client.cert)), 'cACompromise');
  await refusedByServer(t, fx.shards[0]!, app, 'CERT_REVOKED');
  t.match(await handshake(fx.shards[0]!, fx.shards[1]!), { delivered: true }, 'shards (cluster CA) still connect');
});
