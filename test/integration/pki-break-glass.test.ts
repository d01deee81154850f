// Break-glass for an expired trust anchor (issue 19, docs/pki.md "Break-glass: an expired root"),
// with the real CLI and OpenSSL. A PKI made 7301 days ago: its root (7300 days) expired
// yesterday, and with it every intermediate, leaf and CRL (nothing may outlive its CA). The
// documented path: recertify-root (same key and name), recertify-intermediate, crl, re-issue
// the leaves. Afterwards the new chains verify (OpenSSL and our verifier) under the new root
// certificate; what the old key signed (a CRL) still verifies; the old root file does not help.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { certsFromPem } from '../../src/pki/pem.js';
import { CrlTrust } from '../../src/pki/crl-trust.js';
import { PeerVerifier } from '../../src/pki/verify.js';
import { FakeClock, systemClock } from '../../src/runtime.js';
import { createPkiFixture, openssl, runPki, type PkiFixture } from '../support/pki-fixture.js';

const DAY = 86_400_000;
let fx: PkiFixture;
const scratch = mkdtempSync(join(tmpdir(), 'themis-break-glass-')); // outside the PKI folder, which doctor walks
t.before(async () => {
  fx = await createPkiFixture({ shards: 1, clock: new FakeClock(Date.now() - 7301 * DAY) });
});
t.teardown(async () => {
  rmSync(scratch, { recursive: true, force: true });
  await fx?.cleanup();
});

const p = (...parts: string[]) => join(fx.dir, ...parts);
const der = (pem: string) => certsFromPem(pem, 'chain').map((c) => new Uint8Array(c.rawData));
const crls = () => ['root', 'cluster', 'operator', 'client'].map((ca) => readFileSync(p(ca, 'crl.pem'), 'utf8'));
const verifyLeaf = (root: string) => openssl(['verify', '-crl_check_all', '-CAfile', root, '-untrusted', p('cluster', 'cert.pem'), ...crls().flatMap((c, i) => { const f = join(scratch, `crl-${i}.pem`); writeFileSync(f, c); return ['-CRLfile', f]; }), p('shards', 'shard-001', 'cert.pem')]);

t.test('an expired root, recovered with its own key and name', async (t) => {
  const env = {};
  const oldRoot = readFileSync(p('root', 'cert.pem'), 'utf8');
  const oldRootCrl = readFileSync(p('root', 'crl.pem'), 'utf8');
  const before = verifyLeaf(p('root', 'cert.pem'));
  t.not(before.status, 0, 'before: OpenSSL refuses the chain');
  t.match(before.stdout + before.stderr, /expired/);
  t.match(new PeerVerifier({ root: oldRoot, crls: crls(), clock: systemClock }).verify(der(fx.shards[0]!.chain)), { ok: false, reason: 'expired' }, 'before: so does our verifier');

  const step = (args: string[]) => {
    const r = runPki([...args, '--dir', fx.dir, '--passphrase-file', join(scratch, 'pass')], env);
    t.equal(r.status, 0, `themis-pki ${args.join(' ')}: ${r.stderr}`);
  };
  writeFileSync(join(scratch, 'pass'), fx.passphrase);
  step(['recertify-root', '--days', '3650']);
  const newRoot = readFileSync(p('root', 'cert.pem'), 'utf8');
  const [o, n] = [certsFromPem(oldRoot, 'old')[0]!, certsFromPem(newRoot, 'new')[0]!];
  t.equal(n.subject, o.subject, 'the same name');
  t.same(Buffer.from(n.publicKey.rawData), Buffer.from(o.publicKey.rawData), 'the same key');
  t.not(n.serialNumber, o.serialNumber, 'a new serial');
  t.ok(n.notAfter.getTime() > Date.now() + 3000 * DAY, 'a new validity');
  t.match(new CrlTrust(newRoot, systemClock).check(oldRootCrl, () => undefined), { ok: true }, 'a CRL the old certificate\'s key signed verifies under the new one');
  for (const kind of ['cluster', 'operator', 'client']) {
    step(['recertify-intermediate', '--kind', kind, '--days', '1825']);
    t.equal(readFileSync(p(kind, 'chain.pem'), 'utf8'), readFileSync(p(kind, 'cert.pem'), 'utf8') + newRoot, `${kind}/chain.pem carries the new root`);
  }
  for (const ca of ['root', 'cluster', 'operator', 'client']) step(['crl', '--ca', ca]);
  t.not(verifyLeaf(p('root', 'cert.pem')).status, 0, 'the old leaf stays expired: leaves need new certificates');
  const s = fx.shards[0]!;
  step(['issue-shard', '--id', s.id, '--cluster', fx.cluster, '--dc', 'dc1', '--token-range', `${s.tokenRange.start}:${s.tokenRange.end}`, '--ip', s.ip, '--force']);

  const after = verifyLeaf(p('root', 'cert.pem'));
  t.equal(after.status, 0, `after: OpenSSL accepts the new chain with every CRL checked: ${after.stdout}${after.stderr}`);
  const v = new PeerVerifier({ root: newRoot, crls: crls(), clock: systemClock });
  t.match(v.verify(der(readFileSync(p('shards', s.id, 'chain.pem'), 'utf8'))), { ok: true, peer: { identity: { shardId: s.id } } }, 'after: our verifier accepts it');
  t.match(new PeerVerifier({ root: oldRoot, crls: crls(), clock: systemClock }).verify(der(readFileSync(p('shards', s.id, 'chain.pem'), 'utf8'))), { ok: false, reason: 'expired' }, 'a host still holding the expired root file refuses it: tls.ca must be replaced everywhere');
  // doctor lists what is still to do: the leaves not re-issued yet (operators, clients, etcd).
  const doctor = JSON.parse(runPki(['doctor', '--dir', fx.dir, '--json']).stdout) as { items: { file: string; status: string }[] };
  const status = (file: string) => doctor.items.find((i) => i.file === file)?.status;
  t.same(['root/cert.pem', 'cluster/cert.pem', 'shards/shard-001/cert.pem', 'root/crl.pem'].map(status), ['ok', 'ok', 'ok', 'ok'], 'doctor: the recertified CAs, the new leaf and the new CRLs are fine');
  t.equal(status('operators/admin/cert.pem'), 'expired', 'doctor: a leaf not re-issued yet is still listed as expired');
});
