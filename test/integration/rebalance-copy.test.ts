// A range move, phase by phase, with `--cutover manual` so that each phase can be looked at.
// 3 shards without replicas (RF 1), certificates that also cover the previous shard's range.
// Before the switch: the target copies the moving tokens and follows the source's change feed
// while the source keeps serving them — every key of the moving tokens, written before the
// operation or after it, reaches the target with its latest value (the history checker); reads
// still go to the source; a count through scatter-gather counts each entity once although two
// nodes hold it; the progress is in rebalance-status/. After `themis-admin rebalance switch`:
// the next epoch is in force everywhere, the target serves the keys, nothing acknowledged is
// lost, and the source deletes its copy.
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { signOperation, buildOperation } from '../../src/rebalance/operation.js';
import { loadPrivateKey } from '../../src/pki/keys.js';
import { parsePem } from '../../src/pki/pem.js';
import { tokenOf, parseKey } from '../../src/urn/urn.js';
import type { Etcd3 } from 'etcd3';
import { etcdClient, startMesh, type Mesh } from '../support/mesh.js';
import { rebalanceStatus } from '../support/rebalance-status.js';
import type { Topology } from '../../src/topology/topology.js';
import { History } from '../support/history.js';
import { call } from '../support/storage-process.js';
import { runProgram } from '../support/cli.js';

