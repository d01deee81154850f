import t from 'tap';
import type { ClientHttp2Session } from 'node:http2';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { meshConnect, meshRequest, signHeaders } from '../support/mesh-client.js';
import { everyCheckInOrder } from '../support/signed-checks.js';
import { readFileSync } from 'node:fs';

let mesh: Mesh;
let session: ClientHttp2Session;
t.before(async () => {
  mesh = await startMesh({ shards: 2 });
  const sender = mesh.pki.shards[0]!;
  session = meshConnect(`${mesh.nodes[1]!.shard.ip}:${mesh.nodes[1]!.meshPort}`, { cert: sender.chain, key: sender.key, ca: mesh.pki.root.cert });
});
t.teardown(async () => {
  session?.close();
  await mesh?.close();
});

const audit = (i: number) => readFileSync(mesh.nodes[i]!.auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));

t.test('every check of a signed request, in order, with its status and code', (t) => everyCheckInOrder(t, mesh, session));

t.test('a key the receiver does not own gets 421 with its epoch', async (t) => {
  const sender = mesh.pki.shards[0]!;
  const uuid = uuidOwnedBy(sender.tokenRange); // owned by the sender, not the receiver
  const path = `/entities/document.app.orders:${uuid}`;
  const r = await meshRequest(session, 'GET', path, signHeaders({ shardId: sender.id, serial: sender.serial, key: sender.key, method: 'GET', path }));
  t.equal(r.status, 421);
  t.equal(r.body.code, 'NOT_OWNER');
  t.equal(r.headers['x-themis-topology-epoch'], '1');
});

t.test('curl + openssl dgst: an independently signed request is accepted, the same again gets 409', async (t) => {
  const { execFileSync, spawnSync } = await import('node:child_process');
  const { writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { createHash, randomBytes } = await import('node:crypto');
  const sender = mesh.pki.shards[0]!;
  const receiver = mesh.nodes[1]!;
  const uuid = uuidOwnedBy(receiver.shard.tokenRange);
  const path = `/entities/urn:themis:relational:shop:users:${uuid}`;
  const body = JSON.stringify({ blob: JSON.stringify({ name: 'curl' }) });
  const bodyFile = join(mesh.dir, 'curl-body.json');
  writeFileSync(bodyFile, body);
  const ts = String(Date.now());
  const nonce = randomBytes(8).toString('hex');
  const sha = createHash('sha256').update(body).digest('hex');
  const canonFile = join(mesh.dir, 'canonical.txt');
  writeFileSync(canonFile, ['THEMIS-SIG-V1', 'PUT', path, sender.id, sender.serial, ts, nonce, sha].join('\n'));
  const sig = execFileSync('openssl', ['dgst', '-sha256', '-sign', sender.keyPath, canonFile]).toString('base64');
  const curl = () =>
    spawnSync('curl', [
      '-sS', '--http2', '-X', 'PUT', '-w', '\n%{http_code}',
      '--cert', sender.chainPath, '--key', sender.keyPath, '--cacert', mesh.pki.root.certPath,
      '-H', `x-themis-shard-id: ${sender.id}`, '-H', `x-themis-cert-serial: ${sender.serial}`,
      '-H', `x-themis-timestamp: ${ts}`, '-H', `x-themis-nonce: ${nonce}`,
      '-H', `x-themis-content-sha256: ${sha}`, '-H', `x-themis-signature: ${sig}`,
      '-H', 'content-type: application/json', '--data-binary', `@${bodyFile}`,
      `https://${receiver.shard.ip}:${receiver.meshPort}${path}`,
    ], { encoding: 'utf8' });
  const first = curl();
  t.equal(first.status, 0, first.stderr);
  t.match(first.stdout, /\n201$/, first.stdout);
  const second = curl();
  t.match(second.stdout, /\n409$/, second.stdout);
  t.match(second.stdout, /REPLAY_DETECTED/);
});

t.test('client certificates: no signing, routed across the cluster, limited to their capabilities', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const rw = mesh.pki.clients.readWrite;
  const ro = mesh.pki.clients.readOnly;
  const entry = mesh.nodes[0]!;
  const owner = mesh.nodes[1]!;
  const uuid = uuidOwnedBy(owner.shard.tokenRange);
  const url = `https://${entry.shard.ip}:${entry.meshPort}/entities/document.app.orders:${uuid}`;
  const curl = (id: typeof rw, ...args: string[]) =>
    spawnSync('curl', ['-sS', '--http2', '-w', '\n%{http_code}', '--cert', id.chainPath, '--key', id.keyPath, '--cacert', mesh.pki.root.certPath, ...args, url], { encoding: 'utf8' });
  const put = curl(rw, '-X', 'PUT', '--data-binary', JSON.stringify({ blob: '{"by":"client"}' }));
  t.match(put.stdout, /\n201$/, put.stdout + put.stderr);
  const get = curl(ro);
  t.match(get.stdout, /"blob":"\{\\"by\\":\\"client\\"\}"/);
  t.match(get.stdout, /\n200$/);
  const denied = curl(ro, '-X', 'PUT', '--data-binary', JSON.stringify({ blob: '{"by":"ro"}' }));
  t.match(denied.stdout, /\n403$/, denied.stdout);
  t.match(denied.stdout, /CAPABILITY_DENIED/);
  const direct = await fetch(`${owner.storage.url}/entities/document.app.orders:${uuid}`).then((r) => r.json() as Promise<{ blob: string }>);
  t.equal(direct.blob, '{"by":"client"}', 'the denied write changed nothing');
  t.ok(audit(0).some((e) => e.event === 'CAPABILITY_DENIED' && e.peer?.serial === ro.serial), 'denial audited with the serial');
});

