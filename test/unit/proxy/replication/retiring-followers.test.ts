// Never two replica followers writing the same tokens at once. After a failover the new
// primary's follower waits until the old primary's follower has stopped writing (before, it did
// not, and a page of the old primary landed over what the new one had copied); it does not wait
// for the old primary's answer, which may never come. Two quick replacements of one primary's
// follower retire one after the other: the third waits for the first, and the position goes on
// through the one that never started without bringing its dropped checkpoint back.
import t, { type Test } from 'tap';
import { TOKEN_MAX } from '../../../../src/hash.js';
import { silentLogger } from '../../../../src/log.js';
import { FakeClock } from '../../../../src/runtime.js';
import { rangesDigest, replicaRanges } from '../../../../src/topology/replica-ranges.js';
import { Topology, type TopologyInit } from '../../../../src/topology/topology.js';
import { MemoryCheckpoints } from '../../../../proxy/feed/checkpoints.js';
import type { TopologySource } from '../../../../proxy/control/topology-source.js';
import type { ShardResolver } from '../../../../proxy/resolver.js';
import { ReplicaManager, type ReplicaManagerDeps } from '../../../../proxy/replication/replica-manager.js';
import { gate, MemoryNode } from '../../../support/memory-node.js';

const K = 'document.shop.orders:9f1c1d9e-4b7e-4f4e-8a55-0c7c2b6f0f11';
const tick = (ms = 10) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  for (const end = performance.now() + ms; !cond(); await tick()) if (performance.now() > end) throw new Error(`timed out waiting until ${what}`);
}

const topology = (epoch: number, ranges: TopologyInit['ranges']) => new Topology({ cluster: 'c', epoch, vnodes: 0, shards: { a: {}, b: {}, c: {} }, ranges });

/** Shard c's replica manager over storage nodes a, b and c in memory; `setTopology` brings a new topology in force. */
function rig(t: Test, first: Topology, handover?: ReplicaManagerDeps['handover']) {
  const nodes = { a: new MemoryNode('a'), b: new MemoryNode('b'), c: new MemoryNode('c') };
  let current = first;
  const listeners: ((t: Topology, previous: Topology) => void)[] = [];
  const source = { current: () => current, onChange: (l: (t: Topology, p: Topology) => void) => void listeners.push(l) } as unknown as TopologySource;
  const resolver = { resolve: (s: keyof typeof nodes) => ({ upstream: nodes[s] }), local: nodes.c } as unknown as ShardResolver;
  const checkpoints = new MemoryCheckpoints();
  const fullCopies: string[] = [];
  const manager = new ReplicaManager({ self: 'c', topology: source, resolver, checkpoints, clock: new FakeClock(), log: silentLogger, longPollMs: 50, onFullCopy: (p) => fullCopies.push(p), ...(handover ? { handover } : {}) });
  const opened: (() => void)[] = [];
  t.teardown(async () => {
    for (const n of Object.values(nodes)) n.holdFeed = n.holdWrite = undefined;
    opened.forEach((o) => o());
    await manager.stop();
  });
  const setTopology = (next: Topology) => {
    const previous = current;
    current = next;
    listeners.forEach((l) => l(next, previous));
  };
  /** A gate opened at teardown at the latest. */
  const held = () => {
    const g = gate();
    opened.push(g.open);
    return g;
  };
  return { nodes, manager, checkpoints, fullCopies, setTopology, held };
}

const idOf = (tp: Topology, primary: string) => `replica-of-${primary}-${rangesDigest(replicaRanges(tp, primary, 'c'))}`;

// a is primary with replicas b and c; a fails and b takes over its ranges, c now replicating b.
const beforeFailover = topology(1, [{ start: 0n, end: TOKEN_MAX, owner: 'a', replicas: ['b', 'c'] }]);
const afterFailover = topology(2, [{ start: 0n, end: TOKEN_MAX, owner: 'b', replicas: ['c'] }]);

t.test('after a failover, the new primary’s follower starts only once the old primary’s follower has stopped writing', async (t) => {
  const { nodes, manager, setTopology, held } = rig(t, beforeFailover);
  nodes.a.write(K, 'v0');
  nodes.b.write(K, 'v0');
  manager.start();
  await until('c follows a', () => manager.status().a?.state === 'following' && nodes.c.entities.get(K) === 'v0');
  // a's last change, on its way to c when a fails: b never had it.
  const late = held();
  nodes.c.holdWrite = (_k, blob) => (blob === 'stale' ? late.wait : Promise.resolve());
  nodes.a.write(K, 'stale');
  await until('the late write is in flight', () => nodes.a.log.length === 2 && manager.status().a?.position === 1);
  await tick(50);
  // b takes over and acknowledges a write; c's follower of b must not have it overwritten.
  setTopology(afterFailover);
  nodes.b.write(K, 'new');
  await tick(150);
  t.equal(manager.status().b?.state, 'idle', 'the follower of b waits while the follower of a still writes');
  late.open();
  await until('c follows b, caught up', () => manager.status().b?.state === 'following' && manager.status().b!.position >= nodes.b.log.length);
  await tick(100);
  t.equal(nodes.c.entities.get(K), 'new', 'c holds what b acknowledged, not a’s late change');
});

