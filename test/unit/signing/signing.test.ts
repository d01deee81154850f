import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { canonicalString, parseSignedHeaders, H, EMPTY_SHA256 } from '../../../src/signing/canonical.js';
import { RequestSigner, sha256Hex, verifySignature } from '../../../src/signing/sign.js';
import { FakeClock, SeededRandom } from '../../../src/runtime.js';

const dir = mkdtempSync(join(tmpdir(), 'themis-sig-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('canonical string: eight fields joined by newlines, no trailing newline', async (t) => {
  const s = canonicalString('PUT', '/entities/x?y=1', {
    shardId: 'shard-001',
    certSerial: 'a1b2',
    timestamp: 1767225600000,
    nonce: '0011223344556677',
    contentSha256: EMPTY_SHA256,
  });
  t.equal(s, 'THEMIS-SIG-V1\nPUT\n/entities/x?y=1\nshard-001\na1b2\n1767225600000\n0011223344556677\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  t.equal(sha256Hex(''), EMPTY_SHA256);
  t.equal(sha256Hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 'FIPS 180-2 test vector');
});

const good = {
  [H.shardId]: 'shard-001',
  [H.certSerial]: '1f',
  [H.timestamp]: '1767225600000',
  [H.nonce]: '0011223344556677',
  [H.contentSha256]: EMPTY_SHA256,
  [H.signature]: 'MEUCIQDabcdefgh=',
};

t.test('malformed signed-request headers are refused, naming the header', async (t) => {
  t.doesNotThrow(() => parseSignedHeaders(good));
  const bad: [string, string | string[] | undefined][] = [
    [H.shardId, undefined],
    [H.shardId, 'Shard 1'],
    [H.certSerial, '01f'],
    [H.certSerial, '1F'],
    [H.timestamp, '-5'],
    [H.timestamp, '17672256000001234567'],
    [H.nonce, '0011'],
    [H.nonce, '001122334455667G'],
    [H.contentSha256, 'abc'],
    [H.signature, 'not base64!'],
    [H.signature, ['a', 'b']],
  ];
  for (const [name, value] of bad) {
    const h: Record<string, unknown> = { ...good, [name]: value };
    if (value === undefined) delete h[name];
    t.throws(() => parseSignedHeaders(h as never), { code: 'SIGNATURE_HEADERS_INVALID', message: new RegExp(name) }, `${name}=${value}`);
  }
});

for (const [kind, genArgs] of [
  ['ECDSA P-256', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']],
  ['RSA 2048', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']],
] as const) {
  t.test(`${kind}: our signatures verify with openssl, openssl's verify with us`, async (t) => {
    const keyPath = join(dir, `${kind.replace(/\W/g, '')}.key`);
    const pubPath = keyPath + '.pub';
    execFileSync('openssl', ['genpkey', ...genArgs, '-out', keyPath]);
    execFileSync('openssl', ['pkey', '-in', keyPath, '-pubout', '-out', pubPath]);
    const key = createPrivateKey(readFileSync(keyPath));
    const pub = createPublicKey(readFileSync(pubPath));
    const clock = new FakeClock(1767225600000);
    const signer = new RequestSigner(key, 'shard-002', 'abc123', clock, new SeededRandom(1));
    const body = '{"blob":"{}"}';
    const headers = signer.headers('PUT', '/entities/k', sha256Hex(body));
    const parsed = parseSignedHeaders(headers);
    const canonical = canonicalString('PUT', '/entities/k', parsed);
    writeFileSync(join(dir, 'c.txt'), canonical);
    writeFileSync(join(dir, 'sig.bin'), parsed.signature);
    const out = execFileSync('openssl', ['dgst', '-sha256', '-verify', pubPath, '-signature', join(dir, 'sig.bin'), join(dir, 'c.txt')]).toString();
    t.match(out, /Verified OK/);
    // The other way: openssl signs, we verify; then a changed path must not verify.
    const osig = execFileSync('openssl', ['dgst', '-sha256', '-sign', keyPath, join(dir, 'c.txt')]);
    t.ok(verifySignature(canonical, osig, pub), 'openssl signature verifies');
    t.notOk(verifySignature(canonical.replace('/entities/k', '/entities/j'), osig, pub), 'tampered path fails');
    t.notOk(verifySignature(canonical, Buffer.from('garbage'), pub), 'garbage signature fails without throwing');
  });
}

// Found by mutation testing (docs/testing.md): anchored patterns, exact messages, key checks.
t.test('every header pattern is anchored at both ends, and each refusal says what was expected', async (t) => {
  const valid: Record<string, string> = { ...good, [H.signature]: 'MEUCIQDabcdefgh=' };
  const cases: [string, string, RegExp][] = [
    [H.shardId, 'shard 001', /must be a shard id such as shard-001/],
    [H.certSerial, '1fz', /must be lower-case hex without leading zeros/],
    [H.timestamp, '1767225600000x', /must be Unix time in milliseconds/],
    [H.nonce, `${valid[H.nonce]}ff`, /must be 16 lower-case hex digits/],
    [H.nonce, `ff${valid[H.nonce]}`, /must be 16 lower-case hex digits/],
    [H.contentSha256, `${EMPTY_SHA256}00`, /must be 64 lower-case hex digits \(SHA-256 of the body\)/],
    [H.contentSha256, `00${EMPTY_SHA256}`, /must be 64 lower-case hex digits \(SHA-256 of the body\)/],
    [H.signature, `${valid[H.signature]}!`, /must be base64/],
    [H.signature, `!${valid[H.signature]}`, /must be base64/],
  ];
  for (const [name, value, why] of cases) {
    t.throws(() => parseSignedHeaders({ ...valid, [name]: value }), { code: 'SIGNATURE_HEADERS_INVALID', message: new RegExp(`^header ${name} ${why.source}$`) }, `${name}=${value}`);
  }
  const { [H.nonce]: _gone, ...without } = valid;
  t.throws(() => parseSignedHeaders(without), { message: `missing header ${H.nonce}` });
});

t.test('sha256Hex of no body is the empty hash; a signer needs a private key; a verify that throws is false', async (t) => {
  t.equal(sha256Hex(undefined), EMPTY_SHA256);
  t.equal(sha256Hex(Buffer.alloc(0)), EMPTY_SHA256);
  const { generateKeyPairSync, createSecretKey } = await import('node:crypto');
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  t.throws(() => new RequestSigner(publicKey, 'shard-001', '1f', new FakeClock(1), new SeededRandom(1)), { name: 'TypeError', message: 'RequestSigner needs a private key' });
  t.equal(verifySignature('x', Buffer.from('y'), createSecretKey(Buffer.alloc(32))), false, 'a key that cannot verify at all: not valid, no throw');
});
