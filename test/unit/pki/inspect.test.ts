import t from 'tap';
import { readFile } from 'node:fs/promises';
import { inspectFile, renderText } from '../../../src/pki/inspect.js';
import { certsFromPem, parsePem } from '../../../src/pki/pem.js';
import { createPkiFixture, openssl, type PkiFixture } from '../../support/pki-fixture.js';

let fx: PkiFixture;
t.before(async () => {
  fx = await createPkiFixture({ shards: 1 });
});
t.teardown(() => fx.cleanup());

t.test('a shard certificate: subject, SANs, validity, serial and the decoded extension', async (t) => {
  const s = fx.shards[0]!;
  const [info] = inspectFile(Buffer.from(s.cert), 'cert.pem');
  const enddate = /notAfter=(.*)/.exec(openssl(['x509', '-noout', '-enddate'], s.cert).stdout)![1]!;
  t.match(info, {
    type: 'certificate',
    subject: 'CN=shard-001.themis.local, OU=shard, O=themis-mesh',
    issuer: 'CN=Themis Cluster CA, OU=cluster, O=themis-mesh',
    serial: s.serial,
    notAfter: new Date(enddate).toISOString(),
    keyType: 'ecdsa-p256',
    ca: false,
    keyUsage: ['digitalSignature'],
    extendedKeyUsage: ['serverAuth', 'clientAuth'],
    san: { dns: ['shard-001.themis.local', 'localhost'], ip: ['127.0.0.1'], uri: ['urn:themis:shard:cluster-test:001'] },
    identity: {
      shardId: 'shard-001',
      datacenter: 'dc1',
      tokenRange: { start: '0x0000000000000000', end: '0xffffffffffffffff' },
      capabilities: ['read', 'write', 'replicate'],
      role: 'primary',
    },
  });
  const sha = /Fingerprint=(.*)/.exec(openssl(['x509', '-noout', '-fingerprint', '-sha256'], s.cert).stdout)![1]!;
  t.equal(info!.sha256, sha.replace(/:/g, '').toLowerCase());
  const text = renderText([info!]);
  t.match(text, /^ +start: 0x0000000000000000$/m);
  t.match(text, /^ +capabilities: read, write, replicate$/m);
  t.match(text, /^ +uri: urn:themis:shard:cluster-test:001$/m);
});

t.test('chains, CRLs, keys and DER are recognised', async (t) => {
  const chain = inspectFile(Buffer.from(fx.shards[0]!.chain), 'chain.pem');
  t.same(chain.map((c) => c.type), ['certificate', 'certificate']);
  t.match(chain[1], { ca: true, pathLength: 0, subject: /Cluster CA/ });
  t.match(inspectFile(Buffer.from(fx.cas.cluster.crl), 'crl.pem'), [{ type: 'crl', crlNumber: '1', revoked: [] }]);
  t.same(inspectFile(await readFile(fx.layout.caKey('root')), 'key.pem'), [{ type: 'private-key', encrypted: true }]);
  t.same(inspectFile(Buffer.from(fx.shards[0]!.key), 'key.pem'), [{ type: 'private-key', encrypted: false, keyType: 'ecdsa-p256' }]);
  const der = Buffer.from(certsFromPem(fx.shards[0]!.cert, 'x')[0]!.rawData);
  t.match(inspectFile(der, 'cert.der'), [{ type: 'certificate', serial: fx.shards[0]!.serial }]);
});

t.test('malformed PEM is refused with MALFORMED_PEM naming the file and the problem', async (t) => {
  const body = fx.shards[0]!.cert.split('\n').slice(1, -2).join('\n');
  const cases: Array<[string, RegExp]> = [
    ['hello world', /x.pem: is neither PEM \(no -----BEGIN line\) nor a DER certificate or CRL/],
    [`-----BEGIN CERTIFICATE-----\n${body}\n`, /no complete PEM block/],
    [`-----BEGIN CERTIFICATE-----\n${body}\n-----END X509 CRL-----\n`, /begins "CERTIFICATE" but ends "X509 CRL"/],
    [`-----BEGIN CERTIFICATE-----\n${body.replace(/[A-Z]/, '*')}\n-----END CERTIFICATE-----\n`, /block 1 \(CERTIFICATE\) has invalid base64/],
    ['-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n', /certificate 1 does not decode as X.509/],
    [`${fx.shards[0]!.cert}-----BEGIN CERTIFICATE-----\n${body}\n`, /1 PEM block\(s\) without a matching END line/],
    ['-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n', /"RSA PUBLIC KEY", which inspect does not read/],
  ];
  for (const [text, msg] of cases) {
    t.throws(() => inspectFile(Buffer.from(text), 'x.pem'), { code: 'MALFORMED_PEM', field: 'x.pem', message: msg }, String(msg));
  }
  t.same(parsePem(`intro text\n${fx.shards[0]!.cert}`, 'x').map((b) => b.label), ['CERTIFICATE'], 'text around blocks is fine');
});
