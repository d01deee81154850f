// `themis-pki doctor` on a PKI minted at test start: days left per certificate and CRL (checked
// against what openssl reads from the same files) and both exit paths of each threshold.
import t from 'tap';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { shardProfile } from '../../src/pki/profiles.js';
import { createPkiFixture, openssl, runPki, type PkiFixture } from '../support/pki-fixture.js';

const DAY = 86_400_000;
let fx: PkiFixture;
t.before(async () => {
  fx = await createPkiFixture({ shards: 2 });
  // A 10-day shard certificate, issued the way an operator would.
  const r = runPki(['issue-shard', '--dir', fx.dir, '--id', 'shard-050', '--cluster', fx.cluster, '--dc', 'dc1', '--ip', '127.0.0.1', '--token-range', '0:15', '--days', '10'], { THEMIS_PKI_PASSPHRASE: fx.passphrase });
  if (r.status !== 0) throw new Error(r.stderr);
});
t.teardown(() => fx?.cleanup());

const doctor = (...args: string[]) => runPki(['doctor', '--dir', fx.dir, ...args]);

/** Days until the date openssl prints for `field` (notAfter= / nextUpdate=). */
function opensslDaysLeft(args: string[], field: string): number {
  const line = openssl(args).stdout.split('\n').find((l) => l.startsWith(field))!;
  return (Date.parse(line.slice(field.length)) - Date.now()) / DAY;
}

async function filesNamed(name: string, dir = fx.dir): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...(await filesNamed(name, join(dir, e.name))));
    else if (e.name === name) out.push(join(dir, e.name));
  }
  return out;
}

t.test('every certificate and CRL is listed once, with the days openssl agrees it has left', async (t) => {
  const r = doctor('--json', '--warn-days', '5', '--crl-warn-days', '5');
  t.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  t.equal(report.ok, true);
  const certs = await filesNamed('cert.pem');
  const crls = await filesNamed('crl.pem');
  t.equal(crls.length, 4, 'four CAs, four CRLs');
  const byFile = new Map<string, { type: string; daysLeft: number }>(report.items.map((i: { file: string }) => [i.file, i]));
  t.equal(report.items.length, certs.length + crls.length, 'chain.pem adds nothing new: each certificate once');
  for (const f of certs) {
    const want = opensslDaysLeft(['x509', '-in', f, '-noout', '-enddate'], 'notAfter=');
    const got = byFile.get(relative(fx.dir, f));
    t.ok(got && got.type === 'certificate' && Math.abs(got.daysLeft - want) <= 0.11, `${relative(fx.dir, f)}: ${got?.daysLeft} days, openssl ${want.toFixed(2)}`);
  }
  for (const f of crls) {
    const want = opensslDaysLeft(['crl', '-in', f, '-noout', '-nextupdate'], 'nextUpdate=');
    const got = byFile.get(relative(fx.dir, f));
    t.ok(got && got.type === 'crl' && Math.abs(got.daysLeft - want) <= 0.11, `${relative(fx.dir, f)}: ${got?.daysLeft} days, openssl ${want.toFixed(2)}`);
  }
  t.match(doctor('--warn-days', '5', '--crl-warn-days', '5').stdout, /^ok: \d+ certificates and CRLs/m);
});

t.test('a certificate under --warn-days makes it exit 3 and is named', async (t) => {
  const r = doctor('--warn-days', '11', '--crl-warn-days', '5');
  t.equal(r.status, 3);
  const flagged = r.stdout.split('\n').filter((l) => /EXPIRING|EXPIRED/.test(l));
  t.equal(flagged.length, 1, r.stdout);
  t.match(flagged[0], /shards\/shard-050\/cert\.pem .*shard-050.*EXPIRING/);
  t.match(r.stdout, /^1 of \d+ expired or within 11 days/m);
  t.equal(doctor('--warn-days', '9', '--crl-warn-days', '5').status, 0, 'one day less and it passes');
});

t.test('a CRL under --crl-warn-days makes it exit 3', async (t) => {
  // The intermediates' CRLs run 30 days, the root's 365.
  const r = doctor('--warn-days', '5', '--crl-warn-days', '31', '--json');
  t.equal(r.status, 3);
  const flagged = JSON.parse(r.stdout).items.filter((i: { status: string }) => i.status !== 'ok');
  t.same(flagged.map((i: { file: string; type: string }) => `${i.type} ${i.file}`).sort(), ['crl client/crl.pem', 'crl cluster/crl.pem', 'crl operator/crl.pem']);
});

t.test('an expired certificate and an unreadable file fail it whatever the thresholds', async (t) => {
  const now = Date.now();
  const params = shardProfile({ id: 'shard-060', cluster: fx.cluster, datacenter: 'dc1', ips: ['127.0.0.1'], tokenRange: { start: 0n, end: 1n }, capabilities: ['read'], role: 'replica' });
  const expired = await fx.issue(params, 'shard-060', { validity: { notBefore: new Date(now - 10 * DAY), notAfter: new Date(now - DAY) } });
  let r = doctor('--warn-days', '0', '--crl-warn-days', '0');
  t.equal(r.status, 3);
  t.match(r.stdout, new RegExp(`${relative(fx.dir, expired.certPath).replace(/[.]/g, '\\.')} .*EXPIRED`));
  await rm(dirname(expired.certPath), { recursive: true });
  t.equal(doctor('--warn-days', '0', '--crl-warn-days', '0').status, 0, 'without it, it passes');
  await mkdir(join(fx.dir, 'junk'));
  await writeFile(join(fx.dir, 'junk', 'cert.pem'), 'not a certificate\n');
  r = doctor('--warn-days', '0', '--crl-warn-days', '0');
  t.equal(r.status, 3, 'an unreadable file is not passed over');
  t.match(r.stdout, /unreadable: junk\/cert\.pem: no complete PEM block/);
});

t.test('bad flags are usage errors; a missing folder is an error', async (t) => {
  t.equal(doctor('--warn-days', 'soon').status, 2);
  const r = runPki(['doctor', '--dir', join(fx.dir, 'nope')]);
  t.equal(r.status, 1);
  t.match(r.stderr, /^themis-pki: error: .*nope: cannot read the PKI folder \(ENOENT\)/);
});
