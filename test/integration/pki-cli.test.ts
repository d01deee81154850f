// The themis-pki program end to end, as an operator runs it, checked by real OpenSSL.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { THEMIS_IDENTITY_OID } from '../../src/pki/identity-extension.js';
import { PKI_CLI, openssl, runPki, snapshot, type Run } from '../support/pki-fixture.js';
import { readFileSync } from 'node:fs';
import { runProgram } from '../support/cli.js';

const ROOT_PASS = 'root-passphrase-1';
const INTER_PASS = 'intermediate-pass-2';
const LEAF_PASS = 'leaf-passphrase-3';

let dir: string;
let pki: string;
t.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'themis-pki-cli-'));
  pki = join(dir, 'pki');
});
t.teardown(() => rm(dir, { recursive: true, force: true }));

const p = (...parts: string[]) => join(pki, ...parts);
const ok = (t: Test, r: Run, what: string) => {
  t.equal(r.status, 0, `${what} exits 0`) || t.comment(r.stderr);
  return r;
};

/** Runs a writing command and checks that it printed exactly the files that appeared or changed. */
async function writes(t: Test, args: string[], env: Record<string, string>): Promise<{ json: any; changed: string[] }> {
  const before = await snapshot(pki);
  const r = ok(t, runPki([...args, '--dir', pki, '--json'], env), args[0]!);
  const json = JSON.parse(r.stdout);
  const after = await snapshot(pki);
  const changed = Object.keys(after).filter((k) => !k.endsWith('/') && after[k] !== before[k]).sort();
  t.same(json.written.map((w: { path: string }) => w.path).sort(), changed, `${args[0]} reports exactly the files it wrote`);
  t.same(json.written.map((w: { mode: string }) => w.mode), json.written.map(() => '0600'));
  return { json, changed };
}

t.test('from nothing to a full hierarchy', async (t) => {
  const root = await writes(t, ['init-root'], { THEMIS_PKI_PASSPHRASE: ROOT_PASS });
  t.same(root.changed, [p('audit.log'), p('root/cert.pem'), p('root/crl.pem'), p('root/key.pem'), p('root/state.json')]);
  for (const kind of ['cluster', 'operator', 'client']) {
    const r = await writes(t, ['create-intermediate', '--kind', kind], { THEMIS_PKI_PASSPHRASE: ROOT_PASS, THEMIS_PKI_NEW_PASSPHRASE: INTER_PASS });
    t.ok(r.changed.includes(p(kind, 'key.pem')) && r.changed.includes(p('root/state.json')), `${kind}: key and root record`);
    t.equal(openssl(['verify', '-CAfile', p('root/cert.pem'), p(kind, 'cert.pem')]).status, 0, `${kind} CA verifies against the root`);
  }
  const ca = { THEMIS_PKI_PASSPHRASE: INTER_PASS };
  await writes(t, ['issue-shard', '--id', 'shard-001', '--cluster', 'cluster-prod', '--dc', 'dc1', '--dns', 'db1.example.com', '--ip', '127.0.0.1',
    '--token-range', '0x0:0x7fffffffffffffff', '--capabilities', 'read,write,replicate', '--role', 'primary'], ca);
  await writes(t, ['issue-shard', '--id', 'shard-002', '--cluster', 'cluster-prod', '--dc', 'dc2', '--ip', '127.0.0.2',
    '--token-range', '0x8000000000000000:18446744073709551615', '--role', 'replica', '--key-type', 'rsa2048', '--encrypt-key'],
    { ...ca, THEMIS_PKI_KEY_PASSPHRASE: LEAF_PASS });
  await writes(t, ['issue-operator', '--name', 'admin', '--capabilities', 'rebalance,add_shard,remove_shard'], ca);
  await writes(t, ['issue-client', '--name', 'app1', '--capabilities', 'read,write'], ca);
  const etcd = await writes(t, ['issue-server', '--dns', 'localhost', '--ip', '127.0.0.1'], ca);
  t.same(etcd.changed, [p('audit.log'), p('cluster/state.json'), p('servers/etcd/cert.pem'), p('servers/etcd/chain.pem'), p('servers/etcd/key.pem')]);
});

const LEAVES: Array<[string, string]> = [
  ['shards/shard-001', 'cluster'], ['shards/shard-002', 'cluster'], ['servers/etcd', 'cluster'],
  ['operators/admin', 'operator'], ['clients/app1', 'client'],
];

