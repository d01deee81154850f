// CA keys in a PKCS#11 token (SoftHSM2, a token made for this run): themis-pki generates the
// root and cluster keys inside it, signs certificates and CRLs through it, and never sees the
// key; the PIN comes from a file or a systemd credential, never from the command line.
import t, { type Test } from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { request } from 'node:https';
import { webcrypto } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PKI_CLI, openssl, runPki, snapshot, type Run } from '../support/pki-fixture.js';
import { reservePorts } from '../../scripts/ports.js';
import { x509 } from '../../src/pki/x509.js';
import { createSoftHsmToken, SOFTHSM_MODULE, type SoftHsmToken } from '../support/softhsm.js';

const FILE_PASS = 'file-key-passphrase';
// Imported by name at run time: node-webcrypto-p11 (and so graphene-pk11) is an optional
// dependency, and the suite must still compile where it did not install; here it must be present.
const GRAPHENE = 'graphene-pk11';
// eslint-disable-next-line @typescript-eslint/no-explicit-any
let graphene: any;
let hsm: SoftHsmToken;
let dir: string;
let pki: string;
t.before(async () => {
  graphene = ((await import(GRAPHENE)) as { default: unknown }).default;
  hsm = await createSoftHsmToken();
  dir = await mkdtemp(join(tmpdir(), 'themis-pki-hsm-'));
  pki = join(dir, 'pki');
});
t.teardown(async () => {
  await rm(dir, { recursive: true, force: true });
  await hsm?.cleanup();
});

const p = (...parts: string[]) => join(pki, ...parts);
const token = () => ['--pkcs11', SOFTHSM_MODULE, '--token', hsm.label];
const pki$ = (args: string[], env: Record<string, string> = {}): Run => runPki([...args, '--dir', pki], { ...hsm.env, ...env });
const ok = (t: Test, r: Run, what: string) => t.equal(r.status, 0, `${what}: ${r.stderr}`);

t.test('a hierarchy whose root and cluster keys are generated in the token', async (t) => {
  ok(t, pki$(['init-root', ...token(), '--pin-file', hsm.pinFile]), 'init-root --pkcs11');
  t.notOk(existsSync(p('root', 'key.pem')), 'no root key file');
  t.match(JSON.parse(await readFile(p('root', 'key.pkcs11.json'), 'utf8')), { version: 1, module: SOFTHSM_MODULE, token: hsm.label, keyLabel: 'themis-root', keyId: /^[0-9a-f]+$/ });
  ok(t, pki$(['create-intermediate', '--kind', 'cluster', ...token(), '--pin-file', hsm.pinFile]), 'cluster CA in the token, signed by the token root');
  t.notOk(existsSync(p('cluster', 'key.pem')), 'no cluster key file');
  // An intermediate with a file key, still signed by the root in the token.
  ok(t, pki$(['create-intermediate', '--kind', 'operator', '--pin-file', hsm.pinFile], { THEMIS_PKI_NEW_PASSPHRASE: FILE_PASS }), 'operator CA (file key)');
  ok(t, pki$(['issue-shard', '--id', 'shard-001', '--cluster', 'c1', '--dc', 'dc1', '--ip', '127.0.0.1', '--token-range', '0:100', '--pin-file', hsm.pinFile]), 'shard from the token cluster CA');
  ok(t, pki$(['issue-operator', '--name', 'admin', '--capabilities', 'view_topology'], { THEMIS_PKI_PASSPHRASE: FILE_PASS }), 'operator from the file CA');
});

