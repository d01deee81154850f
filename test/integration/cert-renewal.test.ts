// Automatic renewal (issue 19) on real processes: `themis-pki serve` issuing 1-minute
// certificates, three sidecars renewing theirs at 50 % ± 10 % of the lifetime while a write and
// read loop runs through every app port across the mesh. Every sidecar renews at least three
// times; no request fails; every acknowledged write reads back (history checker). Then the
// service refuses what it must, on its real port, and audits it.
import t from 'tap';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { request } from 'node:https';
import { webcrypto } from 'node:crypto';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { checkLoad, startMeshLoad } from '../support/mesh-load.js';
import { call } from '../support/storage-process.js';
import { PROGRAMS, ROOT } from '../support/cli.js';
import { reservePorts } from '../../scripts/ports.js';
import { BACKDATE_MS } from '../../src/pki/issue.js';
import { shardProfile } from '../../src/pki/profiles.js';
import { encodeIdentity, decodeIdentity, THEMIS_IDENTITY_OID } from '../../src/pki/identity-extension.js';
import { x509 } from '../../src/pki/x509.js';

const LIFETIME_S = 60;
t.setTimeout(360_000); // three renewal rounds of a 1-minute certificate, then a refusal (tap's default is 120 s)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let mesh: Mesh;
let serve: ChildProcess;
let servePort: number;
let serveLog = '';

t.before(async () => {
  servePort = (await reservePorts([{ host: '127.0.0.1' }]))[0]!;
  mesh = await startMesh({ shards: 3, sidecarConfig: { tls: { renewal: { url: `https://127.0.0.1:${servePort}`, retryMinMs: 500, retryMaxMs: 4000 } } } });
  const pass = join(mesh.dir, 'ca-passphrase');
  writeFileSync(pass, mesh.pki.passphrase, { mode: 0o600 });
  const etcd = mesh.pki.etcd; // a server certificate of the cluster CA for 127.0.0.1: the service's own
  serve = spawn(process.execPath, [
    join(ROOT, PROGRAMS['themis-pki']), 'serve', '--dir', mesh.pki.dir, '--listen', `127.0.0.1:${servePort}`,
    '--lifetime', `${LIFETIME_S}s`, '--allow-short-lifetime', '--tls-cert', etcd.chainPath, '--tls-key', etcd.keyPath, '--passphrase-file', pass,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  serve.stdout!.on('data', (d: Buffer) => (serveLog += d.toString()));
  serve.stderr!.on('data', (d: Buffer) => (serveLog += d.toString()));
  for (let i = 0; i < 100 && !serveLog.includes('listening on'); i++) await sleep(100);
  if (!serveLog.includes('listening on')) throw new Error(`themis-pki serve did not start: ${serveLog}`);
});
t.teardown(async () => {
  serve?.kill('SIGTERM');
  await mesh?.close();
});

const serveAudit = () => readFileSync(join(mesh.pki.dir, 'serve-audit.log'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>);
const renewedSerials = (shard: string) => serveAudit().filter((l) => l.event === 'CERTIFICATE_ISSUED' && l.peer?.shardId === shard).map((l) => l.peer.serial as string);
const presentedSerial = (i: number) => new x509.X509Certificate(readFileSync(mesh.nodes[i]!.shard.chainPath, 'utf8')).serialNumber;

t.test('1-minute certificates renew at least 3 times each under a write/read loop: no failed request, nothing lost', async (t) => {
  // Every shard moves to a 1-minute certificate (an operator's rotation), so its renewals start.
  for (const node of mesh.nodes) {
    const s = node.shard;
    const now = Date.now();
    const short = await mesh.pki.issue(
      shardProfile({ id: s.id, cluster: mesh.pki.cluster, datacenter: 'dc1', dns: ['localhost'], ips: [s.ip, '127.0.0.1'], tokenRange: s.tokenRange, capabilities: ['read', 'write', 'replicate'], role: 'primary' }),
      `${s.id}-short`,
      { validity: { notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + LIFETIME_S * 1000) } },
    );
    copyFileSync(short.keyPath, s.keyPath);
    copyFileSync(short.chainPath, s.chainPath);
    node.sidecar!.child.kill('SIGHUP');
  }
  const keys = mesh.nodes.flatMap((n) => [0, 1, 2, 3].map(() => `/entities/document.app.renew:${uuidOwnedBy(n.shard.tokenRange)}`));
  const load = startMeshLoad(mesh.nodes, keys);
  // Until every sidecar has renewed three times (about 30 s apart), at most 3 lifetimes.
  const deadline = Date.now() + 3 * LIFETIME_S * 1000 + 30_000;
  while (Date.now() < deadline && !mesh.nodes.every((n) => renewedSerials(n.shard.id).length >= 3)) await sleep(1000);
  const result = await load.stop();
  for (const n of mesh.nodes) t.ok(renewedSerials(n.shard.id).length >= 3, `${n.shard.id} renewed ${renewedSerials(n.shard.id).length} times`);
  await checkLoad(t, load, result, mesh.nodes[0]!, 100, 'during the renewals');
  for (const [i, n] of mesh.nodes.entries()) {
    const onDisk = BigInt('0x' + presentedSerial(i)).toString(16);
    t.ok(renewedSerials(n.shard.id).includes(onDisk), `${n.shard.id}'s files hold a certificate the service issued`);
    const metrics = (await call(n.adminUrl, 'GET', '/metrics')).text;
    t.match(metrics, new RegExp(`themis_certificate_renewals_total\\{shard_id="${n.shard.id}",result="renewed"\\} ([3-9]|\\d\\d)`), 'counted in the metrics');
    t.match(metrics, new RegExp(`themis_certificate_renewal_failures\\{shard_id="${n.shard.id}"\\} 0`), 'no failure in a row now');
  }
});

t.test('the service on its real port: shard-002 asking for shard-001, or for a broader range, is refused and audited', async (t) => {
  const asker = mesh.nodes[1]!.shard; // its files hold its current (renewed) certificate
  const held = decodeIdentity(new Uint8Array(new x509.X509Certificate(readFileSync(asker.chainPath, 'utf8')).getExtension(THEMIS_IDENTITY_OID)!.value));
  const other = decodeIdentity(new Uint8Array(new x509.X509Certificate(readFileSync(mesh.nodes[0]!.shard.chainPath, 'utf8')).getExtension(THEMIS_IDENTITY_OID)!.value));
  for (const [what, identity, field] of [["shard-001's identity", other, 'shard id'], ['a broader token range', { ...held, tokenRangeStart: 0n }, 'token range']] as const) {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: alg, extensions: [new x509.Extension(THEMIS_IDENTITY_OID, false, encodeIdentity(identity))] });
    const r = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: servePort, method: 'POST', path: '/v1/renew', ca: mesh.pki.root.cert, cert: readFileSync(asker.chainPath, 'utf8'), key: readFileSync(asker.keyPath, 'utf8') }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, text }));
      });
      req.on('error', reject);
      req.end(csr.toString('pem'));
    });
    t.equal(r.status, 403, `${what}: ${r.text}`);
    t.equal(JSON.parse(r.text).code, 'IDENTITY_CHANGE_REFUSED', what);
    t.ok(JSON.parse(r.text).fields.includes(field), `${what}: names the ${field}`);
  }
  const refused = serveAudit().filter((l) => l.event === 'CERTIFICATE_RENEWAL_REFUSED' && l.code === 'IDENTITY_CHANGE_REFUSED');
  t.equal(refused.length, 2, 'both refusals are in the service audit trail');
});

