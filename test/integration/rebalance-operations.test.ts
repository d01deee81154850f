// Operator-signed rebalance operations, verified by the shards. A valid one written by
// `themis-admin rebalance` is accepted and audited (REBALANCE_INITIATED) by the two shards it
// involves. Forged, stale or wrongly-authorised ones written straight into etcd with etcdctl —
// as an attacker with etcd access would — are each refused with their reason, audited
// (REBALANCE_REJECTED) and change nothing: the topology epoch stays.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { tokenHex } from '../../src/hash.js';
import { loadPrivateKey } from '../../src/pki/keys.js';
import { signDetached } from '../../src/pki/cms.js';
import { parsePem } from '../../src/pki/pem.js';
import { buildOperation, operationDocument, signOperation, type RebalanceOperation } from '../../src/rebalance/operation.js';
import { startMesh, type Mesh } from '../support/mesh.js';
import { Topology } from '../../src/topology/topology.js';
import { serializeTopology } from '../../src/topology/document.js';
import { runProgram } from '../support/cli.js';
import { call } from '../support/storage-process.js';
import type { LeafMaterial } from '../support/pki-fixture.js';

let mesh: Mesh;
t.before(async () => {
  // RF 2 with etcd: each shard's certificate also covers the range before its own (it replicates it).
  mesh = await startMesh({ shards: 3, withEtcd: true, etcdTopology: true, replicas: 1 });
});
t.teardown(() => mesh?.close());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const r1 = () => mesh.topology.ranges.find((r) => r.owner === 'shard-001')!;
/** The first quarter of shard-001's range. */
const part = () => ({ start: r1().start, end: r1().start + (r1().end - r1().start) / 4n });

