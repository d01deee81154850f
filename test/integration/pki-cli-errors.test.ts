// Bad input to themis-pki: one clear line naming what is wrong, exit status ≠ 0, nothing written.
// Each case has a control that the same command, corrected, succeeds.
import t, { type Test } from 'tap';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURE_PASSPHRASE, createPkiFixture, runPki, snapshot, type PkiFixture } from '../support/pki-fixture.js';

let fx: PkiFixture;
let scratch: string;
t.before(async () => {
  fx = await createPkiFixture({ shards: 1 });
  scratch = await mkdtemp(join(tmpdir(), 'themis-pki-err-'));
});
t.teardown(async () => {
  await fx.cleanup();
  await rm(scratch, { recursive: true, force: true });
});

const CA = { THEMIS_PKI_PASSPHRASE: FIXTURE_PASSPHRASE };
const shard = (id: string, range = '0:100', caps = 'read,write') =>
  ['issue-shard', '--dir', fx.dir, '--id', id, '--cluster', 'cluster-test', '--dc', 'dc1', '--ip', '127.0.0.1', '--token-range', range, '--capabilities', caps];

/** Runs the command, expects failure with exactly one stderr line, and an unchanged PKI folder. */
async function refused(t: Test, args: string[], env: Record<string, string>, line: RegExp, status = 1): Promise<void> {
  const before = await snapshot(fx.dir);
  const r = runPki(args, env);
  t.equal(r.status, status, `exit status ${status}`);
  const lines = r.stderr.split('\n').filter(Boolean);
  t.equal(lines.length, status === 2 ? 2 : 1, 'one line (usage errors add a hint)') || t.comment(r.stderr);
  t.match(lines[0], line);
  t.equal(r.stdout, '', 'prints nothing on stdout');
  t.same(await snapshot(fx.dir), before, 'nothing written');
}

function succeeds(t: Test, args: string[], env: Record<string, string>): void {
  const r = runPki(args, env);
  t.equal(r.status, 0, `control: ${args[0]} succeeds once corrected`) || t.comment(r.stderr);
}

t.test('token range: START > END, and beyond 64 bits', async (t) => {
  await refused(t, shard('shard-101', '0x10:0x0f'), CA, /^themis-pki: error: --token-range: START 0x0000000000000010 is greater than END 0x000000000000000f$/);
  await refused(t, shard('shard-101', '0:0x10000000000000000'), CA, /^themis-pki: error: --token-range: END "0x10000000000000000" is not an unsigned 64-bit integer/);
  succeeds(t, shard('shard-101', '0x0f:0x10'), CA);
});

t.test('unknown capability', async (t) => {
  await refused(t, shard('shard-102', '0:1', 'read,teleport'), CA, /^themis-pki: error: --capabilities: unknown capability "teleport"; known capabilities are: read, write/);
  succeeds(t, shard('shard-102', '0:1', 'read,replicate'), CA);
});

t.test('wrong passphrase, and no passphrase source without a terminal', async (t) => {
  await refused(t, shard('shard-103'), { THEMIS_PKI_PASSPHRASE: 'not-the-passphrase' }, new RegExp(`^themis-pki: error: ${fx.layout.caKey('cluster')}: wrong passphrase \\(the key did not decrypt\\)$`));
  await refused(t, shard('shard-103'), {}, /^themis-pki: error: passphrase: the cluster CA key needs a passphrase and there is no terminal to ask on; set THEMIS_PKI_PASSPHRASE or pass --passphrase-file FILE$/);
  const file = join(scratch, 'pass.txt');
  await writeFile(file, FIXTURE_PASSPHRASE + '\n');
  succeeds(t, [...shard('shard-103'), '--passphrase-file', file], { THEMIS_PKI_PASSPHRASE: 'the file wins over the environment' });
});

t.test('a passphrase is never accepted as an argument', async (t) => {
  await refused(t, [...shard('shard-104'), '--passphrase', FIXTURE_PASSPHRASE], {}, /^themis-pki: Unknown option '--passphrase'/, 2);
});

t.test('existing output files are not overwritten without --force', async (t) => {
  const certPath = join(fx.dir, 'shards/shard-001/cert.pem');
  await refused(t, shard('shard-001'), CA, new RegExp(`^themis-pki: error: ${certPath}: already exists; pass --force to overwrite it`));
  await refused(t, ['init-root', '--dir', fx.dir], CA, /root\/cert\.pem: already exists/);
  const old = await readFile(certPath, 'utf8');
  succeeds(t, [...shard('shard-001'), '--force'], CA);
  t.not(await readFile(certPath, 'utf8'), old, 'with --force it is replaced');
});

t.test('malformed PEM: in inspect, and in a CA certificate the command needs', async (t) => {
  const junk = join(scratch, 'junk.pem');
  await writeFile(junk, '-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n');
  await refused(t, ['inspect', junk], {}, new RegExp(`^themis-pki: error: ${junk}: block 1 \\(CERTIFICATE\\) has invalid base64$`));
  const caCert = fx.layout.caCert('client');
  const good = await readFile(caCert, 'utf8');
  await writeFile(caCert, good.slice(0, 200));
  try {
    await refused(t, ['issue-client', '--dir', fx.dir, '--name', 'app8', '--capabilities', 'read'], CA, new RegExp(`^themis-pki: error: ${caCert}: no complete PEM block`));
  } finally {
    await writeFile(caCert, good);
  }
  succeeds(t, ['issue-client', '--dir', fx.dir, '--name', 'app8', '--capabilities', 'read'], CA);
});

t.test('a missing required flag is a usage error', async (t) => {
  await refused(t, ['issue-shard', '--dir', fx.dir, '--id', 'shard-105'], CA, /^themis-pki: --cluster is required, e\.g\. --cluster cluster-prod$/, 2);
});

t.test('a missing CA says which command makes it', async (t) => {
  const empty = join(scratch, 'empty');
  const r = runPki(['issue-shard', '--dir', empty, '--id', 'shard-001', '--cluster', 'c', '--dc', 'd', '--token-range', '0:1'], CA);
  t.equal(r.status, 1);
  t.match(r.stderr, /no cluster CA in .*empty; run themis-pki create-intermediate --kind cluster first/);
  t.same(await snapshot(empty), {}, 'the folder was not even created');
});

t.test('a revoked serial cannot be revoked twice', async (t) => {
  succeeds(t, ['revoke', '--dir', fx.dir, '--serial', fx.clients.readOnly.serial, '--reason', 'superseded'], {});
  await refused(t, ['revoke', '--dir', fx.dir, '--serial', fx.clients.readOnly.serial], {}, /--serial: [0-9a-f]+ was already revoked at .* \(superseded\)$/);
});
