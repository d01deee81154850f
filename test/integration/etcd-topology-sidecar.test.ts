import t from 'tap';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { publishAsAdmin, startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { call } from '../support/storage-process.js';
import { Topology } from '../../src/topology/topology.js';
import { signTopology } from '../../src/topology/signed.js';
import { loadPrivateKey } from '../../src/pki/keys.js';
import { parsePem } from '../../src/pki/pem.js';

let mesh: Mesh;
t.before(async () => {
  mesh = await startMesh({ shards: 3, withEtcd: true, etcdTopology: true });
});
t.teardown(() => mesh?.close());

const epochs = () => Promise.all(mesh.nodes.map(async (n) => (n.sidecar ? (await call(n.appUrl, 'GET', '/health')).body.topology_epoch : null)));
const audit = (i: number) => readFileSync(mesh.nodes[i]!.auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const at = (epoch: number) => mesh.topology.withEpoch(epoch);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ctl = (args: string[]) => {
  const s = mesh.pki.shards[0]!; // an attacker with etcd access (any certificate etcd accepts)
  return mesh.etcd!.etcdctl({ cert: s.chainPath, key: s.keyPath, ca: mesh.pki.root.certPath }, args);
};
const KEY = () => `/themis/${mesh.pki.cluster}/topology`;

t.test('sidecars route by the signed topology from etcd, and a newer one reaches all of them', async (t) => {
  t.same(await epochs(), [1, 1, 1]);
  const [a, b, c] = mesh.nodes;
  const key = `/entities/document.app.e:${uuidOwnedBy(b!.shard.tokenRange)}`;
  t.equal((await call(a!.appUrl, 'PUT', key, { blob: '{}' })).status, 201);
  t.equal((await call(c!.appUrl, 'GET', key)).headers.get('x-themis-shard'), b!.shard.id);
  const started = Date.now();
  await publishAsAdmin(mesh.pki, mesh.etcd!, at(2));
  let all = false;
  while (!all && Date.now() - started < 10_000) {
    all = (await epochs()).every((e) => e === 2);
    if (!all) await sleep(20);
  }
  t.ok(all, `epoch 2 on every sidecar after ${Date.now() - started} ms`);
  t.ok(audit(0).some((e) => e.event === 'TOPOLOGY_APPLIED' && e.epoch === 2));
});

t.test('forgeries written straight into etcd are refused, audited, and change nothing', async (t) => {
  const sign = async (topo: Topology, who: { chain: string; key: string }) =>
    JSON.stringify(await signTopology(topo, parsePem(who.chain, 'c').map((b) => new Uint8Array(b.der)), (await loadPrivateKey(who.key, undefined, 'k')).privateKey));
  const stored = JSON.parse(ctl(['get', KEY(), '--print-value-only']).stdout);
  const forgeries: [string, string, RegExp][] = [
    ['unsigned', JSON.stringify({ document: stored.document.replace('"epoch": 2', '"epoch": 3'), cms: '' }), /malformed|bad_signature/],
    ['tampered after signing', JSON.stringify({ ...stored, document: stored.document.replace('"epoch": 2', '"epoch": 4') }), /bad_signature/],
    ['signed by a shard', await sign(at(5), mesh.pki.shards[1]!), /not_operator/],
    ['signed by a read-only operator', await sign(at(6), mesh.pki.operators.readonly), /missing_capability/],
    ['older epoch, validly signed', await sign(at(1), mesh.pki.operators.admin), /not_newer/],
    ['another cluster\'s, validly signed', await sign(new Topology({ ...at(7), cluster: 'cluster-other' }), mesh.pki.operators.admin), /wrong_cluster/],
    ['not JSON', 'garbage', /malformed/],
  ];
  for (const [name, value, reason] of forgeries) {
    const before = audit(1).length;
    t.equal(ctl(['put', KEY(), value]).status, 0, `${name}: written into etcd`);
    let refused: { reason?: string } | undefined;
    for (let i = 0; i < 100 && !refused; i++) {
      await sleep(30);
      refused = audit(1).slice(before).find((e) => e.event === 'TOPOLOGY_REJECTED');
    }
    t.match(refused?.reason ?? '', reason, `${name}: refused (${refused?.reason?.slice(0, 60)})`);
  }
  t.same(await epochs(), [2, 2, 2], 'still routing by epoch 2');
  const metrics = await fetch(`${mesh.nodes[1]!.adminUrl}/metrics`).then((r) => r.text());
  t.match(metrics, /themis_topology_rejections_total ([7-9]|\d\d)/);
});

t.test('etcd stopped mid-traffic: requests continue, a restarted sidecar serves from its cache, changes resume when etcd returns', async (t) => {
  const [a, b, c] = mesh.nodes;
  // Steady traffic through every sidecar while etcd goes away and comes back.
  let stop = false;
  const results: { viaRestarted: boolean; status: number }[] = [];
  const traffic = (async () => {
    for (let i = 0; !stop; i++) {
      const [owner, entry] = [i % 3, (i + 1) % 3];
      const key = `/entities/document.app.outage:${uuidOwnedBy(mesh.nodes[owner]!.shard.tokenRange)}`;
      // Sidecar 1 is restarted below: a refused connection counts as 0.
      const status = await call(mesh.nodes[entry]!.appUrl, 'PUT', key, { blob: `{"i":${i}}` }).then((r) => r.status, () => 0);
      results.push({ viaRestarted: owner === 0 || entry === 0, status });
      if (status !== 201) await sleep(20);
    }
  })();
  await sleep(300);
  await mesh.stopEtcd();
  try {
    await sleep(1500);
    const key = `/entities/document.app.down:${uuidOwnedBy(b!.shard.tokenRange)}`;
    t.equal((await call(a!.appUrl, 'PUT', key, { blob: '{}' })).status, 201, 'traffic flows while etcd is down');
    await mesh.stopSidecar(0, 'SIGKILL');
    await mesh.startSidecar(0);
    t.equal((await call(mesh.nodes[0]!.appUrl, 'GET', '/health')).body.topology_epoch, 2, 'restarted from the cached topology');
    t.equal((await call(mesh.nodes[0]!.appUrl, 'GET', key)).status, 200, 'and serves');
    t.equal((await call(c!.appUrl, 'GET', key)).status, 200, 'the others still route by the cached epoch');
  } finally {
    await mesh.restartEtcd();
  }
  await publishAsAdmin(mesh.pki, mesh.etcd!, at(7));
  let all = false;
  const resumeStart = Date.now();
  for (let i = 0; i < 1200 && !all; i++) {
    all = (await epochs()).every((e) => e === 7);
    if (!all) await sleep(50);
  }
  stop = true;
  await traffic;
  t.ok(all, `epoch 7 applied everywhere ${Date.now() - resumeStart} ms after publishing (${(await epochs()).join(', ')})`);
  // Requests that do not touch the sidecar restarted on purpose never notice etcd's outage.
  const others = results.filter((r) => !r.viaRestarted);
  t.ok(others.length > 20, `${others.length} requests between sidecars 2 and 3 during the outage`);
  t.same(others.filter((r) => r.status !== 201), [], 'every one of them succeeded');
});

t.test('a sidecar starting without a cache refuses a replayed older topology: the epoch the others serve is its floor', async (t) => {
  // A compromised shard may write the topology key (cutovers publish there): it puts back an
  // older topology, validly signed by an operator. Sidecars with a topology refuse it as not
  // newer; one that starts without a cache takes the epoch the others report as its floor.
  const sign = async (topo: Topology, who: { chain: string; key: string }) =>
    JSON.stringify(await signTopology(topo, parsePem(who.chain, 'c').map((b) => new Uint8Array(b.der)), (await loadPrivateKey(who.key, undefined, 'k')).privateKey));
  const current = ctl(['get', KEY(), '--print-value-only']).stdout.trim();
  const epoch = (await epochs())[0] as number;
  const reported = (id: string) => {
    const v = ctl(['get', `/themis/${mesh.pki.cluster}/shards/${id}/replication`, '--print-value-only']).stdout.trim();
    return v ? (JSON.parse(v) as { topology_epoch?: number }).topology_epoch : undefined;
  };
  for (let i = 0; i < 100 && !(reported('shard-001') === epoch && reported('shard-003') === epoch); i++) await sleep(100);
  t.same([reported('shard-001'), reported('shard-003')], [epoch, epoch], `the other two shards report epoch ${epoch} with their status`);
  await mesh.stopSidecar(1);
  rmSync(join(mesh.dir, 'topology-cache-shard-002.json'));
  t.equal(ctl(['put', KEY(), await sign(at(epoch - 2), mesh.pki.operators.admin)]).status, 0, `an epoch-${epoch - 2} topology, validly signed, put back into etcd`);
  const refused = await mesh.startSidecar(1).then(() => 'started', (e: Error) => e.message);
  t.match(refused, /below_floor: epoch \d+ is older than epoch \d+, which other shards serve/, `the cache-less sidecar does not start on epoch ${epoch - 2}, and says why`);
  t.equal(ctl(['put', KEY(), current]).status, 0, 'the topology in force written back');
  await mesh.startSidecar(1);
  t.same(await epochs(), [epoch, epoch, epoch], 'it starts on the epoch the others serve');
});
