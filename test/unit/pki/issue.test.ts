import t from 'tap';
import { THEMIS_IDENTITY_OID, decodeIdentity } from '../../../src/pki/identity-extension.js';
import {
  checkCommonName, createIntermediateCa, createRootCa, issueLeaf, normalizeSerial, randomSerial, serialHex, validityFor, type Issuer,
} from '../../../src/pki/issue.js';
import { generateKeyPair, type KeyType } from '../../../src/pki/keys.js';
import { certToPem } from '../../../src/pki/pem.js';
import { clientProfile, operatorProfile, serverProfile, shardProfile } from '../../../src/pki/profiles.js';
import { x509 } from '../../../src/pki/x509.js';
import { FakeClock, SeededRandom, systemRandom } from '../../../src/runtime.js';
import { openssl } from '../../support/pki-fixture.js';

const clock = new FakeClock(Date.UTC(2026, 0, 1));
const random = new SeededRandom(7);

async function hierarchy(keyType: KeyType = 'ecdsa-p256'): Promise<{ root: Issuer; cluster: Issuer }> {
  const rootKeys = await generateKeyPair(keyType);
  const rootCert = await createRootCa({ keys: rootKeys, validity: validityFor(clock, 3650), random });
  const root = { cert: rootCert, key: rootKeys.privateKey };
  const k = await generateKeyPair(keyType);
  const cert = await createIntermediateCa({ kind: 'cluster', publicKey: k.publicKey, issuer: root, validity: validityFor(clock, 1825), random });
  return { root, cluster: { cert, key: k.privateKey } };
}

const text = (cert: x509.X509Certificate) => openssl(['x509', '-noout', '-text'], certToPem(cert)).stdout;

const shardInput = {
  id: 'shard-001',
  cluster: 'cluster-prod',
  datacenter: 'dc1',
  dns: ['db1.example.com'],
  ips: ['10.0.0.5', '::1'],
  tokenRange: { start: 0n, end: 0x3fffffffffffffffn },
  capabilities: ['read', 'write', 'replicate'] as const,
  role: 'primary' as const,
};

t.test('root and intermediate: CA flags, path length and key usage as openssl reads them', async (t) => {
  const { root, cluster } = await hierarchy();
  const r = text(root.cert);
  t.match(r, /Basic Constraints: critical\s+CA:TRUE, pathlen:1/);
  t.match(r, /Key Usage: critical\s+Certificate Sign, CRL Sign/);
  t.match(r, /Subject: CN = Themis Root CA, O = themis-mesh/);
  const c = text(cluster.cert);
  t.match(c, /CA:TRUE, pathlen:0/);
  t.match(c, /Issuer: CN = Themis Root CA/);
  t.match(c, /Subject: CN = Themis Cluster CA, OU = cluster, O = themis-mesh/);
  t.equal(cluster.cert.notBefore.getTime(), clock.now() - 5 * 60_000, 'backdated 5 minutes, from the injected clock');
});

t.test('a shard certificate: CN, SANs with the URN, EKU, key usage and the identity extension', async (t) => {
  const { cluster } = await hierarchy();
  const k = await generateKeyPair();
  const cert = await issueLeaf({ ...shardProfile(shardInput), publicKey: k.publicKey, issuer: cluster, validity: validityFor(clock, 365), random });
  const out = text(cert);
  t.match(out, /Subject: CN = shard-001\.themis\.local, OU = shard, O = themis-mesh/);
  t.match(out, /DNS:shard-001\.themis\.local, DNS:db1\.example\.com, IP Address:10\.0\.0\.5, IP Address:0:0:0:0:0:0:0:1, URI:urn:themis:shard:cluster-prod:001/);
  t.match(out, /Extended Key Usage: \s+TLS Web Server Authentication, TLS Web Client Authentication/);
  t.match(out, /Key Usage: critical\s+Digital Signature\n/);
  t.match(out, /Basic Constraints: critical\s+CA:FALSE/);
  t.match(out, new RegExp(`${THEMIS_IDENTITY_OID.replace(/\./g, '\\.')}: \\n`), 'non-critical extension with our OID');
  const ext = cert.extensions.find((e) => e.type === THEMIS_IDENTITY_OID)!;
  t.equal(ext.critical, false);
  t.same(decodeIdentity(new Uint8Array(ext.value)), {
    shardId: 'shard-001', datacenter: 'dc1', tokenRangeStart: 0n, tokenRangeEnd: 0x3fffffffffffffffn,
    capabilities: ['read', 'write', 'replicate'], role: 'primary',
  });
});