function ctl(args: string[]) {
  const a = mesh.pki.operators.admin;
  const r = mesh.etcd!.etcdctl({ cert: a.chainPath, key: a.keyPath, ca: mesh.pki.root.certPath }, args);
  if (r.status !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const opKey = (id: string) => `/themis/${mesh.pki.cluster}/rebalance/${id}`;

const identity = async (who: LeafMaterial) => ({ chain: parsePem(who.chain, who.name).map((b) => new Uint8Array(b.der)), key: (await loadPrivateKey(who.key, undefined, who.name)).privateKey });

async function signAs(op: RebalanceOperation, who: LeafMaterial) {
  const i = await identity(who);
  return signOperation(op, i.chain, i.key);
}

/** The operation signed by `opSigner`, its next topology by `nextSigner`. */
async function signSplit(op: RebalanceOperation, opSigner: LeafMaterial, nextSigner: LeafMaterial) {
  const [o, n] = [await identity(opSigner), await identity(nextSigner)];
  const nextCms = Buffer.from(await signDetached(Buffer.from(op.nextDocument, 'utf8'), n.chain, n.key)).toString('base64');
  const document = operationDocument({ ...op, nextCms });
  return { document, cms: Buffer.from(await signDetached(Buffer.from(document, 'utf8'), o.chain, o.key)).toString('base64') };
}

const audit = (i: number) => readFileSync(mesh.nodes[i]!.auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

async function auditedBy(i: number, event: string, opId: string): Promise<Record<string, unknown>> {
  for (let k = 0; k < 200; k++) {
    const e = audit(i).find((x) => x.event === event && x.op_id === opId);
    if (e) return e;
    await sleep(50);
  }
  throw new Error(`${mesh.nodes[i]!.shard.id} did not audit ${event} for ${opId}`);
}

async function epochs(): Promise<number[]> {
  return Promise.all(mesh.nodes.map(async (n) => (await call(n.appUrl, 'GET', '/health')).body.topology_epoch as number));
}

t.test('a signed operation from `themis-admin rebalance` is verified and audited by both shards it involves', async (t) => {
  const crls = mesh.pki.crls().map((c, i) => {
    const f = join(mesh.dir, `rebalance-crl-${i}.pem`);
    writeFileSync(f, c);
    return f;
  });
  const admin = mesh.pki.operators.admin;
  const p = part();
  // --cutover manual: this test is about verification; nothing may move while it runs.
  const r = runProgram('themis-admin', ['rebalance', '--cutover', 'manual', '--from', 'shard-001', '--to', 'shard-002', '--token-range', `${tokenHex(p.start)}:${tokenHex(p.end)}`, '--cluster', mesh.pki.cluster,
    '--etcd', mesh.etcd!.endpoint, '--ca', mesh.pki.root.certPath, '--crls', crls.join(','), '--operator-cert', admin.chainPath, '--operator-key', admin.keyPath]);
  t.equal(r.status, 0, r.status === 0 ? 'themis-admin rebalance writes the operation' : r.stderr);
  const id = /operation ([0-9a-f-]{36})/.exec(r.stdout)?.[1];
  t.ok(id, r.stdout);
  for (const i of [0, 1]) {
    const e = await auditedBy(i, 'REBALANCE_INITIATED', id!);
    t.match(e, { base_epoch: mesh.topology.epoch, next_epoch: mesh.topology.epoch + 1, signer: { subject: /admin/, verified: true }, moves: [{ from: 'shard-001', to: 'shard-002' }] }, `${mesh.nodes[i]!.shard.id} accepted it`);
  }
  t.notOk(audit(2).some((e) => e.op_id === id), 'shard-003, not involved, records nothing');
  // openssl checks both signatures: the operation's and its next topology's.
  const stored = JSON.parse(ctl(['get', opKey(id!), '--print-value-only'])) as { document: string; cms: string };
  const doc = JSON.parse(stored.document) as { next_topology: string; next_topology_cms: string };
  for (const [name, content, cms] of [['operation', stored.document, stored.cms], ['next topology', doc.next_topology, doc.next_topology_cms]] as const) {
    writeFileSync(join(mesh.dir, 'op-content'), content);
    writeFileSync(join(mesh.dir, 'op.p7s'), Buffer.from(cms, 'base64'));
    const v = spawnSync('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', join(mesh.dir, 'op.p7s'), '-content', join(mesh.dir, 'op-content'), '-CAfile', mesh.pki.root.certPath, '-purpose', 'any', '-out', '/dev/null'], { encoding: 'utf8' });
    t.equal(v.status, 0, `openssl cms -verify accepts the ${name}'s signature${v.status ? `: ${v.stderr}` : ''}`);
  }
  const status = runProgram('themis-admin', ['rebalance', 'status', '--op', id!, '--cluster', mesh.pki.cluster, '--etcd', mesh.etcd!.endpoint, '--ca', mesh.pki.root.certPath, '--cert', mesh.pki.operators.readonly.chainPath, '--key', mesh.pki.operators.readonly.keyPath, '--json']);
  t.equal(status.status, 0, status.status === 0 ? 'rebalance status answers' : status.stderr);
  const phases = Object.fromEntries((JSON.parse(status.stdout) as { shard: string; phase: string }[]).map((s) => [s.shard, s.phase]));
  t.equal(phases['shard-001'], 'accepted', 'the source accepted it (a manual cutover waits for `rebalance switch`)');
  t.match(phases['shard-002'], /^(accepted|copying|catching-up)$/, 'the target accepted it and copies');
  t.same(Object.keys(phases).sort(), ['shard-001', 'shard-002']);
});

t.test('forged, stale or wrongly-authorised operations are refused, audited and change nothing', async (t) => {
  const before = await epochs();
  const base = mesh.topology;
  const p = part();
  const valid = () => buildOperation(base, [{ from: 'shard-001', to: 'shard-002', ...p }]);
  const cases: { name: string; reason: string; make: () => Promise<{ id: string; value: unknown }> }[] = [
    { name: 'unsigned', reason: 'malformed', make: async () => { const op = valid(); return { id: op.id, value: { document: operationDocument(op) } }; } },
    { name: 'with a CMS that is not one', reason: 'malformed', make: async () => { const op = valid(); return { id: op.id, value: { document: operationDocument(op), cms: Buffer.from('not a signature').toString('base64') } }; } },
    {
      name: 'tampered after signing (the target changed)', reason: 'bad_signature',
      make: async () => {
        const op = valid();
        const s = await signAs(op, mesh.pki.operators.admin);
        return { id: op.id, value: { ...s, document: s.document.replace('"to": "shard-002"', '"to": "shard-003"') } };
      },
    },
    {
      name: 'its next topology signed by someone else than the operation', reason: 'bad_signature',
      make: async () => { const op = valid(); return { id: op.id, value: await signSplit(op, mesh.pki.operators.admin, mesh.pki.shards[0]!) }; },
    },
    { name: 'signed by a shard', reason: 'not_operator', make: async () => { const op = valid(); return { id: op.id, value: await signAs(op, mesh.pki.shards[0]!) }; } },
    { name: 'signed by a read-only operator', reason: 'missing_capability', make: async () => { const op = valid(); return { id: op.id, value: await signAs(op, mesh.pki.operators.readonly) }; } },
    {
      name: 'built on an old epoch', reason: 'stale_epoch',
      make: async () => { const op = buildOperation(base.withEpoch(base.epoch - 1), [{ from: 'shard-001', to: 'shard-002', ...p }]); return { id: op.id, value: await signAs(op, mesh.pki.operators.admin) }; },
    },
    {
      // A copy the cutover would not have brought: shard-003 listed as a replica of a range it
      // holds nothing of, with no replica move from its owner.
      name: 'its next topology gives a shard a copy that no move brings', reason: 'inconsistent',
      make: async () => {
        const op = valid();
        const i = op.next.ranges.findIndex((r) => r.owner !== 'shard-003' && !r.replicas.includes('shard-003'));
        const ranges = op.next.ranges.map((r, j) => (j === i ? { ...r, replicas: [...r.replicas, 'shard-003'] } : r));
        const next = new Topology({ cluster: op.next.cluster, epoch: op.next.epoch, vnodes: op.next.vnodes, shards: op.next.shards, ranges });
        return { id: op.id, value: await signAs({ ...op, next, nextDocument: serializeTopology(next) }, mesh.pki.operators.admin) };
      },
    },
    {
      name: 'moving tokens to a shard whose certificate does not cover them', reason: 'range_not_certified',
      make: async () => { const op = buildOperation(base, [{ from: 'shard-001', to: 'shard-003', ...p }]); return { id: op.id, value: await signAs(op, mesh.pki.operators.admin) }; },
    },
  ];
  for (const c of cases) {
    const { id, value } = await c.make();
    ctl(['put', opKey(id), JSON.stringify(value)]);
    const e = await auditedBy(0, 'REBALANCE_REJECTED', id);
    t.match(String(e.reason), new RegExp(`^${c.reason}:`), `${c.name}: refused (${String(e.reason)})`);
    const s = JSON.parse(ctl(['get', `/themis/${mesh.pki.cluster}/rebalance-status/${id}/shard-001`, '--print-value-only'])) as { phase: string; reason: string };
    t.same([s.phase, s.reason], ['refused', c.reason], `${c.name}: its status says so`);
    t.notOk(audit(0).some((x) => x.event === 'REBALANCE_INITIATED' && x.op_id === id), `${c.name}: never initiated`);
  }
  t.same(await epochs(), before, 'no shard changed its topology');
});
