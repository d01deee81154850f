// Replay protection holds across a restart of the receiving sidecar: a signed request captured
// on its way between two real sidecars (by a man in the middle holding both certificates, as a
// compromised proxy would) is refused after the receiver restarts — killed or stopped — while a
// fresh request, from the test and from the real sending sidecar, is accepted at once.
import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { meshConnect, meshRequest, signHeaders } from '../support/mesh-client.js';
import { startCaptureProxy, type CaptureProxy } from '../support/capture-proxy.js';
import { call } from '../support/storage-process.js';
import { serializeTopology } from '../../src/topology/document.js';

let mesh: Mesh;
let proxy: CaptureProxy | undefined;
t.before(async () => {
  mesh = await startMesh({ shards: 2 });
});
t.teardown(async () => {
  await proxy?.close();
  await mesh?.close();
});

const audit = (i: number) => readFileSync(mesh.nodes[i]!.auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; reason?: string });

/** Writes topology `epoch` with shard-002 reached at `endpoint`, and waits until shard-001 routes by it. */
async function routeB(epoch: number, endpoint: string): Promise<void> {
  const [a, b] = mesh.nodes;
  writeFileSync(mesh.topologyFile, serializeTopology(mesh.topology.withEpoch(epoch, { ...mesh.topology.shards, [b!.shard.id]: { ...mesh.topology.shards[b!.shard.id], endpoint } })));
  for (const node of mesh.nodes) node.sidecar!.child.kill('SIGHUP');
  for (let i = 0; i < 100; i++) {
    if ((await call(a!.appUrl, 'GET', '/health')).body.topology_epoch === epoch) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`shard-001 did not apply epoch ${epoch}`);
}

t.test('a captured signed request is refused after the receiver restarts; fresh ones are accepted', async (t) => {
  const [a, b] = mesh.nodes as [Mesh['nodes'][0], Mesh['nodes'][0]];
  const sender = { cert: a.shard.chain, key: a.shard.key, ca: mesh.pki.root.cert };
  proxy = await startCaptureProxy({ host: '127.0.0.1', serveAs: { cert: b.shard.chain, key: b.shard.key }, upstream: `${b.shard.ip}:${b.meshPort}`, connectAs: sender });
  await routeB(2, proxy.endpoint);

  const path = `/entities/document.app.replayed:${uuidOwnedBy(b.shard.tokenRange)}`;
  const put = (n: number) => call(a.appUrl, 'PUT', path, { blob: JSON.stringify({ n }) });
  const first = await put(1);
  t.equal(first.status, 201, first.text);
  t.equal(first.headers.get('x-themis-shard'), b.shard.id, 'served by shard-002, through the proxy');
  t.equal((await put(2)).status, 201);
  const capture = proxy.captured.find((c) => c.method === 'PUT' && c.body.toString().includes('{\\"n\\":1}'));
  t.ok(capture?.headers['x-themis-signature'], 'the proxy holds shard-001\'s signed PUT of n=1');
  t.ok(existsSync(join(mesh.dir, `replay-${b.shard.id}.json`)), 'shard-002 persisted its replay marks');
  const stored = async () => JSON.parse((await call(b.storage.url, 'GET', path)).body.blob as string).n as number;

  const replay = async () => {
    const s = meshConnect(`${b.shard.ip}:${b.meshPort}`, sender);
    try {
      return await meshRequest(s, capture!.method, capture!.path, capture!.headers, capture!.body);
    } finally {
      s.close();
    }
  };
  const before = await replay();
  t.equal(before.status, 409, 'refused before any restart (the nonce cache)');
  t.equal(before.body?.code, 'REPLAY_DETECTED');

  let n = 2;
  for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
    const rejected = () => audit(1).filter((e) => e.event === 'REPLAY_REJECTED').length;
    const rejectedBefore = rejected();
    await mesh.stopSidecar(1, signal);
    await mesh.startSidecar(1);
    const r = await replay();
    t.equal(r.status, 409, `after ${signal} and a restart, the capture is refused: ${r.text}`);
    t.equal(r.body?.code, 'REPLAY_DETECTED', signal);
    t.equal(await stored(), n, 'the replayed write changed nothing');
    t.equal(rejected(), rejectedBefore + 1, 'audited by the restarted sidecar');

    // A fresh request, signed now by shard-001's key, is accepted at once.
    n++;
    const body = JSON.stringify({ blob: JSON.stringify({ n }) });
    const s = meshConnect(`${b.shard.ip}:${b.meshPort}`, sender);
    const fresh = await meshRequest(s, 'PUT', path, signHeaders({ shardId: a.shard.id, serial: a.shard.serial, key: a.shard.key, method: 'PUT', path, body }), body);
    s.close();
    t.equal(fresh.status, 201, `a fresh signed request after ${signal}: ${fresh.text}`);
    t.equal(await stored(), n);
  }

  // The real sending sidecar, straight to shard-002 again: accepted too.
  await proxy.close();
  proxy = undefined;
  await routeB(3, `${b.shard.ip}:${b.meshPort}`);
  const last = await put(++n);
  t.equal(last.status, 201, last.text);
  t.equal(last.headers.get('x-themis-shard'), b.shard.id);
  t.equal(await stored(), n);
});
