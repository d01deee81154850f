// Rebalance operations meet faults and second thoughts (3 shards, RF 1, certificates that also
// cover the previous shard's range):
// - `rebalance abort`: a forged abort written with etcdctl is refused and audited, and changes
//   nothing; the signed one stops the operation before cutover and the target deletes its
//   copies; an operation already cut over cannot be aborted;
// - kill -9 of the target's sidecar, the source's sidecar and the operator's tool (`--wait`)
//   while the target copies and catches up, and of the source's sidecar at the cutover: each time
//   the operation resumes and cuts over, and every acknowledged write reads back afterwards.
import t, { type Test } from 'tap';
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tokenHex } from '../../src/hash.js';
import { parseKey, tokenOf } from '../../src/urn/urn.js';
import { startMesh, type Mesh } from '../support/mesh.js';
import { History } from '../support/history.js';
import { call } from '../support/storage-process.js';
import { runProgramAsync } from '../support/cli.js';
import type { ChildProcess } from 'node:child_process';

let mesh: Mesh;
t.before(async () => {
  mesh = await startMesh({ shards: 3, withEtcd: true, etcdTopology: true, certifiedReplicas: 1 });
});
t.teardown(() => mesh?.close());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const T = 'document.shop.faults';
const history = new History();
const keys: string[] = [];

function ctl(args: string[]): string {
  const a = mesh.pki.operators.admin;
  const r = mesh.etcd!.etcdctl({ cert: a.chainPath, key: a.keyPath, ca: mesh.pki.root.certPath }, args);
  if (r.status !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function sessionArgs(): string[] {
  const crls = mesh.pki.crls().map((c, i) => {
    const f = join(mesh.dir, `faults-crl-${i}.pem`);
    writeFileSync(f, c);
    return f;
  });
  const admin = mesh.pki.operators.admin;
  return ['--cluster', mesh.pki.cluster, '--etcd', mesh.etcd!.endpoint, '--ca', mesh.pki.root.certPath, '--crls', crls.join(','), '--operator-cert', admin.chainPath, '--operator-key', admin.keyPath];
}

async function statusOf(opId: string, shard: string): Promise<Record<string, unknown>> {
  const out = ctl(['get', `/themis/${mesh.pki.cluster}/rebalance-status/${opId}/${shard}`, '--print-value-only']).trim();
  return out ? (JSON.parse(out) as Record<string, unknown>) : {};
}

async function until(what: string, ok: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await ok()) return;
    await sleep(100);
  }
  throw new Error(`${what}: not within ${ms / 1000} s`);
}

