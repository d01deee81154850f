// A range moves (auto cutover) while a steady write loop runs through every sidecar against keys
// in it and outside it — and with `back`, at once moves back, while the first move's source is
// still due to clean up those tokens. Clients see a pause, never an error: no write fails, and
// afterwards every acknowledged write reads back through the mesh (none lost, reverted or
// invented). Used by rebalance-under-load (one process per sidecar) and rebalance-workers.
import type { Test } from 'tap';
import { randomUUID } from 'node:crypto';
import { buildOperation, signOperation } from '../../src/rebalance/operation.js';
import { loadPrivateKey } from '../../src/pki/keys.js';
import { parsePem } from '../../src/pki/pem.js';
import { etcdClient, uuidOwnedBy, type Mesh } from './mesh.js';
import { rebalanceStatus } from './rebalance-status.js';
import type { Topology } from '../../src/topology/topology.js';
import { History, writeLoop } from './history.js';
import { call } from './storage-process.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function moveUnderLoad(t: Test, mesh: Mesh, o: { back: boolean }): Promise<void> {
  const r1 = mesh.topology.ranges.find((r) => r.owner === 'shard-001')!;
  const part = { start: r1.start, end: r1.start + (r1.end - r1.start) / 2n };
  const inside = Array.from({ length: 40 }, () => `document.shop.load:${uuidOwnedBy({ start: part.start, end: part.end })}`);
  const outside = Array.from({ length: 20 }, () => `document.shop.load:${randomUUID()}`);
  const keys = [...inside, ...outside];
  const history = new History();
  let lane = 0;
  let slowest = 0;
  let stop!: () => void;
  const until = new Promise<void>((r) => (stop = r));
  const loop = writeLoop(history, keys, async (key, blob) => {
    const node = mesh.nodes[lane++ % 3]!;
    const t0 = performance.now();
    const r = await call(node.appUrl, 'PUT', `/entities/${encodeURIComponent(key)}`, { blob }, 10_000);
    slowest = Math.max(slowest, performance.now() - t0);
    return { status: r.status, code: r.body?.code };
  }, { until, concurrency: 6 });
  await sleep(1000);
  const before = slowest;
  slowest = 0;

  const admin = mesh.pki.operators.admin;
  const key = (await loadPrivateKey(admin.key, undefined, 'admin')).privateKey;
  const chain = parsePem(admin.chain, 'admin').map((b) => new Uint8Array(b.der));
  const ctl = (args: string[]) => mesh.etcd!.etcdctl({ cert: admin.chainPath, key: admin.keyPath, ca: mesh.pki.root.certPath }, args);
  const etcd = etcdClient(mesh);
  t.teardown(() => etcd.close());
  const run = async (base: Topology, from: string, to: string) => {
    const op = buildOperation(base, [{ from, to, ...part }]);
    t.equal(ctl(['put', `/themis/${mesh.pki.cluster}/rebalance/${op.id}`, JSON.stringify(await signOperation(op, chain, key))]).status, 0);
    let status: Record<string, unknown> = {};
    for (let i = 0; i < 300 && status.phase !== 'done' && status.phase !== 'cleaned'; i++) {
      await sleep(100);
      status = await rebalanceStatus(etcd, mesh.pki.cluster, op.id, from);
    }
    t.match(status, { phase: /^(done|cleaned)$/, epoch: op.next.epoch }, `${from} → ${to} cut over by itself`);
    return { op, status };
  };
  const there = await run(mesh.topology, 'shard-001', 'shard-002');
  // At once back: shard-001's cleanup of these tokens (5 s after the first cutover) must not delete what the move back copies.
  const back = o.back ? await run(there.op.next, 'shard-002', 'shard-001') : undefined;
  if (o.back) await sleep(6000); // past the first move's cleanup
  await sleep(1000);
  stop();
  const stats = await loop;
  t.comment(`moves under load: ${stats.acknowledged} writes acknowledged, ${stats.failed} failed ${JSON.stringify(stats.failures)}; writes held ${String(there.status.pause_ms)}${back ? ` and ${String(back.status.pause_ms)}` : ''} ms at the cutover${back ? 's' : ''}; slowest write ${slowest.toFixed(0)} ms during the moves (${before.toFixed(0)} ms before them)`);
  t.equal(stats.failed, 0, 'no write failed: clients saw a pause, never an error');
  const read = async (key: string) => {
    const r = await call(mesh.nodes[2]!.appUrl, 'GET', `/entities/${encodeURIComponent(key)}`);
    return r.status === 200 ? (r.body.blob as string) : undefined;
  };
  const v = await history.check(read);
  t.same({ lost: v.lost, reverted: v.reverted, invented: v.invented }, { lost: [], reverted: [], invented: [] }, `every acknowledged write reads back (${v.checked} keys)`);
  const served = await call(mesh.nodes[2]!.appUrl, 'GET', `/entities/${encodeURIComponent(inside[0]!)}`);
  const owner = o.back ? 'shard-001' : 'shard-002';
  t.equal(served.headers.get('x-themis-shard'), owner, `the keys moved are served by ${owner}`);
  // The keys of the range that were written at all (a slow run may not reach every one).
  const written = new Set(history.ackedKeys());
  const moved = inside.filter((k) => written.has(k));
  const onOwner = await Promise.all(moved.map(async (k) => (await call(mesh.nodes[o.back ? 0 : 1]!.storage.url, 'GET', `/entities/${encodeURIComponent(k)}`)).status));
  t.ok(moved.length > 0 && onOwner.every((s) => s === 200), `and its storage node holds every one of them (${moved.length} written; the old cleanup deleted none)`);
}