t.test('openssl verify -CAfile root -untrusted intermediate accepts every leaf', async (t) => {
  for (const [leaf, ca] of LEAVES) {
    const r = openssl(['verify', '-CAfile', p('root/cert.pem'), '-untrusted', p(ca, 'cert.pem'), p(leaf, 'cert.pem')]);
    t.equal(r.status, 0, leaf);
    t.match(r.stdout, /: OK\n$/);
  }
  t.not(openssl(['verify', '-CAfile', p('root/cert.pem'), p('shards/shard-001/cert.pem')]).status, 0, 'control: not without the intermediate');
});

t.test('openssl x509 -text shows the SANs and the extension; asn1parse shows its fields in order', async (t) => {
  const cert = p('shards/shard-001/cert.pem');
  const text = openssl(['x509', '-noout', '-text', '-in', cert]).stdout;
  t.match(text, /DNS:shard-001\.themis\.local, DNS:db1\.example\.com, IP Address:127\.0\.0\.1, URI:urn:themis:shard:cluster-prod:001/);
  t.match(text, `${THEMIS_IDENTITY_OID}: \n`);
  t.same(extensionFields(t, cert), [
    'SEQUENCE', 'UTF8STRING :shard-001', 'UTF8STRING :dc1', 'INTEGER :00', 'INTEGER :7FFFFFFFFFFFFFFF',
    'SEQUENCE', 'UTF8STRING :read', 'UTF8STRING :write', 'UTF8STRING :replicate', 'ENUMERATED :00',
  ]);
  t.same(extensionFields(t, p('shards/shard-002/cert.pem')).slice(3, 5), ['INTEGER :8000000000000000', 'INTEGER :FFFFFFFFFFFFFFFF'],
    'the 2^63 boundary and 2^64-1 read as positive INTEGERs');
});

/** The identity extension's value as openssl asn1parse -strparse lists it: one "TYPE :value" per field. */
function extensionFields(t: Test, cert: string): string[] {
  const dump = openssl(['asn1parse', '-in', cert]).stdout.split('\n');
  const at = dump.findIndex((l) => l.includes(`:${THEMIS_IDENTITY_OID}`));
  t.ok(at > 0, 'the OID is in the certificate');
  const offset = /^\s*(\d+):.*OCTET STRING/.exec(dump[at + 1]!)?.[1];
  t.ok(offset, 'followed by the OCTET STRING value (non-critical: no BOOLEAN between)');
  return openssl(['asn1parse', '-in', cert, '-strparse', offset!]).stdout
    .trim().split('\n').map((l) => l.replace(/^.*(prim|cons): /, '').replace(/\s+/g, ' ').trim());
}

