import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { loadTlsMaterial } from '../../../proxy/tls-material.js';
import { ConfigError } from '../../../src/config/validate.js';
import { FakeClock } from '../../../src/runtime.js';
import { createPkiFixture, type PkiFixture } from '../../support/pki-fixture.js';

const clock = new FakeClock(Date.now());
let fx: PkiFixture;
let dir: string;
t.before(async () => {
  fx = await createPkiFixture({ clock, shards: 2 });
  dir = mkdtempSync(join(tmpdir(), 'tls-material-'));
});
t.teardown(async () => {
  await fx.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const writeCrls = (tag: string) =>
  fx.crls().map((c, i) => {
    const f = join(dir, `${tag}-${i}.pem`);
    writeFileSync(f, c);
    return f;
  });
const tlsOf = (i: number, crls: string[]) => ({ cert: fx.shards[i]!.chainPath, key: fx.shards[i]!.keyPath, keyPassphraseFile: undefined, ca: fx.root.certPath, crls });

t.test('a CRL revoking the sidecar\'s own certificate is loaded and reported, not refused', async (t) => {
  const before = loadTlsMaterial(tlsOf(0, writeCrls('before')), fx.shards[0]!.id, clock);
  t.equal(before.ownRevoked, undefined);
  await fx.revoke(fx.shards[0]!.serial);
  const files = writeCrls('after');
  const m = loadTlsMaterial(tlsOf(0, files), fx.shards[0]!.id, clock);
  t.match(m.ownRevoked, /^revoked/, 'own revocation is reported');
  t.ok(m.revoked.has(fx.shards[0]!.serial), 'and the CRL is in force for everyone else');
  t.equal(loadTlsMaterial(tlsOf(1, files), fx.shards[1]!.id, clock).ownRevoked, undefined, 'another shard is unaffected');
});

t.test('other problems with the own certificate still refuse the files', async (t) => {
  t.throws(() => loadTlsMaterial(tlsOf(1, writeCrls('x')), fx.shards[0]!.id, clock), ConfigError, 'shard id mismatch');
  const later = new FakeClock(Date.now() + 20 * 365 * 86_400_000);
  t.throws(() => loadTlsMaterial(tlsOf(1, writeCrls('y')), fx.shards[1]!.id, later), /expired/, 'expired certificate');
});

t.test('a chain file whose PEM blocks run together still gives Node TLS a chain it takes', async (t) => {
  const s = fx.shards[1]!;
  // What a writer that joins PEM blocks without newlines leaves: parsePem reads it, OpenSSL does not.
  const joined = fx.shards[1]!.chain.trim().split(/\n(?=-----BEGIN)/).map((b) => b.trim()).join('');
  t.match(joined, /-----END CERTIFICATE----------BEGIN CERTIFICATE-----/);
  const file = join(dir, 'joined-chain.pem');
  writeFileSync(file, joined);
  t.throws(() => createSecureContext({ cert: joined, key: s.key }), /PEM/, 'as written, OpenSSL refuses it');
  const m = loadTlsMaterial({ ...tlsOf(1, writeCrls('joined')), cert: file }, s.id, clock);
  t.doesNotThrow(() => createSecureContext({ cert: m.certChain, key: m.keyPem }), 'the loaded chain is re-encoded');
  t.equal(m.certChain.match(/-----BEGIN CERTIFICATE-----/g)?.length, 2, 'leaf and CA');
});
