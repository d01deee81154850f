// The failover trials' harness (failover.test.ts, failover-workers.test.ts): 3 shards, every
// range on all three (RF 3, ack majority), etcd with 1 s failover leases. A trial runs a steady
// write loop through the sidecars that survive, makes the acting primary of shard-001's range
// fail by the given fault, and checks that a replica takes over, the old primary returns as a
// follower, and every acknowledged write is on every copy (none lost, reverted or invented);
// failed writes fail with retryable codes, never by hanging.
import t, { type Test } from 'tap';
import type { Etcd3 } from 'etcd3';
import { TERM_WAIT_MS } from '../../proxy/replication/ack-gate.js';
import { readFileSync } from 'node:fs';
import { ERRORS } from '../../src/errors.js';
import { replicaGroups } from '../../src/topology/replica-groups.js';
import { etcdClient, startMesh, uuidOwnedBy, type Mesh, type MeshOptions } from './mesh.js';
import { History, writeLoop } from './history.js';
import { call } from './storage-process.js';
import { adminShards } from './admin-shards.js';

export interface Fault {
  name: string;
  /** Also write through the victim's own app port (its clients must be redirected, or refused). */
  viaVictim?: boolean;
  inject(victim: number): Promise<void>;
  recover(victim: number): Promise<void>;
}