t.test('themis-pki serve renews through the cluster key in the token', async (t) => {
  ok(t, pki$(['issue-server', '--name', 'renewal', '--ip', '127.0.0.1', '--pin-file', hsm.pinFile]), 'the service certificate, signed in the token');
  const port = (await reservePorts([{ host: '127.0.0.1' }]))[0]!;
  const serve = spawn(process.execPath, [PKI_CLI, 'serve', '--dir', pki, '--listen', `127.0.0.1:${port}`, '--lifetime', '1h', '--pin-file', hsm.pinFile], { env: { ...process.env, ...hsm.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  serve.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  serve.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  t.teardown(() => void serve.kill('SIGTERM'));
  for (let i = 0; i < 100 && !out.includes('listening on'); i++) await new Promise((r) => setTimeout(r, 100));
  t.match(out, /listening on https:\/\/127\.0\.0\.1:\d+\/v1\/renew/, 'serve started with the token key');
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: alg });
  const r = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/renew', ca: readFileSync(p('root', 'cert.pem'), 'utf8'), cert: readFileSync(p('shards', 'shard-001', 'chain.pem'), 'utf8'), key: readFileSync(p('shards', 'shard-001', 'key.pem'), 'utf8') }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, text }));
    });
    req.on('error', reject);
    req.end(csr.toString('pem'));
  });
  t.equal(r.status, 200, r.text);
  const leaf = join(dir, 'renewed.pem');
  await writeFile(leaf, x509.PemConverter.encode(x509.PemConverter.decode(r.text)[0]!, 'CERTIFICATE'));
  const v = openssl(['verify', '-CAfile', p('root', 'cert.pem'), '-untrusted', p('cluster', 'cert.pem'), leaf]);
  t.equal(v.status, 0, `openssl verify of the renewed certificate: ${v.stdout}${v.stderr}`);
});

t.test('what the token signed passes openssl verify, CRLs included', async (t) => {
  const crls = ['root', 'cluster', 'operator'].flatMap((c) => ['-CRLfile', p(c, 'crl.pem')]);
  const shard = openssl(['verify', '-crl_check_all', '-CAfile', p('root', 'cert.pem'), '-untrusted', p('cluster', 'cert.pem'), ...crls, p('shards', 'shard-001', 'cert.pem')]);
  t.equal(shard.status, 0, shard.stdout + shard.stderr);
  const admin = openssl(['verify', '-crl_check_all', '-CAfile', p('root', 'cert.pem'), '-untrusted', p('operator', 'cert.pem'), ...crls, p('operators', 'admin', 'cert.pem')]);
  t.equal(admin.status, 0, admin.stdout + admin.stderr);
  for (const [ca, issuer] of [['root', p('root', 'cert.pem')], ['cluster', p('cluster', 'chain.pem')]]) {
    const r = openssl(['crl', '-in', p(ca!, 'crl.pem'), '-CAfile', issuer!, '-noout']);
    t.match(r.stderr + r.stdout, /verify OK/, `${ca} CRL signature`);
  }
  // A revocation published by a CRL the token signs is honoured by openssl.
  const serial = /serial:? +([0-9a-f]+)/.exec(runPki(['inspect', p('shards', 'shard-001', 'cert.pem')]).stdout)![1]!;
  ok(t, pki$(['revoke', '--serial', serial, '--reason', 'keyCompromise']), 'revoke');
  ok(t, pki$(['crl', '--ca', 'cluster', '--pin-file', hsm.pinFile]), 'crl --ca cluster (signed in the token)');
  const revoked = openssl(['verify', '-crl_check_all', '-CAfile', p('root', 'cert.pem'), '-untrusted', p('cluster', 'cert.pem'), ...crls, p('shards', 'shard-001', 'cert.pem')]);
  t.not(revoked.status, 0);
  t.match(revoked.stdout + revoked.stderr, /certificate revoked/);
});

