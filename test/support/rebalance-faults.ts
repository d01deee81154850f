// The shared harness of the rebalance fault tests (rebalance-abort.test.ts, rebalance-kill.test.ts):
// 3 shards, RF 1, certificates that also cover the previous shard's range; 800 keys written
// through shard-003 first, every write recorded for the history check.
import t, { type Test } from 'tap';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { tokenHex } from '../../src/hash.js';
import { parseKey, tokenOf } from '../../src/urn/urn.js';
import type { Etcd3 } from 'etcd3';
import { etcdKeys } from '../../src/control/etcd-keys.js';
import { etcdClient, operatorArgs, startMesh, type Mesh } from './mesh.js';
import { rebalanceStatus } from './rebalance-status.js';
import { History } from './history.js';
import { call } from './storage-process.js';
import { runProgramAsync } from './cli.js';

/** Starts the mesh and writes the keys (before the file's tests), stops it after them. */
export function setupFaults(): void {
  t.before(async () => {
    mesh = await startMesh({ shards: 3, withEtcd: true, etcdTopology: true, certifiedReplicas: 1 });
    etcd = etcdClient(mesh);
  });
  t.teardown(async () => {
    etcd?.close();
    await mesh?.close();
  });
  t.before(async () => {
    for (let i = 0; i < 800; i++) {
      const key = `${T}:${randomUUID()}`;
      keys.push(key);
      await write(key);
    }
  });
}
export let mesh: Mesh;
/** The admin operator's client, for the polling loops (ctl runs etcdctl, for one-off writes). */
let etcd: Etcd3;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const T = 'document.shop.faults';
const history = new History();
const keys: string[] = [];

export function ctl(args: string[]): string {
  const a = mesh.pki.operators.admin;
  const r = mesh.etcd!.etcdctl({ cert: a.chainPath, key: a.keyPath, ca: mesh.pki.root.certPath }, args);
  if (r.status !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

export function sessionArgs(): string[] {
  return operatorArgs(mesh);
}

export function statusOf(opId: string, shard: string): Promise<Record<string, unknown>> {
  return rebalanceStatus(etcd, mesh.pki.cluster, opId, shard);
}

export async function until(what: string, ok: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await ok()) return;
    await sleep(100);
  }
  throw new Error(`${what}: not within ${ms / 1000} s`);
}

export const audit = (i: number) => readFileSync(mesh.nodes[i]!.auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
export const epochs = () => Promise.all(mesh.nodes.map(async (n) => (await call(n.appUrl, 'GET', '/health')).body.topology_epoch as number));
export const currentEpoch = async () => Math.max(...(await epochs()));

/** Writes a new value of `key` through shard-003's app port (it owns neither side of the moves here). */
export async function write(key: string): Promise<number> {
  const { blob, n } = history.next(key);
  const r = await call(mesh.nodes[2]!.appUrl, 'PUT', `/entities/${encodeURIComponent(key)}`, { blob }, 15_000).catch(() => ({ status: 0 }));
  if (r.status === 201) history.ack(key, n);
  else history.fail();
  return r.status;
}

/** A slice of shard-001's tokens (today's owner of them must be shard-001 or shard-002). */
export function slice(k: number): { start: bigint; end: bigint } {
  const r1 = mesh.topology.ranges.find((r) => r.owner === 'shard-001')!;
  const eighth = (r1.end - r1.start) / 8n;
  return { start: r1.start + eighth * BigInt(k), end: r1.start + eighth * BigInt(k + 1) - 1n };
}
export const inSlice = (s: { start: bigint; end: bigint }) => keys.filter((k) => {
  const tok = tokenOf(parseKey(k));
  return tok >= s.start && tok <= s.end;
});

export async function rebalance(from: string, to: string, s: { start: bigint; end: bigint }, extra: string[] = [], child?: (c: ChildProcess) => void) {
  return runProgramAsync('themis-admin', ['rebalance', '--from', from, '--to', to, '--token-range', `${tokenHex(s.start)}:${tokenHex(s.end)}`, ...extra, ...sessionArgs()], child ? { child } : {});
}
export const opIdOf = (out: string) => /operation ([0-9a-f-]{36})/.exec(out)?.[1] ?? '';

export async function checkHistory(t: Test, what: string): Promise<void> {
  const v = await history.check(async (key) => {
    const r = await call(mesh.nodes[0]!.appUrl, 'GET', `/entities/${encodeURIComponent(key)}`);
    return r.status === 200 ? (r.body.blob as string) : undefined;
  }, keys);
  t.same({ lost: v.lost, reverted: v.reverted, invented: v.invented }, { lost: [], reverted: [], invented: [] }, `${what}: every acknowledged write reads back (${v.checked} keys)`);
}



/** A manual operation; `fault` runs once the target catches up; then writes, the switch, and the checks. */
export async function throughFault(t: Test, k: number, fault: (opId: string) => Promise<void>, o: { atCutover?: (opId: string) => Promise<void>; tool?: boolean } = {}) {
  const s = slice(k);
  const prefix = etcdKeys(mesh.pki.cluster).rebalancePrefix;
  const opIds = async () => (await etcd.getAll().prefix(prefix).keys()).map((k) => k.slice(prefix.length));
  const before = new Set(await opIds());
  let tool: ChildProcess | undefined;
  const started = rebalance('shard-001', 'shard-002', s, ['--cutover', 'manual', ...(o.tool ? ['--wait'] : [])], (c) => (tool = c));
  let id = '';
  if (o.tool) {
    // The tool waits (--wait); its operation id is in etcd.
    await until('the operation is written', async () => {
      id = (await opIds()).find((x) => !before.has(x)) ?? '';
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