t.test('a revoked certificate cannot renew: the sidecar counts the refusal and keeps serving on it until it expires', async (t) => {
  const node = mesh.nodes[2]!;
  const serial = BigInt('0x' + presentedSerial(2)).toString(16);
  const pass = join(mesh.dir, 'ca-passphrase');
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(process.execPath, [join(ROOT, PROGRAMS['themis-pki']), 'revoke', '--dir', mesh.pki.dir, '--serial', serial, '--reason', 'keyCompromise', '--passphrase-file', pass], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const refusedCount = async () => Number(new RegExp(`themis_certificate_renewals_total\\{shard_id="${node.shard.id}",result="refused"\\} (\\d+)`).exec((await call(node.adminUrl, 'GET', '/metrics')).text)?.[1] ?? 0);
  const deadline = Date.now() + LIFETIME_S * 1000;
  while (Date.now() < deadline && (await refusedCount()) === 0) await sleep(500);
  t.ok((await refusedCount()) >= 1, 'the renewal was refused');
  t.ok(serveAudit().some((l) => l.event === 'CERTIFICATE_RENEWAL_REFUSED' && l.reason === 'revoked' && l.peer?.serial === serial), 'and audited by the service with the revoked serial');
  t.equal(BigInt('0x' + presentedSerial(2)).toString(16), serial, 'the files still hold the revoked certificate (nothing was issued)');
  const metrics = (await call(node.adminUrl, 'GET', '/metrics')).text;
  t.match(metrics, new RegExp(`themis_certificate_renewal_failures\\{shard_id="${node.shard.id}"\\} [1-9]`), 'failures in a row are exported (the alert reads them)');
});