t.test('the keys in the token are sensitive and cannot be exported', async (t) => {
  // Read straight from the token with graphene, not through themis-pki.
  process.env.SOFTHSM2_CONF = hsm.env.SOFTHSM2_CONF;
  const mod = graphene.Module.load(SOFTHSM_MODULE, 'softhsm');
  mod.initialize();
  t.teardown(() => mod.finalize());
  const slot = [...Array(mod.getSlots(true).length).keys()].map((i) => mod.getSlots(true).items(i)).find((s: { getToken(): { label: string } }) => s.getToken().label.trim() === hsm.label)!;
  const session = slot.open(graphene.SessionFlag.SERIAL_SESSION);
  session.login(hsm.pin, graphene.UserType.USER);
  t.teardown(() => session.close());
  for (const label of ['themis-root', 'themis-cluster']) {
    const found = session.find({ class: graphene.ObjectClass.PRIVATE_KEY, label });
    t.equal(found.length, 1, `one private key labelled ${label}`);
    const key = found.items(0);
    t.equal(key.getAttribute('extractable'), false, `${label}: CKA_EXTRACTABLE false`);
    t.equal(key.getAttribute('sensitive'), true, `${label}: CKA_SENSITIVE true`);
    t.throws(() => key.getAttribute('value'), /CKR_ATTRIBUTE_SENSITIVE/, `${label}: its value cannot be read`);
  }
  // Wrapping it out under a session key is refused too.
  const wrapper = session.generateKey(graphene.KeyGenMechanism.AES, { valueLen: 32, wrap: true, token: false });
  const root = session.find({ class: graphene.ObjectClass.PRIVATE_KEY, label: 'themis-root' }).items(0).toType();
  t.throws(() => session.wrapKey(graphene.MechanismEnum.AES_KEY_WRAP_PAD, wrapper, root), /CKR_KEY_UNEXTRACTABLE|CKR_KEY_NOT_WRAPPABLE/);
  session.logout();
});

t.test('the PIN: never on the command line; a file or a systemd credential', async (t) => {
  const issue = ['issue-shard', '--id', 'shard-002', '--cluster', 'c1', '--dc', 'dc1', '--ip', '127.0.0.1', '--token-range', '0:100'];
  const before = await snapshot(pki);
  let r = pki$([...issue, '--pin', hsm.pin]);
  t.equal(r.status, 2, 'a usage error');
  t.match(r.stderr, /--pin: a PIN is never a command-line argument/);
  r = pki$(['init-root', ...token(), `--pin=${hsm.pin}`, '--force']);
  t.equal(r.status, 2);
  t.same(await snapshot(pki), before, 'nothing written');
  r = pki$(issue);
  t.equal(r.status, 1, 'no PIN source');
  t.match(r.stderr, /pass --pin-file FILE, or run under systemd with LoadCredential=themis-pkcs11-pin/);
  const wrong = join(dir, 'wrong-pin');
  await writeFile(wrong, '000000\n');
  r = pki$([...issue, '--pin-file', wrong]);
  t.equal(r.status, 1);
  t.match(r.stderr, /--pin-file: token "themis-ca" refused the PIN/);
  t.same(await snapshot(pki), before, 'still nothing written');
  // systemd: LoadCredential=themis-pkcs11-pin:… puts it in $CREDENTIALS_DIRECTORY.
  const creds = await mkdtemp(join(dir, 'creds-'));
  await writeFile(join(creds, 'themis-pkcs11-pin'), hsm.pin + '\n');
  ok(t, pki$(issue, { CREDENTIALS_DIRECTORY: creds }), 'issue with the PIN from the credential');
  const v = openssl(['verify', '-CAfile', p('root', 'cert.pem'), '-untrusted', p('cluster', 'cert.pem'), p('shards', 'shard-002', 'cert.pem')]);
  t.equal(v.status, 0, v.stdout + v.stderr);
});

t.test('a key reference that names another key, or a missing token, is refused', async (t) => {
  const ref = JSON.parse(await readFile(p('cluster', 'key.pkcs11.json'), 'utf8'));
  const rootRef = JSON.parse(await readFile(p('root', 'key.pkcs11.json'), 'utf8'));
  await writeFile(p('cluster', 'key.pkcs11.json'), JSON.stringify({ ...ref, keyId: rootRef.keyId }));
  let r = pki$(['crl', '--ca', 'cluster', '--pin-file', hsm.pinFile]);
  t.equal(r.status, 1);
  t.match(r.stderr, /key\.pkcs11\.json: names a token key that is not the key of .*cluster\/cert\.pem/);
  await writeFile(p('cluster', 'key.pkcs11.json'), JSON.stringify({ ...ref, token: 'elsewhere' }));
  r = pki$(['crl', '--ca', 'cluster', '--pin-file', hsm.pinFile]);
  t.equal(r.status, 1);
  t.match(r.stderr, /--token: no token labelled "elsewhere"/);
  await writeFile(p('cluster', 'key.pkcs11.json'), JSON.stringify(ref));
  ok(t, pki$(['crl', '--ca', 'cluster', '--pin-file', hsm.pinFile]), 'restored');
});
