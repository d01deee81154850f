// The renewal policy's pure parts, without a CA (issue 25, found by mutation testing): how a CSR
// body is read (PEM under either label, DER, exactly one request) and which identity fields
// count as a change. The checks that need the CA's certificates are in renewal-service.test.ts.
import 'reflect-metadata';
import t from 'tap';
import { webcrypto } from 'node:crypto';
import { ThemisError } from '../../../src/errors.js';
import type { ThemisIdentity } from '../../../src/pki/identity-extension.js';
import { identityChanges, parseCsr } from '../../../src/pki/renewal-policy.js';
import { x509 } from '../../../src/pki/x509.js';

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

async function csrDer(): Promise<Uint8Array> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=shard-001.themis.local', keys, signingAlgorithm: EC });
  return new Uint8Array(csr.rawData);
}
const pem = (der: Uint8Array, label: string) => x509.PemConverter.encode(der.slice().buffer, label);

/** The ThemisError parseCsr rejects with (its code and message), or a note that it did not. */
async function refusal(body: Buffer): Promise<{ code: string; message: string }> {
  try {
    await parseCsr(body);
    return { code: 'accepted', message: '' };
  } catch (e) {
    return e instanceof ThemisError ? { code: e.code, message: e.message } : { code: 'not a ThemisError', message: String(e) };
  }
}

t.test('a CSR in PEM (either label) or DER is read; its subject comes through', async (t) => {
  const der = await csrDer();
  for (const body of [pem(der, 'CERTIFICATE REQUEST'), pem(der, 'NEW CERTIFICATE REQUEST')]) {
    t.equal((await parseCsr(Buffer.from(body))).subject, 'CN=shard-001.themis.local', body.split('\n')[0]!);
  }
  t.equal((await parseCsr(Buffer.from(der))).subject, 'CN=shard-001.themis.local', 'DER');
  // A certificate block beside the request is ignored (only request blocks count).
  const withCert = `${pem(new Uint8Array([0x30, 0x00]), 'CERTIFICATE')}${pem(der, 'CERTIFICATE REQUEST')}`;
  t.equal((await parseCsr(Buffer.from(withCert))).subject, 'CN=shard-001.themis.local', 'a CERTIFICATE block before it');
});

t.test('not exactly one request block, a body that is no request, a broken self-signature: INVALID_CSR with the reason', async (t) => {
  const der = await csrDer();
  t.same(await refusal(Buffer.from(pem(der, 'CERTIFICATE REQUEST') + pem(der, 'CERTIFICATE REQUEST'))), {
    code: 'INVALID_CSR', message: 'the body is not a PKCS#10 certificate request: expected exactly one CERTIFICATE REQUEST block',
  }, 'two request blocks');
  t.same(await refusal(Buffer.from(pem(der, 'CERTIFICATE'))), {
    code: 'INVALID_CSR', message: 'the body is not a PKCS#10 certificate request: expected exactly one CERTIFICATE REQUEST block',
  }, 'a request under another label');
  const broken = await refusal(Buffer.from('-----BEGIN CERTIFICATE REQUEST-----\n!!!\n-----END CERTIFICATE REQUEST-----\n'));
  t.equal(broken.code, 'INVALID_CSR', 'PEM that does not decode');
  t.match(broken.message, /^the body is not a PKCS#10 certificate request: .*invalid base64/);
  const notAsn1 = await refusal(Buffer.from('hello'));
  t.equal(notAsn1.code, 'INVALID_CSR', 'DER that is no request');
  t.match(notAsn1.message, /^the body is not a PKCS#10 certificate request: ./);
  const forged = der.slice();
  forged[forged.length - 5]! ^= 0x01; // inside the signature's last integer
  t.same(await refusal(Buffer.from(forged)), { code: 'INVALID_CSR', message: "the request's self-signature does not verify: it must be signed with the new key" });
});

const held: ThemisIdentity = { shardId: 'shard-002', datacenter: 'dc1', tokenRangeStart: 100n, tokenRangeEnd: 199n, capabilities: ['read', 'write', 'replicate'], role: 'primary' };

t.test('identityChanges names each field that differs, and only those', async (t) => {
  t.same(identityChanges(held, { ...held, capabilities: [...held.capabilities] }), [], 'the same identity');
  t.same(identityChanges(held, { ...held, shardId: 'shard-001' }), ['shard id']);
  t.same(identityChanges(held, { ...held, datacenter: 'dc2' }), ['datacenter']);
  t.same(identityChanges(held, { ...held, tokenRangeStart: 99n }), ['token range'], 'a lower start');
  t.same(identityChanges(held, { ...held, tokenRangeEnd: 200n }), ['token range'], 'a higher end');
  t.same(identityChanges(held, { ...held, capabilities: ['read', 'write'] }), ['capabilities'], 'fewer capabilities is a change too (an operator narrows)');
  t.same(identityChanges(held, { ...held, capabilities: ['read', 'replicate', 'write'] }), ['capabilities'], 'the same ones in another order');
  t.same(identityChanges(held, { ...held, capabilities: [...held.capabilities, 'admin'] }), ['capabilities'], 'one more');
  t.same(identityChanges(held, { ...held, role: 'replica' }), ['role']);
  t.same(identityChanges(held, { shardId: 'shard-009', datacenter: 'dc9', tokenRangeStart: 0n, tokenRangeEnd: 1n, capabilities: ['admin'], role: 'replica' }), ['shard id', 'datacenter', 'token range', 'capabilities', 'role'], 'all of them, in order');
});
