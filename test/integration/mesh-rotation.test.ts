import t from 'tap';
import { copyFileSync, readFileSync } from 'node:fs';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { meshConnect, meshRequest } from '../support/mesh-client.js';
import { shardProfile } from '../../src/pki/profiles.js';
import { call } from '../support/storage-process.js';

let mesh: Mesh;
t.before(async () => {
  // Without file watching, only SIGHUP can make a sidecar pick up new files.
  mesh = await startMesh({ shards: 3, sidecarConfig: { watchFiles: false } });
});
t.teardown(() => mesh?.close());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const auditOf = (i: number) => readFileSync(mesh.nodes[i]!.auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));

/** The serial the mesh port of node i presents to a new connection. */
async function presentedSerial(i: number): Promise<string> {
  const node = mesh.nodes[i]!;
  const c = mesh.pki.clients.readOnly;
  const session = meshConnect(`${node.shard.ip}:${node.meshPort}`, { cert: c.chain, key: c.key, ca: mesh.pki.root.cert });
  try {
    await meshRequest(session, 'GET', '/health');
    const cert = (session.socket as import('node:tls').TLSSocket).getPeerCertificate();
    return BigInt('0x' + cert.serialNumber).toString(16);
  } finally {
    session.close();
  }
}

t.test('certificate rotation under traffic: no failed request, new connections see the new certificate', async (t) => {
  const [a, b] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[1]];
  const keys = [uuidOwnedBy(b.shard.tokenRange), uuidOwnedBy(a.shard.tokenRange)].map((u) => `/entities/document.app.rot:${u}`);
  let running = true;
  const failures: string[] = [];
  let done = 0;
  const worker = async (w: number) => {
    for (let i = 0; running; i++) {
      const key = keys[(w + i) % keys.length]!;
      const r = await call(a.appUrl, 'PUT', key, { blob: JSON.stringify({ w, i }) });
      if (r.status !== 201) failures.push(`${r.status} ${r.text}`);
      done++;
    }
  };
  const workers = [0, 1, 2, 3].map(worker);
  await sleep(300);
  // Rotate both ends of the a → b path: new certificates written over the files, then SIGHUP.
  for (const node of [a, b]) {
    const s = node.shard;
    const fresh = await mesh.pki.issue(
      shardProfile({ id: s.id, cluster: mesh.pki.cluster, datacenter: 'dc1', dns: ['localhost'], ips: [s.ip, '127.0.0.1'], tokenRange: s.tokenRange, capabilities: ['read', 'write', 'replicate'], role: 'primary' }),
      `${s.id}-rotated`,
    );
    copyFileSync(fresh.keyPath, s.keyPath);
    copyFileSync(fresh.chainPath, s.chainPath);
    node.sidecar!.child.kill('SIGHUP');
    (node as unknown as { rotatedSerial: string }).rotatedSerial = fresh.serial;
  }
  const atRotation = done;
  await sleep(1500);
  running = false;
  await Promise.all(workers);
  t.ok(atRotation > 0 && done - atRotation >= 10, `${atRotation} requests before and ${done - atRotation} after the rotation`);
  t.same(failures, [], 'no request failed');
  t.equal(await presentedSerial(1), (b as unknown as { rotatedSerial: string }).rotatedSerial, 'b presents its new certificate');
  // a → b still works, now over a new session on which a presented its new certificate.
  const after = await call(a.appUrl, 'PUT', keys[0]!, { blob: '{"after":true}' });
  t.equal(after.status, 201, after.text);
  const rotatedA = (a as unknown as { rotatedSerial: string }).rotatedSerial;
  t.ok(auditOf(1).some((e) => e.event === 'MTLS_CONNECTION_SUCCESS' && e.peer?.serial === rotatedA), 'b admitted a session from a with its rotated certificate');
});

t.test('revoking a connected peer cuts its session and refuses its next handshake', async (t) => {
  const c = mesh.nodes[2]!;
  const b = mesh.nodes[1]!;
  const key = `/entities/document.app.rev:${uuidOwnedBy(b.shard.tokenRange)}`;
  t.equal((await call(c.appUrl, 'PUT', key, { blob: '{}' })).status, 201, 'c → b session is up');
  await mesh.pki.revoke(c.shard.serial);
  mesh.publishCrls();
  b.sidecar!.child.kill('SIGHUP');
  let revokedAudit: { event: string } | undefined;
  for (let i = 0; i < 50 && !revokedAudit; i++) {
    await sleep(50);
    revokedAudit = auditOf(1).find((e) => e.event === 'CERTIFICATE_REVOKED' && e.peer?.serial === c.shard.serial);
  }
  t.ok(revokedAudit, 'b audited CERTIFICATE_REVOKED for c and cut the session');
  const r = await call(c.appUrl, 'PUT', key, { blob: '{"after":"revoked"}' });
  t.ok(r.status >= 502 && r.status <= 503, `c can no longer reach b: ${r.status} ${r.text}`);
  const refusal = auditOf(1).find((e) => e.event === 'MTLS_CONNECTION_FAILED' && e.reason === 'revoked' && e.peer?.serial === c.shard.serial);
  t.ok(refusal, 'b refused c’s new handshake as revoked');
  const direct = await fetch(`${b.storage.url}${key}`).then((x) => x.json() as Promise<{ blob: string }>);
  t.equal(direct.blob, '{}', 'nothing from c after revocation reached b');
});

t.test('revoking an intermediate (the client CA) cuts the live sessions of the apps it vouched for', async (t) => {
  const { X509Certificate } = await import('node:crypto');
  const { meshConnect: connect, meshRequest: request } = await import('../support/mesh-client.js');
  const b = mesh.nodes[1]!;
  const client = mesh.pki.clients.readWrite;
  const session = connect(`${b.shard.ip}:${b.meshPort}`, { cert: client.chain, key: client.key, ca: mesh.pki.root.cert });
  t.teardown(() => session.destroy());
  const key = `/entities/document.app.ca:${uuidOwnedBy(b.shard.tokenRange)}`;
  t.equal((await request(session, 'GET', key)).status, 404, 'the client session works');
  const caSerial = BigInt('0x' + new X509Certificate(mesh.pki.cas.client.cert).serialNumber).toString(16);
  await mesh.pki.revoke(caSerial, 'cACompromise');
  mesh.publishCrls();
  b.sidecar!.child.kill('SIGHUP');
  let cut: { event: string } | undefined;
  for (let i = 0; i < 50 && !cut; i++) {
    await sleep(50);
    cut = auditOf(1).find((e) => e.event === 'CERTIFICATE_REVOKED' && e.peer?.serial === client.serial);
  }
  t.ok(cut, 'the client session was cut and audited');
  await t.rejects(request(session, 'GET', key), 'the old session is gone');
});
