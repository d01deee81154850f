import t from 'tap';
import { createPublicKey } from 'node:crypto';
import {
  KEY_TYPES, PBKDF2_ITERATIONS, exportPrivateKeyPem, generateKeyPair, loadPrivateKey, parseKeyType,
} from '../../../src/pki/keys.js';
import { subtle } from '../../../src/pki/x509.js';
import { openssl } from '../../support/pki-fixture.js';

const PASS = 'correct horse battery';

t.test('every key type exports as encrypted PKCS#8 that openssl opens with the passphrase', async (t) => {
  const bits: Record<string, RegExp> = {
    'ecdsa-p256': /Private-Key: \(256 bit/,
    rsa2048: /Private-Key: \(2048 bit/,
    rsa3072: /Private-Key: \(3072 bit/,
    rsa4096: /Private-Key: \(4096 bit/,
  };
  // generated in parallel: RSA 4096 alone can take seconds
  const pems = await Promise.all(KEY_TYPES.map(async (type) => exportPrivateKeyPem((await generateKeyPair(type)).privateKey, PASS)));
  for (const [i, type] of KEY_TYPES.entries()) {
    const pem = pems[i]!;
    t.match(pem, /^-----BEGIN ENCRYPTED PRIVATE KEY-----\n/, `${type} is encrypted`);
    const r = openssl(['pkey', '-passin', `pass:${PASS}`, '-noout', '-text'], pem);
    t.equal(r.status, 0, `${type}: openssl pkey -passin opens it`);
    t.match(r.stdout, bits[type]!, `${type}: openssl sees the right size`);
    const wrong = openssl(['pkey', '-passin', 'pass:not-it', '-noout'], pem);
    t.not(wrong.status, 0, `${type}: openssl refuses a wrong passphrase`);
  }
});

t.test('the PBKDF2 iteration count and cipher are what openssl reports', async (t) => {
  const pair = await generateKeyPair();
  const r = openssl(['asn1parse'], await exportPrivateKeyPem(pair.privateKey, PASS));
  t.match(r.stdout, /:PBES2/);
  t.match(r.stdout, /:PBKDF2/);
  t.match(r.stdout, /:hmacWithSHA256/);
  t.match(r.stdout, /:aes-256-cbc/);
  t.match(r.stdout, new RegExp(`INTEGER +:${PBKDF2_ITERATIONS.toString(16).toUpperCase().padStart(6, '0')}`));
});

t.test('a loaded key signs what the original public key verifies', async (t) => {
  for (const type of ['ecdsa-p256', 'rsa2048'] as const) {
    const pair = await generateKeyPair(type);
    const loaded = await loadPrivateKey(await exportPrivateKeyPem(pair.privateKey, PASS), PASS, 'k.pem');
    t.equal(loaded.type, type);
    const alg = type === 'ecdsa-p256' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5' };
    const sig = await subtle.sign(alg, loaded.privateKey, Buffer.from('hello'));
    t.ok(await subtle.verify(alg, pair.publicKey, sig, Buffer.from('hello')), `${type} round-trips`);
  }
});

t.test('keys made by openssl load too (the other direction)', async (t) => {
  const r = openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-aes-256-cbc', '-pass', `pass:${PASS}`]);
  t.equal(r.status, 0);
  const loaded = await loadPrivateKey(r.stdout, PASS, 'openssl.pem');
  t.equal(loaded.type, 'ecdsa-p256');
  const pub = openssl(['pkey', '-passin', `pass:${PASS}`, '-pubout'], r.stdout).stdout;
  t.equal(createPublicKey(loaded.keyObject).export({ type: 'spki', format: 'pem' }).toString(), pub);
});

t.test('rejections: wrong or missing passphrase, not a key, unsupported curve, unknown type', async (t) => {
  const pair = await generateKeyPair();
  const enc = await exportPrivateKeyPem(pair.privateKey, PASS);
  await t.rejects(loadPrivateKey(enc, 'wrong passphrase', 'ca/key.pem'), {
    code: 'BAD_PASSPHRASE',
    message: 'ca/key.pem: wrong passphrase (the key did not decrypt)',
  });
  await t.rejects(loadPrivateKey(enc, undefined, 'ca/key.pem'), { code: 'PASSPHRASE_REQUIRED', field: 'ca/key.pem' });
  await t.rejects(loadPrivateKey('hello', PASS, 'x.pem'), { code: 'MALFORMED_PEM', message: /x.pem: is not a PKCS#8 private key/ });
  const broken = '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n';
  await t.rejects(loadPrivateKey(broken, undefined, 'x.pem'), { code: 'MALFORMED_PEM' });
  const p384 = openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384']).stdout;
  await t.rejects(loadPrivateKey(p384, undefined, 'p384.pem'), { code: 'INVALID_ARGUMENT', message: /unsupported key \(EC secp384r1\)/ });
  t.throws(() => parseKeyType('ed25519'), { field: '--key-type', message: /unknown key type "ed25519"; use one of ecdsa-p256, rsa2048, rsa3072, rsa4096/ });
  t.equal(parseKeyType(undefined), 'ecdsa-p256');
  await t.rejects(exportPrivateKeyPem(pair.privateKey, ''), { code: 'INVALID_ARGUMENT', field: 'passphrase', message: 'passphrase: is empty' });
});

t.test('unencrypted export is plain PKCS#8 that openssl reads without a passphrase', async (t) => {
  const pair = await generateKeyPair();
  const pem = await exportPrivateKeyPem(pair.privateKey);
  t.match(pem, /^-----BEGIN PRIVATE KEY-----\n/);
  t.equal(openssl(['pkey', '-noout'], pem).status, 0);
});