const audit = (i: number) => readFileSync(mesh.nodes[i]!.auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
const epochs = () => Promise.all(mesh.nodes.map(async (n) => (await call(n.appUrl, 'GET', '/health')).body.topology_epoch as number));
const currentEpoch = async () => Math.max(...(await epochs()));

/** Writes a new value of `key` through shard-003's app port (it owns neither side of the moves here). */
async function write(key: string): Promise<number> {
  const { blob, n } = history.next(key);
  const r = await call(mesh.nodes[2]!.appUrl, 'PUT', `/entities/${encodeURIComponent(key)}`, { blob }, 15_000).catch(() => ({ status: 0 }));
  if (r.status === 201) history.ack(key, n);
  else history.fail();
  return r.status;
}

/** A slice of shard-001's tokens (today's owner of them must be shard-001 or shard-002). */
function slice(k: number): { start: bigint; end: bigint } {
  const r1 = mesh.topology.ranges.find((r) => r.owner === 'shard-001')!;
  const eighth = (r1.end - r1.start) / 8n;
  return { start: r1.start + eighth * BigInt(k), end: r1.start + eighth * BigInt(k + 1) - 1n };
}
const inSlice = (s: { start: bigint; end: bigint }) => keys.filter((k) => {
  const tok = tokenOf(parseKey(k));
  return tok >= s.start && tok <= s.end;
});

async function rebalance(from: string, to: string, s: { start: bigint; end: bigint }, extra: string[] = [], child?: (c: ChildProcess) => void) {
  return runProgramAsync('themis-admin', ['rebalance', '--from', from, '--to', to, '--token-range', `${tokenHex(s.start)}:${tokenHex(s.end)}`, ...extra, ...sessionArgs()], child ? { child } : {});
}
const opIdOf = (out: string) => /operation ([0-9a-f-]{36})/.exec(out)?.[1] ?? '';

async function checkHistory(t: Test, what: string): Promise<void> {
  const v = await history.check(async (key) => {
    const r = await call(mesh.nodes[0]!.appUrl, 'GET', `/entities/${encodeURIComponent(key)}`);
    return r.status === 200 ? (r.body.blob as string) : undefined;
  }, keys);
  t.same({ lost: v.lost, reverted: v.reverted, invented: v.invented }, { lost: [], reverted: [], invented: [] }, `${what}: every acknowledged write reads back (${v.checked} keys)`);
}

t.before(async () => {
  for (let i = 0; i < 800; i++) {
    const key = `${T}:${randomUUID()}`;
    keys.push(key);
    await write(key);
  }
});

t.test('rebalance abort: a forged abort is refused; the signed one stops the operation, and the target deletes its copies', async (t) => {
  const s = slice(0);
  const base = await currentEpoch();
  const r = await rebalance('shard-001', 'shard-002', s, ['--cutover', 'manual']);
  t.equal(r.status, 0, r.status === 0 ? 'themis-admin rebalance --cutover manual' : r.stderr);
  const id = opIdOf(r.stdout);
  await until('the target catches up', async () => (await statusOf(id, 'shard-002')).phase === 'catching-up');
  const copied = await Promise.all(inSlice(s).map(async (k) => (await call(mesh.nodes[1]!.storage.url, 'GET', `/entities/${encodeURIComponent(k)}`)).status));
  t.ok(copied.length > 10 && copied.every((c) => c === 200), `the target holds copies of the ${copied.length} keys`);

  // As an attacker with etcd access: an unsigned abort.
  ctl(['put', `/themis/${mesh.pki.cluster}/rebalance-abort/${id}`, JSON.stringify({ document: JSON.stringify({ op_id: id, cluster: mesh.pki.cluster, abort: true }), cms: 'AAAA' })]);
  await until('both shards audit the forged abort', async () => [0, 1].every((i) => audit(i).some((e) => e.event === 'REBALANCE_ABORT_REJECTED' && e.op_id === id)));
  await sleep(500);
  t.equal((await statusOf(id, 'shard-002')).phase, 'catching-up', 'the forged abort changes nothing: the target goes on');

  const abort = await runProgramAsync('themis-admin', ['rebalance', 'abort', '--op', id, ...sessionArgs()]);
  t.equal(abort.status, 0, abort.status === 0 ? 'themis-admin rebalance abort replaces the forged abort with a signed one' : abort.stderr);
  await until('the target deletes its copies', async () => (await statusOf(id, 'shard-002')).phase === 'aborted');
  t.match(await statusOf(id, 'shard-002'), { phase: 'aborted', keys_deleted: copied.length }, 'the target says aborted, and how many copies it deleted');
  t.equal((await statusOf(id, 'shard-001')).phase, 'aborted', 'so does the source');
  for (const i of [0, 1]) t.match(audit(i).find((e) => e.event === 'REBALANCE_ABORTED' && e.op_id === id), { signer: { subject: /admin/, verified: true } }, `${mesh.nodes[i]!.shard.id} audits the abort and who signed it`);
  const left = await Promise.all(inSlice(s).map(async (k) => (await call(mesh.nodes[1]!.storage.url, 'GET', `/entities/${encodeURIComponent(k)}`)).status));
  t.ok(left.every((c) => c === 404), 'none of the copies is left on the target');
  ctl(['put', `/themis/${mesh.pki.cluster}/rebalance-switch/${id}`, '{}']);
  await sleep(1500);
  t.same(await epochs(), [base, base, base], 'a switch after the abort cuts nothing over');
  const again = await runProgramAsync('themis-admin', ['rebalance', 'abort', '--op', id, ...sessionArgs()]);
  t.not(again.status, 0, 'a second abort is refused');
  t.match(again.stderr, /being aborted already/);
  await checkHistory(t, 'after the abort');
});

t.test('an operation that was cut over cannot be aborted', async (t) => {
  const r = await rebalance('shard-001', 'shard-002', slice(1), ['--wait']);
  t.equal(r.status, 0, r.status === 0 ? 'the operation cut over (--wait)' : `${r.stdout}\n${r.stderr}`);
  const abort = await runProgramAsync('themis-admin', ['rebalance', 'abort', '--op', opIdOf(r.stdout), ...sessionArgs()]);
  t.not(abort.status, 0, 'abort is refused');
  t.match(abort.stderr, /cannot be aborted/, 'because it was cut over');
});

/** A manual operation; `fault` runs once the target catches up; then writes, the switch, and the checks. */
async function throughFault(t: Test, k: number, fault: (opId: string) => Promise<void>, o: { atCutover?: (opId: string) => Promise<void>; tool?: boolean } = {}) {
  const s = slice(k);
  const opIds = () => ctl(['get', '--prefix', `/themis/${mesh.pki.cluster}/rebalance/`, '--keys-only']).split('\n').filter(Boolean).map((l) => l.split('/').pop()!);
  const before = new Set(opIds());
  let tool: ChildProcess | undefined;
  const started = rebalance('shard-001', 'shard-002', s, ['--cutover', 'manual', ...(o.tool ? ['--wait'] : [])], (c) => (tool = c));
  let id = '';
  if (o.tool) {
    // The tool waits (--wait); its operation id is in etcd.
    await until('the operation is written', async () => {
      id = opIds().find((x) => !before.has(x)) ?? '';
      return id !== '';
    });
  } else {
    const r = await started;
    t.equal(r.status, 0, r.status === 0 ? 'themis-admin rebalance --cutover manual' : r.stderr);
    id = opIdOf(r.stdout);
  }
  await until('the target catches up', async () => (await statusOf(id, 'shard-002')).phase === 'catching-up');
  for (const key of inSlice(s).slice(0, 20)) await write(key);
  await fault(id);
  if (o.tool) {
    tool!.kill('SIGKILL');
    await started;
  }
  // Writes go on after the fault: new values of keys in the moving slice and elsewhere.
  for (const key of [...inSlice(s).slice(0, 20), ...keys.slice(0, 20)]) await write(key);
  await until('the target catches up again', async () => (await statusOf(id, 'shard-002')).phase === 'catching-up');
  ctl(['put', `/themis/${mesh.pki.cluster}/rebalance-switch/${id}`, '{}']);
  await o.atCutover?.(id);
  await until('the source cuts over and cleans up', async () => (await statusOf(id, 'shard-001')).phase === 'cleaned', 40_000);
  const next = await currentEpoch();
  await until('every sidecar routes by the next epoch', async () => (await epochs()).every((e) => e === next));
  const served = await call(mesh.nodes[2]!.appUrl, 'GET', `/entities/${encodeURIComponent(inSlice(s)[0]!)}`);
  t.equal(served.headers.get('x-themis-shard'), 'shard-002', 'the target serves the moved keys');
  const onSource = await Promise.all(inSlice(s).map(async (key) => (await call(mesh.nodes[0]!.storage.url, 'GET', `/entities/${encodeURIComponent(key)}`)).status));
  t.ok(onSource.every((c) => c === 404), 'the source deleted its copies');
  await checkHistory(t, 'after the operation');
}

t.test('kill -9 of the target\'s sidecar while it catches up: it resumes from its checkpoint', async (t) => {
  await throughFault(t, 2, async () => {
    await mesh.stopSidecar(1, 'SIGKILL');
    await mesh.startSidecar(1);
  });
});

t.test('kill -9 of the source\'s sidecar while the target catches up: the operation resumes', async (t) => {
  await throughFault(t, 3, async () => {
    await mesh.stopSidecar(0, 'SIGKILL');
    await mesh.startSidecar(0);
  });
});

t.test('kill -9 of the operator\'s tool (--wait) while the target copies: nothing depends on it', async (t) => {
  await throughFault(t, 4, async () => undefined, { tool: true });
});

t.test('kill -9 of the source\'s sidecar at the cutover: it cuts over or resumes, and cleans up', async (t) => {
  await throughFault(t, 5, async () => undefined, {
    atCutover: async () => {
      await sleep(150);
      await mesh.stopSidecar(0, 'SIGKILL');
      await mesh.startSidecar(0);
    },
  });
});

t.test('kill -9 of the source\'s sidecar after the cutover, before its cleanup: the restarted one cleans up', async (t) => {
  await throughFault(t, 6, async () => undefined, {
    atCutover: async (id) => {
      await until('the source cut over', async () => (await statusOf(id, 'shard-001')).phase === 'done');
      await mesh.stopSidecar(0, 'SIGKILL');
      t.equal((await statusOf(id, 'shard-001')).phase, 'done', 'killed between the cutover and the cleanup');
      await mesh.startSidecar(0);
    },
  });
});
