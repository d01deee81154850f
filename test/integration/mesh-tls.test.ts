import t from 'tap';
import { readFileSync } from 'node:fs';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { meshConnect, meshRequest, signHeaders, type Identity } from '../support/mesh-client.js';
import { createPkiFixture, type PkiFixture } from '../support/pki-fixture.js';
import { shardProfile } from '../../src/pki/profiles.js';
import { call } from '../support/storage-process.js';

let mesh: Mesh;
let foreign: PkiFixture;
t.before(async () => {
  mesh = await startMesh({ shards: 3 });
  foreign = await createPkiFixture({ shards: 1 });
});
t.teardown(async () => {
  await mesh?.close();
  await foreign?.cleanup();
});

const auditOf = (i: number) => readFileSync(mesh.nodes[i]!.auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Tries one signed GET with `id`; resolves with the status, or 'refused' when the connection is cut. */
async function attempt(id: Identity & { shardId?: string; serial?: string }, extra = {}): Promise<number | 'refused'> {
  const target = mesh.nodes[1]!;
  const session = meshConnect(`${target.shard.ip}:${target.meshPort}`, id, extra);
  try {
    const path = `/entities/document.app.orders:${uuidOwnedBy(target.shard.tokenRange)}`;
    const headers = id.shardId ? signHeaders({ shardId: id.shardId, serial: id.serial!, key: id.key, method: 'GET', path }) : {};
    return (await meshRequest(session, 'GET', path, headers)).status;
  } catch {
    return 'refused';
  } finally {
    session.destroy();
  }
}

t.test('handshakes that must fail do, and each refusal is audited with its reason', async (t) => {
  const ca = mesh.pki.root.cert;
  const base = mesh.pki.shards[0]!;
  const profile = (id: string) =>
    shardProfile({ id, cluster: mesh.pki.cluster, datacenter: 'dc1', ips: ['127.0.0.1'], tokenRange: base.tokenRange, capabilities: ['read', 'write'], role: 'primary' });
  const day = 86_400_000;
  const expired = await mesh.pki.issue(profile('shard-001'), 'expired', { validity: { notBefore: new Date(Date.now() - 3 * day), notAfter: new Date(Date.now() - day) } });
  const revoked = await mesh.pki.issue(profile('shard-001'), 'revoked');
  await mesh.pki.revoke(revoked.serial);
  mesh.publishCrls();
  // A shard certificate whose extended key usage allows serverAuth only.
  const serverOnly = await mesh.pki.issue(profile('shard-001'), 'server-only', { overrides: { extendedKeyUsages: ['1.3.6.1.5.5.7.3.1'] } });
  const fshard = foreign.shards[0]!;

  // The sidecars pick up the new CRL files by themselves (watchFiles); wait until shard 2 has.
  for (let i = 0; i < 50 && !auditOf(1).some((e) => e.event === 'CRL_APPLIED'); i++) await sleep(100);

  const cases: [string, Identity & { shardId?: string; serial?: string }, object, string][] = [
    ['expired certificate', { cert: expired.chain, key: expired.key, ca, shardId: 'shard-001', serial: expired.serial }, {}, 'expired'],
    ['revoked certificate', { cert: revoked.chain, key: revoked.key, ca, shardId: 'shard-001', serial: revoked.serial }, {}, 'revoked'],
    ['foreign CA', { cert: fshard.chain, key: fshard.key, ca, shardId: fshard.id, serial: fshard.serial }, {}, 'unknown_issuer'],
    ['server-only usage', { cert: serverOnly.chain, key: serverOnly.key, ca, shardId: 'shard-001', serial: serverOnly.serial }, {}, 'wrong_key_usage'],
    ['no client certificate', { cert: undefined as never, key: undefined as never, ca }, {}, 'no_client_certificate'],
    ['TLS 1.2 client', { cert: base.chain, key: base.key, ca, shardId: base.id, serial: base.serial }, { maxVersion: 'TLSv1.2' }, 'ERR_SSL_UNSUPPORTED_PROTOCOL'],
  ];
  for (const [name, id, extra, reason] of cases) {
    const before = auditOf(1).length;
    t.equal(await attempt(id, extra), 'refused', name);
    await sleep(50);
    const fresh = auditOf(1).slice(before);
    const failed = fresh.find((e) => e.event === 'MTLS_CONNECTION_FAILED');
    t.ok(failed, `${name}: MTLS_CONNECTION_FAILED audited`);
    t.match(failed?.reason ?? '', new RegExp(reason, 'i'), `${name}: reason ${failed?.reason}`);
  }
  // And a good certificate still gets through (the same request shape as above).
  t.equal(await attempt({ cert: base.chain, key: base.key, ca, shardId: base.id, serial: base.serial }), 404, 'valid shard certificate accepted');
  const metrics = await fetch(`${mesh.nodes[1]!.adminUrl}/metrics`).then((r) => r.text());
  t.match(metrics, /themis_mtls_handshakes_total\{result="failure",reason="revoked"\} [1-9]/);
  t.match(metrics, /themis_pki_events_total\{event="MTLS_CONNECTION_FAILED"\} [1-9]/);
});

t.test('a dead peer sidecar gives 503 for its shard only, and traffic recovers when it returns', async (t) => {
  const entry = mesh.nodes[0]!;
  const keyOf = (i: number) => `/entities/document.app.orders:${uuidOwnedBy(mesh.nodes[i]!.shard.tokenRange)}`;
  const blob = { blob: '{"x":1}' };
  const down = keyOf(2);
  t.equal((await call(entry.appUrl, 'PUT', down, blob)).status, 201, 'warm session to shard-003');
  // A request in flight when the peer dies must end at once, not hang until a timeout.
  mesh.nodes[2]!.storage.child.kill('SIGSTOP');
  const inFlight = call(entry.appUrl, 'GET', down);
  await sleep(300);
  const killedAt = Date.now();
  await mesh.stopSidecar(2, 'SIGKILL');
  const cut = await inFlight;
  mesh.nodes[2]!.storage.child.kill('SIGCONT');
  t.equal(cut.status, 503, `in-flight request: ${cut.text}`);
  t.ok(Date.now() - killedAt < 2_000, 'answered promptly, well before the 5 s request timeout');
  const r = await call(entry.appUrl, 'PUT', down, blob);
  t.equal(r.status, 503, r.text);
  t.equal(r.body.code, 'UPSTREAM_UNAVAILABLE');
  t.equal((await call(entry.appUrl, 'PUT', keyOf(1), blob)).status, 201, 'shard-002 unaffected');
  t.equal((await call(entry.appUrl, 'PUT', keyOf(0), blob)).status, 201, 'local shard unaffected');
  await mesh.startSidecar(2);
  let status = 0;
  for (let i = 0; i < 40 && status !== 201; i++) {
    status = (await call(entry.appUrl, 'PUT', down, blob)).status;
    if (status !== 201) await sleep(100);
  }
  t.equal(status, 201, 'recovered after the peer came back');
});

t.test('a dead storage node gives 503 on its shard and leaves the others alone', async (t) => {
  const entry = mesh.nodes[0]!;
  await mesh.nodes[1]!.storage.kill('SIGKILL');
  const r = await call(entry.appUrl, 'GET', `/entities/document.app.orders:${uuidOwnedBy(mesh.nodes[1]!.shard.tokenRange)}`);
  t.equal(r.status, 503, r.text);
  t.equal(r.body.code, 'UPSTREAM_UNAVAILABLE');
  const other = await call(entry.appUrl, 'PUT', `/entities/document.app.orders:${uuidOwnedBy(mesh.nodes[2]!.shard.tokenRange)}`, { blob: '{}' });
  t.equal(other.status, 201);
});
