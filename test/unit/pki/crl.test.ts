import t from 'tap';
import { readFile } from 'node:fs/promises';
import { readState } from '../../../src/pki/ca-store.js';
import { revoke, writeCrl } from '../../../src/pki/commands.js';
import { buildCrl, parseCrl, parseReason } from '../../../src/pki/crl.js';
import { serialHex } from '../../../src/pki/issue.js';
import { loadIssuer } from '../../../src/pki/ca-store.js';
import { x509 } from '../../../src/pki/x509.js';
import { FakeClock } from '../../../src/runtime.js';
import { FIXTURE_PASSPHRASE, createPkiFixture, openssl, type PkiFixture } from '../../support/pki-fixture.js';

const T0 = Date.UTC(2026, 0, 1);
const clock = new FakeClock(T0);
let fx: PkiFixture;
t.before(async () => {
  fx = await createPkiFixture({ clock, shards: 1 });
});
t.teardown(() => fx.cleanup());

t.test('a CRL with entries: number, reasons, dates and the X509 CRL header, as openssl reads it', async (t) => {
  const issuer = await loadIssuer(fx.layout, 'cluster', FIXTURE_PASSPHRASE);
  const { pem, der } = await buildCrl({
    issuer,
    crlNumber: 7,
    thisUpdate: new Date(T0),
    nextUpdate: new Date(T0 + 86_400_000),
    revoked: [
      { serial: '4a5b6c7d8e9f00112233445566778899', reason: 'keyCompromise', revokedAt: '2025-12-30T10:00:00.000Z' },
      { serial: 'abc', reason: 'superseded', revokedAt: '2025-12-31T10:00:00.000Z' },
      { serial: '51', reason: 'unspecified', revokedAt: '2025-12-31T11:00:00.000Z' },
    ],
  });
  t.match(pem, /^-----BEGIN X509 CRL-----\n[A-Za-z0-9+/=\n]+-----END X509 CRL-----\n$/);
  const check = openssl(['crl', '-CAfile', fx.cas.cluster.chainPath, '-noout'], pem);
  t.equal(check.status, 0, 'openssl crl -CAfile verifies the signature');
  t.match(check.stderr + check.stdout, /verify OK/);
  const txt = openssl(['crl', '-noout', '-text'], pem).stdout;
  t.match(txt, /Version 2/);
  t.match(txt, /X509v3 CRL Number: \n\s+7\n/);
  t.match(txt, /Last Update: Jan  1 00:00:00 2026 GMT\s+Next Update: Jan  2 00:00:00 2026 GMT/);
  t.match(txt, /Serial Number: 4A5B6C7D8E9F00112233445566778899\s+Revocation Date: Dec 30 10:00:00 2025 GMT\s+CRL entry extensions:\s+X509v3 CRL Reason Code: \n\s+Key Compromise/);
  t.match(txt, /Serial Number: 0ABC\s+Revocation Date: Dec 31 10:00:00 2025 GMT\s+CRL entry extensions:\s+X509v3 CRL Reason Code: \n\s+Superseded/);
  t.equal((txt.match(/CRL Reason Code/g) ?? []).length, 2, '"unspecified" carries no reason code (RFC 5280)');
  t.match(txt, /Authority Key Identifier/);
  const parsed = parseCrl(new Uint8Array(der), 'crl.der');
  t.equal(parsed.crlNumber, 7n);
  t.same([...parsed.revoked.keys()], ['4a5b6c7d8e9f00112233445566778899', 'abc', '51']);
  t.equal(parsed.revoked.get('abc')!.reason, 'superseded');
  t.equal(parsed.revoked.get('51')!.reason, 'unspecified');
});

t.test('writeCrl numbers CRLs 1, 2, 3 … and lists every recorded revocation', async (t) => {
  const ctx = fx.ctx;
  // openssl prints e.g. crlNumber=0x02
  const number = async () => {
    const m = /crlNumber=0x([0-9A-F]+)/.exec(openssl(['crl', '-noout', '-crlnumber', '-in', fx.layout.caCrl('client')]).stdout);
    return m ? String(parseInt(m[1]!, 16)) : undefined;
  };
  t.equal(await number(), '1', 'create-intermediate published CRL 1');
  await revoke(ctx, { serial: fx.clients.readOnly.serial, reason: 'superseded' });
  t.equal(await number(), '1', 'revoke only records');
  clock.advance(60_000);
  const r = await writeCrl(ctx, { ca: 'client', passphrase: FIXTURE_PASSPHRASE, days: 3 });
  t.match(r.crl, { ca: 'client', crlNumber: 2, revoked: 1, thisUpdate: '2026-01-01T00:01:00.000Z', nextUpdate: '2026-01-04T00:01:00.000Z' });
  t.equal(await number(), '2');
  await writeCrl(ctx, { ca: 'client', passphrase: FIXTURE_PASSPHRASE });
  t.equal(await number(), '3');
  const txt = openssl(['crl', '-noout', '-text', '-in', fx.layout.caCrl('client')]).stdout;
  t.match(txt, new RegExp(`Serial Number: ${fx.clients.readOnly.serial.toUpperCase()}`));
  t.match(txt, /Superseded/);
  t.equal((await readState(fx.layout, 'client')).crlNumber, 3);
});

t.test('revoke finds the issuing CA, refuses repeats, unknown serials and the root', async (t) => {
  const ctx = fx.ctx;
  const inter = serialHex(new x509.X509Certificate(fx.cas.operator.cert));
  const r = await revoke(ctx, { serial: inter, reason: 'cACompromise' });
  t.match(r.revocation, { ca: 'root', serial: inter, reason: 'cACompromise' }, 'intermediates are revoked at the root');
  await t.rejects(revoke(ctx, { serial: inter, reason: 'cACompromise' }), { code: 'CONFLICT', field: '--serial', message: /already revoked/ });
  await t.rejects(revoke(ctx, { serial: 'deadbeef', reason: 'superseded' }), { code: 'NOT_FOUND', message: /no certificate with serial deadbeef/ });
  const root = serialHex(new x509.X509Certificate(fx.root.cert));
  await t.rejects(revoke(ctx, { serial: root, reason: 'keyCompromise' }), { field: '--serial', message: /is the root certificate itself/ });
  const state = JSON.parse(await readFile(fx.layout.caState('root'), 'utf8'));
  t.same(state.revoked.map((x: { serial: string }) => x.serial), [inter]);
});

t.test('reasons and malformed CRLs', async (t) => {
  t.equal(parseReason('keyCompromise'), 'keyCompromise');
  t.equal(parseReason(undefined), 'unspecified');
  t.throws(() => parseReason('oops'), { field: '--reason', message: /unknown reason "oops"; use one of unspecified, keyCompromise/ });
  t.throws(() => parseCrl('-----BEGIN CRL-----\nAAAA\n-----END CRL-----\n', 'x.pem'), { code: 'MALFORMED_PEM', message: /expected one X509 CRL block, found 0/ });
  t.throws(() => parseCrl(new Uint8Array([1, 2, 3]), 'x.der'), { code: 'MALFORMED_PEM', message: /x.der: is not an X.509 CRL/ });
});