/** Starts the mesh before the file's tests (and stops it after); what the tests use. */
export function failoverHarness(opts: MeshOptions) {
  t.setTimeout(400_000);


  let mesh: Mesh;
  /** Read-only, async: etcdctl (spawnSync) in the polling loops blocked this process's writes in flight past their timeout. */
  let etcd: Etcd3;
  t.before(async () => {
    mesh = await startMesh(opts);
    etcd = etcdClient(mesh, mesh.pki.operators.readonly);
  });
  t.teardown(async () => {
    etcd?.close();
    await mesh?.close();
  });

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const ids = () => mesh.nodes.map((n) => n.shard.id);
  const range = () => mesh.topology.ranges.find((r) => r.owner === 'shard-001')!;
  const group = () => replicaGroups(mesh.topology).find((g) => g.owner === 'shard-001')!;
  // The longest a sidecar may take by its own timeouts (set in support/mesh.ts: connect 2 s +
  // request 5 s, and once more after a 421 sends it to another owner) plus 1 s: an answer that
  // does not come by then is a hang. (8 s was too short: a write caught by a restarting peer took longer.)
  // Plus TERM_WAIT_MS: a write may first wait that long for its group's term where it arrives.
  const CLIENT_TIMEOUT_MS = 2 * (2000 + 5000) + TERM_WAIT_MS + 1000;
  const retryable = (code: string) => (ERRORS as Record<string, { retryable: boolean }>)[code]?.retryable === true;

  function ctl(args: string[]): string {
    const a = mesh.pki.operators.readonly;
    const r = mesh.etcd!.etcdctl({ cert: a.chainPath, key: a.keyPath, ca: mesh.pki.root.certPath }, args);
    if (r.status !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }

  /** The acting primary of shard-001's group and its term (the key's create revision). */
  async function acting(): Promise<{ shard: string; term: number } | undefined> {
    const kv = (await etcd.get(`/themis/${mesh.pki.cluster}/failover/acting/${group().id}`).exec()).kvs[0];
    return kv ? { shard: (JSON.parse(kv.value.toString()) as { shard: string }).shard, term: Number(kv.create_revision) } : undefined;
  }

  async function until<T>(what: string, f: () => T | undefined | Promise<T | undefined>, ms = 20_000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = await f();
      if (v !== undefined && v !== false) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; failover keys in etcd:\n${ctl(['get', '--prefix', `/themis/${mesh.pki.cluster}/failover/`])}\n${mesh.nodes.map((n) => (n.sidecar?.stderr() ?? '').split('\n').filter((l) => /failover|replication/.test(l)).slice(-15).join('\n')).join('\n----\n')}`);
      await sleep(50);
    }
  }

  let keysMade: string[] | undefined;
  const keysOf = () => (keysMade ??= Array.from({ length: 60 }, () => `document.shop.orders:${uuidOwnedBy(range())}`));
  const history = new History();

  const readFrom = (storageUrl: string) => async (key: string) => {
    const r = await call(storageUrl, 'GET', `/entities/${encodeURIComponent(key)}`);
    return r.status === 200 ? (r.body.blob as string) : undefined;
  };

  /** Every copy holds every acknowledged write (waiting while a returning copy repairs), and nothing else. */
  async function checkCopies(t: Test, what: string, copies = [0, 1, 2]): Promise<void> {
    for (const [i, node] of mesh.nodes.entries()) {
      if (!copies.includes(i)) continue;
      let v = await history.check(readFrom(node.storage.url), history.ackedKeys());
      for (let tries = 0; tries < 200 && v.lost.length + v.reverted.length > 0; tries++) {
        await sleep(100);
        v = await history.check(readFrom(node.storage.url), history.ackedKeys());
      }
      t.same({ lost: v.lost, reverted: v.reverted, invented: v.invented }, { lost: [], reverted: [], invented: [] }, `${what}: ${ids()[i]} holds every acknowledged write (${v.checked} keys)`);
    }
  }


  async function trial(t: Test, f: Fault): Promise<number> {
    const keys = keysOf();
    const before = await until('an acting primary', acting);
    const victim = ids().indexOf(before.shard);
    const others = [0, 1, 2].filter((i) => i !== victim);
    await until('a first write', async () => (await call(mesh.nodes[others[0]!]!.appUrl, 'PUT', `/entities/${encodeURIComponent(keys[0]!)}`, { blob: history.next(keys[0]!).blob })).status === 201 || undefined);
    let lane = 0;
    let injectedAt = 0;
    let firstNew = 0;
    let stop!: () => void;
    const done = new Promise<void>((r) => (stop = r));
    // Writes through the surviving sidecars; with viaVictim also (other keys, own lanes) through the victim's.
    const [theirs, victims] = f.viaVictim ? [keys.slice(0, 48), keys.slice(48)] : [keys, []];
    const victimLoop = writeLoop(history, victims, async (key, blob) => {
      const r = await call(mesh.nodes[victim]!.appUrl, 'PUT', `/entities/${encodeURIComponent(key)}`, { blob }, CLIENT_TIMEOUT_MS);
      return { status: r.status, code: r.body?.code };
    }, { until: done, concurrency: 2 });
    const loop = writeLoop(history, theirs, async (key, blob) => {
      const node = mesh.nodes[others[lane++ % others.length]!]!;
      const r = await call(node.appUrl, 'PUT', `/entities/${encodeURIComponent(key)}`, { blob }, CLIENT_TIMEOUT_MS);
      return { status: r.status, code: r.body?.code };
    }, { until: done, concurrency: 4 });
    await sleep(800);
    injectedAt = performance.now();
    await f.inject(victim);
    // A probe: every 50 ms a new write (a fresh key each) through a surviving sidecar, not waiting
    // for the ones before it (a write stuck on the paused primary must not hold the next one back).
    // The failover time is until the first of them the new primary acknowledged.
    for (let i = 0; !firstNew; i++) {
      if (performance.now() - injectedAt > 20_000) throw new Error('no write was acknowledged by a new primary within 20 s');
      const key = `document.shop.probe:${uuidOwnedBy(range())}`;
      const { blob, n } = history.next(key);
      void call(mesh.nodes[others[i % 2]!]!.appUrl, 'PUT', `/entities/${encodeURIComponent(key)}`, { blob }, CLIENT_TIMEOUT_MS).then((r) => {
        if (r.status !== 201) return;
        history.ack(key, n);
        if (r.headers.get('x-themis-shard') !== before.shard && !firstNew) firstNew = performance.now();
      }, () => undefined);
      await sleep(50);
    }
    const ms = firstNew - injectedAt;
    await sleep(700);
    const after = await until('the new acting primary', async () => {
      const a = await acting();
      return a && a.shard !== before.shard ? a : undefined;
    });
    await f.recover(victim);
    await sleep(500);
    stop();
    const stats = await loop;
    const viaVictim = await victimLoop;
    if (f.viaVictim) {
      t.comment(`through the victim's own app port: ${viaVictim.acknowledged} acknowledged, ${viaVictim.failed} failed ${JSON.stringify(viaVictim.failures)}`);
      t.ok(Object.keys(viaVictim.failures).every(retryable), `its clients' failed writes have retryable codes: ${Object.keys(viaVictim.failures).join(', ') || 'none failed'}`);
    }
    t.comment(`${f.name}: ${before.shard} → ${after.shard} (term ${before.term} → ${after.term}); first write acknowledged by the new primary ${ms.toFixed(0)} ms after the fault; ${stats.acknowledged} acknowledged, ${stats.failed} failed ${JSON.stringify(stats.failures)}`);
    t.ok(after.term > before.term, 'a new term');
    t.ok(Object.keys(stats.failures).every(retryable), `every failed write failed with a retryable code: ${Object.keys(stats.failures).join(', ') || 'none failed'}`);
    const audit = readFileSync(mesh.nodes[ids().indexOf(after.shard)]!.auditFile, 'utf8');
    t.match(audit, new RegExp(`"event":"FAILOVER_COMPLETED".*"group":"${group().id}".*"primary":"${after.shard}".*"term":${after.term}`), 'the new primary audited FAILOVER_COMPLETED with its term');
    await checkCopies(t, f.name);
    t.equal((await acting())?.shard, after.shard, 'the old primary came back as a follower: the acting primary stays until an operator publishes a new epoch');
    const shards = adminShards(mesh);
    t.same(shards.find((r) => r.shard === after.shard)?.acting.filter((a) => a.group === group().id), [{ group: group().id, term: after.term }], '`themis-admin shards` shows the acting primary with its term');
    return ms;
  }

  return {
    get mesh() {
      return mesh;
    },
    ctl, acting, until, keysOf, history, ids, range, group, checkCopies, trial, sleep, CLIENT_TIMEOUT_MS,
  };
}