t.test('operator, client and server profiles', async (t) => {
  const { cluster } = await hierarchy();
  const k = await generateKeyPair();
  const mk = (p: ReturnType<typeof operatorProfile>) => issueLeaf({ ...p, publicKey: k.publicKey, issuer: cluster, validity: validityFor(clock, 30), random });
  const op = text(await mk(operatorProfile({ name: 'admin', capabilities: ['rebalance', 'add_shard', 'remove_shard'] })));
  t.match(op, /CN = admin\.operator\.themis\.local/);
  t.match(op, /URI:urn:themis:operator:admin/);
  t.match(op, /Extended Key Usage: \s+TLS Web Client Authentication\n/);
  t.match(op, /Digital Signature, Non Repudiation/);
  const cl = text(await mk(clientProfile({ name: 'app1', capabilities: ['read', 'write'] })));
  t.match(cl, /URI:urn:themis:client:app1/);
  const sv = await mk(serverProfile({ name: 'etcd', dns: ['etcd.internal'], ips: ['10.0.0.9'] }));
  t.match(text(sv), /DNS:etcd\.internal, IP Address:10\.0\.0\.9/);
  t.equal(sv.extensions.find((e) => e.type === THEMIS_IDENTITY_OID), undefined, 'etcd has no identity extension');
});

t.test('RSA CAs sign with sha256WithRSAEncryption; RSA leaves may encipher keys', async (t) => {
  const { cluster } = await hierarchy('rsa2048');
  const k = await generateKeyPair('rsa2048');
  const cert = await issueLeaf({ ...clientProfile({ name: 'app1', capabilities: ['read'] }), publicKey: k.publicKey, issuer: cluster, validity: validityFor(clock, 30), random });
  const out = text(cert);
  t.match(out, /Signature Algorithm: sha256WithRSAEncryption/);
  t.match(out, /Public-Key: \(2048 bit\)/);
  t.match(out, /Digital Signature, Key Encipherment/);
});

t.test('serials are random, positive and 128 bits; serialHex matches openssl', async (t) => {
  const serials = Array.from({ length: 500 }, () => randomSerial(systemRandom));
  t.same(serials.filter((s) => !/^[4-7][0-9a-f]{31}$/.test(s)), [], 'positive (top bit clear), 16 octets, no leading zero');
  t.equal(new Set(serials).size, 500, 'no repeats');
  const { cluster } = await hierarchy();
  const m = /serial=([0-9A-F]+)/.exec(openssl(['x509', '-noout', '-serial'], certToPem(cluster.cert)).stdout)!;
  t.equal(serialHex(cluster.cert), m[1]!.toLowerCase().replace(/^0+/, ''));
  // openssl-made certificates whose serials have a leading zero byte, or an odd digit count
  for (const [set, expected] of [['255', 'ff'], ['256', '100'], ['0x00ABCDEF0123', 'abcdef0123']] as const) {
    const pem = openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', '/dev/null', '-subj', '/CN=x', '-set_serial', set, '-days', '1']).stdout;
    t.equal(serialHex(new x509.X509Certificate(pem)), expected, `serial ${set}`);
  }
});

t.test('normalizeSerial accepts what operators type and refuses the rest', async (t) => {
  t.equal(normalizeSerial('0x00ABcd'), 'abcd');
  t.equal(normalizeSerial('4A:3B:00'), '4a3b00');
  t.throws(() => normalizeSerial('xyz'), { field: '--serial', message: /expected the certificate serial in hex/ });
});

t.test('profiles check every field and name it', async (t) => {
  const bad: Array<[() => unknown, string, RegExp]> = [
    [() => shardProfile({ ...shardInput, id: 'shard-1' }), '--id', /must look like shard-001/],
    [() => shardProfile({ ...shardInput, cluster: 'Prod' }), '--cluster', /lower-case/],
    [() => shardProfile({ ...shardInput, datacenter: 'dc_1' }), '--dc', /lower-case/],
    [() => shardProfile({ ...shardInput, ips: ['10.0.0.300'] }), '--ip', /not an IPv4 or IPv6/],
    [() => shardProfile({ ...shardInput, dns: ['bad..name'] }), '--dns', /not a valid DNS name/],
    [() => shardProfile({ ...shardInput, role: 'leader' as 'primary' }), '--role', /primary or replica/],
    [() => shardProfile({ ...shardInput, capabilities: ['rebalance'] }), '--capabilities', /not allowed in a shard certificate/],
    [() => shardProfile({ ...shardInput, tokenRange: { start: 2n, end: 1n } }), '--token-range', /START ≤ END/],
    [() => clientProfile({ name: 'app1', capabilities: ['admin'] }), '--capabilities', /"admin" is not allowed in a client certificate; allowed: read, write/],
    [() => operatorProfile({ name: 'admin', capabilities: [] }), '--capabilities', /at least one/],
    [() => operatorProfile({ name: 'Admin!', capabilities: ['view_topology'] }), '--name', /lower-case/],
    [() => serverProfile({ name: 'etcd' }), '--dns', /at least one --dns or --ip/],
    [() => checkCommonName('Evil CA, O=other'), '--cn', /must be 1-64 letters/],
  ];
  for (const [fn, field, msg] of bad) t.throws(fn, { code: 'INVALID_ARGUMENT', field, message: msg }, `${field} ${msg}`);
});

t.test('a certificate may not outlive its CA', async (t) => {
  const { cluster } = await hierarchy();
  const k = await generateKeyPair();
  await t.rejects(
    issueLeaf({ ...clientProfile({ name: 'a', capabilities: ['read'] }), publicKey: k.publicKey, issuer: cluster, validity: validityFor(clock, 4000), random }),
    { field: '--days', message: /would outlive its CA/ },
  );
});