t.test('capabilities: a read-only shard certificate cannot write; a client certificate cannot read the change feed', async (t) => {
  const { shardProfile } = await import('../../src/pki/profiles.js');
  const base = mesh.pki.shards[0]!;
  const receiver = mesh.nodes[1]!;
  const ro = await mesh.pki.issue(
    shardProfile({ id: base.id, cluster: mesh.pki.cluster, datacenter: 'dc1', ips: ['127.0.0.1'], tokenRange: base.tokenRange, capabilities: ['read'], role: 'replica' }),
    'read-only-shard',
  );
  const s = meshConnect(`${receiver.shard.ip}:${receiver.meshPort}`, { cert: ro.chain, key: ro.key, ca: mesh.pki.root.cert });
  t.teardown(() => s.close());
  const path = `/entities/document.app.orders:${uuidOwnedBy(receiver.shard.tokenRange)}`;
  const body = JSON.stringify({ blob: '{"ro":true}' });
  const w = await meshRequest(s, 'PUT', path, signHeaders({ shardId: base.id, serial: ro.serial, key: ro.key, method: 'PUT', path, body }), body);
  t.equal(w.status, 403, w.text);
  t.equal(w.body.code, 'CAPABILITY_DENIED');
  const r = await meshRequest(s, 'GET', path, signHeaders({ shardId: base.id, serial: ro.serial, key: ro.key, method: 'GET', path }));
  t.equal(r.status, 404, 'reading is allowed (nothing there)');
  t.equal((await fetch(`${receiver.storage.url}${path}`)).status, 404, 'the refused write changed nothing');

  const client = mesh.pki.clients.readWrite;
  const c = meshConnect(`${receiver.shard.ip}:${receiver.meshPort}`, { cert: client.chain, key: client.key, ca: mesh.pki.root.cert });
  t.teardown(() => c.close());
  for (const p of ['/changefeed?from_seq=0', '/entities?limit=5']) {
    const x = await meshRequest(c, 'GET', p);
    t.equal(x.status, 403, `client on ${p}`);
    t.equal(x.body.code, 'CAPABILITY_DENIED');
  }
});

t.test('after this mixed run (successes, refusals, replays, denials) the audit trails verify intact', async (t) => {
  const { runProgram } = await import('../support/cli.js');
  for (const node of mesh.nodes) {
    const r = runProgram('themis-admin', ['audit', 'verify', node.auditFile]);
    t.equal(r.status, 0, r.stdout + r.stderr);
    t.match(r.stdout, /intact, \d+ lines/);
  }
});