t.test('encrypted keys open with openssl pkey -passin, and only with the right passphrase', async (t) => {
  const keys: Array<[string, string]> = [
    ['root/key.pem', ROOT_PASS], ['cluster/key.pem', INTER_PASS], ['operator/key.pem', INTER_PASS], ['shards/shard-002/key.pem', LEAF_PASS],
  ];
  for (const [key, pass] of keys) {
    t.match(openssl(['asn1parse', '-in', p(key)]).stdout, /:PBES2/, `${key} is encrypted PKCS#8`);
    t.equal(openssl(['pkey', '-in', p(key), '-passin', `pass:${pass}`, '-noout']).status, 0, `${key} opens`);
    t.not(openssl(['pkey', '-in', p(key), '-passin', 'pass:wrong-passphrase', '-noout']).status, 0, `${key} refuses a wrong passphrase`);
  }
  t.match(openssl(['pkey', '-in', p('shards/shard-002/key.pem'), '-passin', `pass:${LEAF_PASS}`, '-noout', '-text']).stdout, /Private-Key: \(2048 bit/);
  t.equal(openssl(['pkey', '-in', p('shards/shard-001/key.pem'), '-noout']).status, 0, 'leaf keys are plain unless --encrypt-key');
});

t.test('revoke, publish CRLs, and openssl verify -crl_check_all rejects the revoked leaf', async (t) => {
  const serial = JSON.parse(ok(t, runPki(['inspect', p('shards/shard-001/cert.pem'), '--json']), 'inspect').stdout).items[0].serial;
  const rv = await writes(t, ['revoke', '--serial', serial.toUpperCase(), '--reason', 'keyCompromise'], {});
  t.match(rv.json.revocation, { ca: 'cluster', serial, reason: 'keyCompromise' });
  t.same(rv.changed, [p('audit.log'), p('cluster/state.json')], 'revoke only records (and audits)');
  const trail = readFileSync(p('audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.match(trail.at(-1), { event: 'CERTIFICATE_REVOKED', peer: { serial }, reason: 'keyCompromise', source: 'themis-pki' });
  t.ok(trail.some((e) => e.event === 'CERTIFICATE_ISSUED' && e.peer?.cn?.includes('shard-001')), 'issuing was audited too');
  const chain = runProgram('themis-admin', ['audit', 'verify', p('audit.log')]);
  t.equal(chain.status, 0, `the PKI audit trail's chain is intact: ${chain.stdout}`);
  for (const ca of ['root', 'cluster']) {
    const r = await writes(t, ['crl', '--ca', ca], { THEMIS_PKI_PASSPHRASE: ca === 'root' ? ROOT_PASS : INTER_PASS });
    t.equal(r.json.crl.crlNumber, 2, `${ca}: CRL number 2`);
  }
  for (const ca of ['root', 'cluster', 'operator', 'client']) {
    const chain = ca === 'root' ? p('root/cert.pem') : p(ca, 'chain.pem');
    const check = openssl(['crl', '-in', p(ca, 'crl.pem'), '-CAfile', chain, '-noout']);
    t.equal(check.status, 0, `${ca}: openssl crl -CAfile verifies its CRL`);
  }
  const verify = (leaf: string) =>
    openssl(['verify', '-crl_check_all', '-CAfile', p('root/cert.pem'), '-untrusted', p('cluster/cert.pem'),
      '-CRLfile', p('root/crl.pem'), '-CRLfile', p('cluster/crl.pem'), p(leaf, 'cert.pem')]);
  const revoked = verify('shards/shard-001');
  t.not(revoked.status, 0);
  t.match(revoked.stdout + revoked.stderr, /certificate revoked/);
  t.equal(verify('shards/shard-002').status, 0, 'control: the other shard passes the same check');
});

t.test('inspect prints subject, SANs, validity, serial and the decoded extension (and CRLs)', async (t) => {
  const r = ok(t, runPki(['inspect', p('shards/shard-002/cert.pem'), p('cluster/crl.pem')]), 'inspect');
  for (const line of [
    /^subject: CN=shard-002\.themis\.local, OU=shard, O=themis-mesh$/m, /^serial: [0-9a-f]{32}$/m, /^notAfter: \d{4}-/m,
    /^ +ip: 127\.0\.0\.2$/m, /^ +uri: urn:themis:shard:cluster-prod:002$/m, /^ +start: 0x8000000000000000$/m,
    /^ +end: 0xffffffffffffffff$/m, /^ +role: replica$/m, /^keyType: rsa2048$/m,
    /^crlNumber: 2$/m, /^ +- serial=[0-9a-f]{32} reason=keyCompromise/m,
  ]) t.match(r.stdout, line);
});

t.test('--force replaces an issued leaf; the old serial stays on record for revocation (refusal: pki-cli-errors)', async (t) => {
  const args = ['issue-client', '--name', 'app1', '--capabilities', 'read'];
  const { json } = await writes(t, [...args, '--force'], { THEMIS_PKI_PASSPHRASE: INTER_PASS });
  const state = JSON.parse(await readFile(p('client/state.json'), 'utf8'));
  t.same(state.issued.filter((r: { name: string }) => r.name === 'app1').length, 2);
  t.equal(state.issued.at(-1).serial, json.certificate.serial);
});

t.test('the passphrase can be typed at a terminal (not echoed)', async (t) => {
  const ttyDir = join(dir, 'tty');
  const out = await new Promise<string>((resolve, reject) => {
    const cmd = `${process.execPath} ${PKI_CLI} init-root --dir ${ttyDir}`;
    const child = spawn('script', ['-qec', cmd, '/dev/null'], { env: { PATH: process.env.PATH ?? '' } });
    let buf = '';
    let answered = 0;
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const prompts = (buf.match(/Passphrase for the new root CA key: |Again, to confirm: /g) ?? []).length;
      while (answered < prompts) {
        answered++;
        child.stdin.write('typed-passphrase\r');
      }
    });
    child.on('error', reject);
    child.on('close', () => resolve(buf));
  });
  t.match(out, /Passphrase for the new root CA key: /);
  t.match(out, /wrote .*root\/key\.pem/);
  t.notMatch(out, /typed-passphrase/, 'never echoed');
  t.equal(openssl(['pkey', '-in', join(ttyDir, 'root/key.pem'), '-passin', 'pass:typed-passphrase', '-noout']).status, 0);
});