let mesh: Mesh;
let etcd: Etcd3;
t.before(async () => {
  mesh = await startMesh({ shards: 3, withEtcd: true, etcdTopology: true, certifiedReplicas: 1 });
  etcd = etcdClient(mesh);
});
t.teardown(async () => {
  etcd?.close();
  await mesh?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const T = 'document.shop.moving';
/** What the first move leaves for the second: the topology in force, the rest of shard-001's range, the keys. */
let afterFirst: { topology: Topology; rest: { start: bigint; end: bigint }; keys: string[] } | undefined;

const statusOf = (opId: string, shard: string) => rebalanceStatus(etcd, mesh.pki.cluster, opId, shard);

t.test('the target copies the moving tokens and follows the source; nothing is visible twice', async (t) => {
  const r1 = mesh.topology.ranges.find((r) => r.owner === 'shard-001')!;
  const part = { start: r1.start, end: r1.start + (r1.end - r1.start) / 2n };
  const inPart = (key: string) => {
    const tok = tokenOf(parseKey(key));
    return tok >= part.start && tok <= part.end;
  };
  const history = new History();
  const all: string[] = [];
  const write = async (key: string) => {
    const { blob, n } = history.next(key);
    const r = await call(mesh.nodes[2]!.appUrl, 'PUT', `/entities/${encodeURIComponent(key)}`, { blob });
    if (r.status === 201) history.ack(key, n);
    return r.status;
  };
  // Keys everywhere; about a sixth of them in the moving part.
  const before: number[] = [];
  for (let i = 0; i < 300; i++) {
    const key = `${T}:${randomUUID()}`;
    all.push(key);
    before.push(await write(key));
  }
  t.ok(before.every((s) => s === 201), 'writes before the operation succeed');
  const moving = () => all.filter(inPart);
  t.ok(moving().length > 20, `${moving().length} keys in the moving tokens`);

  const admin = mesh.pki.operators.admin;
  const op = buildOperation(mesh.topology, [{ from: 'shard-001', to: 'shard-002', ...part }], { cutover: 'manual' });
  afterFirst = { topology: op.next, rest: { start: part.end + 1n, end: r1.end }, keys: all };
  const signed = await signOperation(op, parsePem(admin.chain, 'admin').map((b) => new Uint8Array(b.der)), (await loadPrivateKey(admin.key, undefined, 'admin')).privateKey);
  const a = mesh.pki.operators.admin;
  const ctl = (args: string[]) => mesh.etcd!.etcdctl({ cert: a.chainPath, key: a.keyPath, ca: mesh.pki.root.certPath }, args);
  t.equal(ctl(['put', `/themis/${mesh.pki.cluster}/rebalance/${op.id}`, JSON.stringify(signed)]).status, 0);

  // Writes go on after the operation: new keys and new values of old ones.
  const after: number[] = [];
  for (let i = 0; i < 100; i++) {
    const key = i % 2 ? `${T}:${randomUUID()}` : moving()[i % moving().length]!;
    if (!all.includes(key)) all.push(key);
    after.push(await write(key));
  }
  t.ok(after.every((s) => s === 201), 'writes after it go on (to the source)');

  const target = mesh.nodes[1]!.storage.url;
  const read = async (key: string) => {
    const r = await call(target, 'GET', `/entities/${encodeURIComponent(key)}`);
    return r.status === 200 ? (r.body.blob as string) : undefined;
  };
  let v = await history.check(read, moving());
  for (let i = 0; i < 200 && v.lost.length + v.reverted.length > 0; i++) {
    await sleep(50);
    v = await history.check(read, moving());
  }
  t.same({ lost: v.lost, reverted: v.reverted, invented: v.invented }, { lost: [], reverted: [], invented: [] }, `the target holds every moving key with its latest value (${v.checked} keys)`);
  const outside = await Promise.all(all.filter((k) => !inPart(k) && mesh.topology.ownerOfKey(k) === 'shard-001').map(read));
  t.ok(outside.every((b) => b === undefined), 'and nothing of shard-001\'s tokens outside the move');

  const got = await call(mesh.nodes[2]!.appUrl, 'GET', `/entities/${encodeURIComponent(moving()[0]!)}`);
  t.equal(got.headers.get('x-themis-shard'), 'shard-001', 'reads still go to the source');
  const count = await call(mesh.nodes[2]!.appUrl, 'POST', '/query', { table: T, return: 'count' });
  t.equal(count.body.count, all.length, 'a count sees each entity once: the target\'s copies are not counted');

  let status: Record<string, unknown> = {};
  for (let i = 0; i < 60 && status.phase !== 'catching-up'; i++) {
    await sleep(100);
    status = await statusOf(op.id, 'shard-002');
  }
  t.match(status, { phase: 'catching-up', sources: { 'shard-001': { state: 'following', lag_changes: Number } } }, 'its progress is in rebalance-status');
  t.ok(((status.sources as Record<string, { keys_copied: number }>)['shard-001']!.keys_copied) >= 1, 'with the keys its copy found or copied');
  const metrics = await (await fetch(`${mesh.nodes[1]!.adminUrl}/metrics`)).text();
  const copiedMetric = new RegExp(`themis_rebalance_copied_keys\\{op="${op.id}",source="shard-001"\\} (\\d+)`).exec(metrics);
  t.ok(copiedMetric && Number(copiedMetric[1]) >= 1, `the target's metrics show the copy: ${copiedMetric?.[0]}`);
  t.match(metrics, new RegExp(`themis_rebalance_lag_changes\\{op="${op.id}",source="shard-001"\\} \\d+`), 'and the lag');
  t.match(metrics, /themis_rebalance_operations_in_progress 1/, 'one operation in progress');

  // The switch: the source cuts over (hold, catch-up, verify, publish the pre-signed epoch) and cleans up.
  const admin2 = mesh.pki.operators.admin;
  const sw = runProgram('themis-admin', ['rebalance', 'switch', '--op', op.id, '--cluster', mesh.pki.cluster, '--etcd', mesh.etcd!.endpoint, '--ca', mesh.pki.root.certPath, '--operator-cert', admin2.chainPath, '--operator-key', admin2.keyPath]);
  t.equal(sw.status, 0, sw.status === 0 ? 'themis-admin rebalance switch' : sw.stderr);
  let source: Record<string, unknown> = {};
  for (let i = 0; i < 300 && source.phase !== 'cleaned'; i++) {
    await sleep(100);
    source = await statusOf(op.id, 'shard-001');
  }
  t.match(source, { phase: 'cleaned', epoch: op.next.epoch, keys_verified: Number, pause_ms: Number, keys_deleted: Number }, 'the source cut over, verified and cleaned up');
  const sourceMetrics = await (await fetch(`${mesh.nodes[0]!.adminUrl}/metrics`)).text();
  t.match(sourceMetrics, /themis_rebalance_cutover_hold_seconds_count 1\b/, 'the source\'s metrics count one cutover hold');
  t.match(sourceMetrics, /themis_rebalance_outcomes_total\{outcome="done"\} 1\b/, 'and one operation done');
  t.comment(`cutover: writes held ${String(source.pause_ms)} ms; ${String(source.keys_verified)} keys verified equal on both nodes; ${String(source.keys_deleted)} deleted from the source`);
  const epochs = await Promise.all(mesh.nodes.map(async (n) => (await call(n.appUrl, 'GET', '/health')).body.topology_epoch as number));
  t.same(epochs, [op.next.epoch, op.next.epoch, op.next.epoch], 'every sidecar routes by the next epoch');
  const moved = await call(mesh.nodes[2]!.appUrl, 'GET', `/entities/${encodeURIComponent(moving()[0]!)}`);
  t.equal(moved.headers.get('x-themis-shard'), 'shard-002', 'the target serves the moved keys');
  const afterSwitch: number[] = [];
  for (const key of moving().slice(0, 10)) afterSwitch.push(await write(key));
  t.ok(afterSwitch.every((s) => s === 201), 'writes to them go to the target');
  const readVia = async (key: string) => {
    const r = await call(mesh.nodes[0]!.appUrl, 'GET', `/entities/${encodeURIComponent(key)}`);
    return r.status === 200 ? (r.body.blob as string) : undefined;
  };
  const end = await history.check(readVia, all);
  t.same({ lost: end.lost, reverted: end.reverted, invented: end.invented }, { lost: [], reverted: [], invented: [] }, `every acknowledged write is there, read through the mesh (${end.checked} keys)`);
  const onSource = await Promise.all(moving().map(async (k) => (await call(mesh.nodes[0]!.storage.url, 'GET', `/entities/${encodeURIComponent(k)}`)).status));
  t.ok(onSource.every((s) => s === 404), 'the source no longer holds the moved keys');
  const finalCount = await call(mesh.nodes[2]!.appUrl, 'POST', '/query', { table: T, return: 'count' });
  t.equal(finalCount.body.count, all.length, 'a count still sees each entity once');
});

t.test('a copy that differs from the source is caught at cutover: nothing is cut over', async (t) => {
  const { topology, rest, keys } = afterFirst!;
  const inRest = keys.filter((k) => {
    const tok = tokenOf(parseKey(k));
    return tok >= rest.start && tok <= rest.end;
  });
  t.ok(inRest.length > 5, `${inRest.length} keys in the second move`);
  const admin = mesh.pki.operators.admin;
  const op = buildOperation(topology, [{ from: 'shard-001', to: 'shard-002', ...rest }], { cutover: 'manual' });
  const signed = await signOperation(op, parsePem(admin.chain, 'admin').map((b) => new Uint8Array(b.der)), (await loadPrivateKey(admin.key, undefined, 'admin')).privateKey);
  const ctl = (args: string[]) => mesh.etcd!.etcdctl({ cert: admin.chainPath, key: admin.keyPath, ca: mesh.pki.root.certPath }, args);
  t.equal(ctl(['put', `/themis/${mesh.pki.cluster}/rebalance/${op.id}`, JSON.stringify(signed)]).status, 0);
  for (let i = 0; i < 100 && (await statusOf(op.id, 'shard-002')).phase !== 'catching-up'; i++) await sleep(100);
  // Behind the mesh's back: the target's copy of one key is changed.
  t.equal((await call(mesh.nodes[1]!.storage.url, 'PUT', `/entities/${encodeURIComponent(inRest[0]!)}`, { blob: '{"corrupted":true}' })).status, 201);
  t.equal(ctl(['put', `/themis/${mesh.pki.cluster}/rebalance-switch/${op.id}`, '{}']).status, 0);
  let s: Record<string, unknown> = {};
  for (let i = 0; i < 100 && s.phase !== 'failed'; i++) {
    await sleep(100);
    s = await statusOf(op.id, 'shard-001');
  }
  t.match(s, { phase: 'failed', reason: 'verify_mismatch', message: /1 of \d+ keys differ/ }, 'the source refused to cut over');
  const epochs = await Promise.all(mesh.nodes.map(async (n) => (await call(n.appUrl, 'GET', '/health')).body.topology_epoch as number));
  t.same(epochs, [topology.epoch, topology.epoch, topology.epoch], 'no epoch changed');
  const r = await call(mesh.nodes[2]!.appUrl, 'GET', `/entities/${encodeURIComponent(inRest[0]!)}`);
  t.equal(r.headers.get('x-themis-shard'), 'shard-001', 'the source still serves the key');
  t.not(r.body.blob, '{"corrupted":true}', 'with its own value');
});
