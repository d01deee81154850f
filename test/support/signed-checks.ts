// The mesh port's checks of a signed request, every one in its documented order, sent through a
// real sidecar: used by mesh-signed-requests (signatures on the event loop) and
// mesh-signing-threadpool (on libuv's thread pool), which must answer exactly alike.
import type { Test } from 'tap';
import type { ClientHttp2Session } from 'node:http2';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { uuidOwnedBy, type Mesh } from './mesh.js';
import { meshRequest, signHeaders } from './mesh-client.js';

/** `session`: node 0's shard identity connected to node 1's mesh port. */
export async function everyCheckInOrder(t: Test, mesh: Mesh, session: ClientHttp2Session): Promise<void> {
  const sender = mesh.pki.shards[0]!;
  const receiver = mesh.nodes[1]!;
  const uuid = uuidOwnedBy(receiver.shard.tokenRange);
  const path = `/entities/document.app.orders:${uuid}`;
  const body = JSON.stringify({ blob: '{"v":1}' });
  const base = { shardId: sender.id, serial: sender.serial, key: sender.key, method: 'PUT', path, body };

  const ok = signHeaders(base);
  const accepted = await meshRequest(session, 'PUT', path, ok, body);
  t.equal(accepted.status, 201, accepted.text);
  t.equal(accepted.headers['x-themis-shard'], receiver.shard.id);

  // Each refused case carries its own body, so a leak of any one of them would show in storage.
  const bodyFor = (n: number) => JSON.stringify({ blob: JSON.stringify({ refused: n }) });
  const sign = (n: number, o: Partial<typeof base> & { timestamp?: number } = {}) => signHeaders({ ...base, body: bodyFor(n), ...o });
  const stale = Date.now() - 61_000;
  const cases: [string, Record<string, string>, string, string, number, string][] = [
    ['missing signature header', (({ 'x-themis-signature': _, ...h }) => h)(sign(1)), path, bodyFor(1), 400, 'SIGNATURE_HEADERS_INVALID'],
    ['shard id not the TLS peer', sign(2, { shardId: 'shard-002' }), path, bodyFor(2), 401, 'IDENTITY_MISMATCH'],
    ['cert serial not the TLS peer', sign(3, { serial: 'abcdef' }), path, bodyFor(3), 401, 'IDENTITY_MISMATCH'],
    ['stale timestamp', sign(4, { timestamp: stale }), path, bodyFor(4), 401, 'TIMESTAMP_OUT_OF_WINDOW'],
    ['future timestamp', sign(5, { timestamp: Date.now() + 61_000 }), path, bodyFor(5), 401, 'TIMESTAMP_OUT_OF_WINDOW'],
    ['tampered body', sign(6), path, bodyFor(66), 401, 'SIGNATURE_INVALID'],
    ['tampered path', sign(7), path.replace(/.$/, (c) => (c === 'a' ? 'b' : 'a')), bodyFor(7), 401, 'SIGNATURE_INVALID'],
    ['signed by another key', sign(8, { key: mesh.pki.shards[1]!.key }), path, bodyFor(8), 401, 'SIGNATURE_INVALID'],
    ['replayed request', ok, path, body, 409, 'REPLAY_DETECTED'],
    // Two faults at once: the earlier check in the documented order must be the one reported.
    ['malformed header and wrong identity', { ...sign(9, { shardId: 'shard-002' }), 'x-themis-nonce': 'xyz' }, path, bodyFor(9), 400, 'SIGNATURE_HEADERS_INVALID'],
    ['wrong identity and stale timestamp', sign(10, { serial: 'abcdef', timestamp: stale }), path, bodyFor(10), 401, 'IDENTITY_MISMATCH'],
    ['stale timestamp and bad signature', sign(11, { timestamp: stale, key: mesh.pki.shards[1]!.key }), path, bodyFor(11), 401, 'TIMESTAMP_OUT_OF_WINDOW'],
    ['replayed nonce with a bad signature', { ...sign(12, { key: mesh.pki.shards[1]!.key }), 'x-themis-nonce': ok['x-themis-nonce']! }, path, bodyFor(12), 401, 'SIGNATURE_INVALID'],
  ];
  for (const [name, headers, p, b, status, code] of cases) {
    const r = await meshRequest(session, 'PUT', p, headers, b);
    t.equal(r.status, status, `${name}: ${r.text}`);
    t.equal(r.body?.code, code, name);
  }
  // Nothing of the refused writes reached storage: the value is still the accepted one.
  const direct = await fetch(`${receiver.storage.url}${path}`).then((r) => r.json() as Promise<{ blob: string }>);
  t.equal(direct.blob, '{"v":1}');
  const events = auditEvents(mesh.nodes[1]!.auditFile).map((e) => e.event);
  t.ok(events.includes('SIGNATURE_FAILED'), 'signature failures audited');
  t.ok(events.includes('REPLAY_REJECTED'), 'replay audited');
}

/** The events of a sidecar's audit chain, and of its workers' chains (`audit-X.worker-N.log`) when it has workers. */
function auditEvents(file: string): { event: string }[] {
  const stem = basename(file).replace(/\.log$/, '');
  const files = [file, ...readdirSync(dirname(file)).filter((f) => f.startsWith(`${stem}.worker-`) && f.endsWith('.log')).map((f) => join(dirname(file), f))];
  return files.filter(existsSync).flatMap((f) => readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string }));
}