t.test('the new primary’s follower does not wait for the old primary’s feed request, which may never be answered', async (t) => {
  const { nodes, manager, setTopology, held } = rig(t, beforeFailover);
  nodes.a.write(K, 'v0');
  nodes.b.write(K, 'v0');
  manager.start();
  await until('c follows a', () => manager.status().a?.state === 'following');
  const gone = held();
  nodes.a.holdFeed = () => gone.wait; // a's answer never comes
  nodes.a.write(K, 'stale');
  await tick(50);
  setTopology(afterFailover);
  nodes.b.write(K, 'new');
  await until('c follows b, caught up', () => manager.status().b?.state === 'following' && manager.status().b!.position >= nodes.b.log.length, 2000);
  t.equal(nodes.c.entities.get(K), 'new');
  gone.open();
  await tick(100);
  t.equal(nodes.c.entities.get(K), 'new', 'a’s page, when it comes at last, is not applied');
});

// Three topologies in quick succession, each giving c a different set of a's ranges (K in all).
const wide = topology(1, [{ start: 0n, end: TOKEN_MAX, owner: 'a', replicas: ['c'] }]);
const narrower = topology(2, [{ start: 0n, end: TOKEN_MAX - 1n, owner: 'a', replicas: ['c'] }, { start: TOKEN_MAX, end: TOKEN_MAX, owner: 'a', replicas: ['b'] }]);
const narrowest = topology(3, [{ start: 0n, end: TOKEN_MAX - 2n, owner: 'a', replicas: ['c'] }, { start: TOKEN_MAX - 1n, end: TOKEN_MAX, owner: 'a', replicas: ['b'] }]);

t.test('two quick replacements of one primary’s follower: the third waits for the first, and the second’s checkpoint stays dropped', async (t) => {
  const { nodes, manager, checkpoints, fullCopies, setTopology, held } = rig(t, wide);
  nodes.a.write(K, 'v1');
  manager.start();
  await until('c follows a', () => manager.status().a?.state === 'following' && nodes.c.entities.get(K) === 'v1');
  const inFlight = held();
  nodes.c.holdWrite = (_k, blob) => (blob === 'v2' ? inFlight.wait : Promise.resolve());
  nodes.a.write(K, 'v2');
  await until('the first follower’s write is in flight', () => nodes.a.log.length === 2 && manager.status().a?.position === 1);
  await tick(50);
  setTopology(narrower); // the first follower retires (its write still in flight); the second waits for it
  setTopology(narrowest); // the second, never started, retires; the third must wait for the first too
  t.equal(manager.status().a?.id, idOf(narrowest, 'a'));
  await tick(150);
  t.equal(manager.status().a?.state, 'idle', 'the third follower waits while the first still writes');
  t.notOk(nodes.a.registrations.some((r) => r.id === `c.${idOf(narrowest, 'a')}`), 'and has not registered at a');
  inFlight.open();
  await until('the third follower follows, caught up', () => manager.status().a?.state === 'following' && manager.status().a!.position >= 2);
  await tick(50);
  t.equal(checkpoints.get(idOf(narrower, 'a')), undefined, 'the checkpoint of the follower that never started stays dropped');
  t.equal(checkpoints.get(idOf(wide, 'a')), undefined, 'as does the first one’s');
  t.same(fullCopies, ['a'], 'the position went on to the third follower: no second full copy');
  t.equal(nodes.c.entities.get(K), 'v2');
});

t.test('a follower retired while a range move hands its position over: the handover’s checkpoint does not outlive it', async (t) => {
  const handing = gate();
  const { nodes, manager, checkpoints, setTopology } = rig(t, wide, async () => {
    await handing.wait;
    return { seq: 1, spans: [{ start: 0n, end: TOKEN_MAX }] };
  });
  t.teardown(handing.open);
  nodes.a.write(K, 'v1');
  manager.start();
  await tick(50);
  setTopology(narrower); // the first follower, still taking the handover, retires
  const first = idOf(wide, 'a');
  const second = idOf(narrower, 'a');
  await tick(50);
  handing.open();
  await until('the second follower follows', () => manager.status().a?.id === second && manager.status().a?.state === 'following');
  await tick(50);
  t.equal(checkpoints.get(first), undefined, 'the first follower’s checkpoint, written by the handover, is dropped after it');
  t.equal(checkpoints.get(second)?.seq, 1, 'the position handed over went on to the second follower');
});

t.test('quietFor: a promoted replica learns when its follower of the old primary has stopped writing into a group’s ranges', async (t) => {
  // c is a's replica; a fails and c itself takes over (no follower of a must write after c acknowledges).
  const promoted = topology(2, [{ start: 0n, end: TOKEN_MAX, owner: 'c', replicas: ['b'] }]);
  const { nodes, manager, setTopology, held } = rig(t, beforeFailover);
  nodes.a.write(K, 'v0');
  manager.start();
  await until('c follows a', () => manager.status().a?.state === 'following' && nodes.c.entities.get(K) === 'v0');
  const all = [{ start: 0n, end: TOKEN_MAX }];
  t.equal(manager.quietFor(all), undefined, 'no retiring follower: nothing to wait for');
  const late = held();
  nodes.c.holdWrite = (_k, blob) => (blob === 'stale' ? late.wait : Promise.resolve());
  nodes.a.write(K, 'stale');
  await until('the late write is in flight', () => nodes.a.log.length === 2);
  await tick(50);
  setTopology(promoted);
  const quiet = manager.quietFor(all);
  t.ok(quiet, 'the follower of a retires and still writes');
  t.equal(manager.quietFor([{ start: 1n, end: 2n }]) !== undefined, true, 'any overlapping span waits too');
  let done = false;
  void quiet!.then(() => (done = true));
  await tick(100);
  t.notOk(done, 'not quiet while its write is in flight');
  late.open();
  await until('quiet once the write settled', () => done);
  t.pass('quiet');
});
