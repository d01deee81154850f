// The ack gate's arithmetic and its refusals: how many copies each mode needs, what a refused
// write says (which copies are missing, how many confirmed), a key that moves away while its
// write waits, a replica set that changes while it waits, and the wait for a term before a
// write is planned. Real positions and topology code; the replicas' confirmations are recorded
// as the mesh port would record them. Found by mutation testing (docs/testing.md).
import t from 'tap';
import { FakeClock } from '../../../src/runtime.js';
import { TOKEN_MAX } from '../../../src/hash.js';
import { ThemisError } from '../../../src/errors.js';
import { Topology } from '../../../src/topology/topology.js';
import { rangesDigest, replicaRanges } from '../../../src/topology/replica-ranges.js';
import type { NodeClient } from '../../../proxy/feed/node-client.js';
import type { TopologySource } from '../../../proxy/control/topology-source.js';
import { AckGate, copiesNeeded, TERM_WAIT_MS, type AckMode, type Fencing } from '../../../proxy/replication/ack-gate.js';
import { LocalHead } from '../../../proxy/replication/local-head.js';
import { ReplicaPositions } from '../../../proxy/replication/positions.js';

const KEY = 'document.shop.orders:9f1c1d9e-4b7e-4f4e-8a55-0c7c2b6f0f11';
const shards = { a: {}, b: {}, c: {}, d: {} };
const withReplicas = (epoch: number, owner: string, replicas: string[]) => new Topology({ cluster: 'c', epoch, vnodes: 0, shards, ranges: [{ start: 0n, end: TOKEN_MAX, owner, replicas }] });
const topo = withReplicas(1, 'a', ['b', 'c']);

function setup(mode: AckMode, o: { timeoutMs?: number; fencing?: Fencing } = {}) {
  let current = topo;
  let refused = 0;
  const local = new LocalHead({ head: async () => 10 } as unknown as NodeClient);
  const positions = new ReplicaPositions(new FakeClock(0), local);
  const gate = new AckGate({
    self: 'a', topology: { current: () => current } as unknown as TopologySource, positions, head: local, mode,
    timeoutMs: o.timeoutMs ?? 300, onRefused: () => refused++, ...(o.fencing ? { fencing: o.fencing } : {}),
  });
  const confirm = (replica: string, seq = 10, t: Topology = current) => positions.record(replica, `${seq} ${rangesDigest(replicaRanges(t, 'a', replica))}`);
  return { gate, confirm, local, positions, refused: () => refused, set: (t: Topology) => (current = t) };
}

const outcome = (p: Promise<void>) => p.then(() => 'done', (e: unknown) => (e instanceof ThemisError ? e : String(e)));

t.test('copies each mode needs, the primary counted', async (t) => {
  t.same([1, 2, 3, 4, 5].map((n) => copiesNeeded('all', n)), [1, 2, 3, 4, 5]);
  t.same([1, 2, 3, 4, 5].map((n) => copiesNeeded('majority', n)), [1, 2, 2, 3, 3]);
  t.same([1, 2, 3, 4, 5].map((n) => copiesNeeded('primary', n)), [1, 1, 1, 1, 1]);
  t.same((['all', 'majority', 'primary'] as const).map((m) => setup(m).gate.plan(KEY, topo).needed), [2, 1, 0], 'replica confirmations to wait for, with two replicas');
});

t.test('all: one replica confirming is not enough; the refusal names the missing copy and counts', async (t) => {
  const s = setup('all');
  await s.local.after();
  const settling = outcome(s.gate.settle(s.gate.plan(KEY, topo)));
  s.confirm('b');
  const e = await settling;
  t.match(e, {
    code: 'REPLICATION_UNAVAILABLE',
    message: 'the write is durable on a but only 2 of 3 required copies confirmed it within 300 ms; missing: c',
    details: { missing_copies: ['c'] },
  });
  t.equal(s.refused(), 1, 'counted once');
});

t.test('majority: one replica of two is enough; nothing is refused', async (t) => {
  const s = setup('majority');
  await s.local.after();
  const settling = outcome(s.gate.settle(s.gate.plan(KEY, topo)));
  s.confirm('c');
  t.equal(await settling, 'done');
  t.equal(s.refused(), 0);
});

t.test('a key that moves away while its write waits: refused, to be repeated at its new owner', async (t) => {
  const s = setup('all', { timeoutMs: 2000 });
  await s.local.after();
  const settling = outcome(s.gate.settle(s.gate.plan(KEY, topo)));
  setTimeout(() => s.set(withReplicas(2, 'd', ['a'])), 20);
  const started = performance.now();
  t.match(await settling, { code: 'REPLICATION_UNAVAILABLE', message: 'the key moved to d while its write waited for confirmations on a; repeat it', details: { missing_copies: ['b', 'c'] } });
  t.ok(performance.now() - started < 1500, 'without waiting out the timeout');
  t.equal(s.refused(), 1);
});

t.test('a replica set that changes while the write waits: the new set confirms it', async (t) => {
  const s = setup('all', { timeoutMs: 2000 });
  await s.local.after();
  const settling = outcome(s.gate.settle(s.gate.plan(KEY, topo)));
  const next = withReplicas(2, 'a', ['d']);
  setTimeout(() => {
    s.set(next);
    s.confirm('d', 10, next);
  }, 20);
  t.equal(await settling, 'done', 'd alone, the new set, suffices');
});

t.test('confirmed, but the key moved away before the gate looked: refused all the same', async (t) => {
  const s = setup('all');
  await s.local.after();
  const p = s.gate.plan(KEY, topo);
  s.confirm('b');
  s.confirm('c');
  s.set(withReplicas(2, 'd', ['a']));
  t.match(await outcome(s.gate.settle(p)), { code: 'REPLICATION_UNAVAILABLE', message: 'the key moved to d while its write waited for confirmations on a; repeat it' });
});

t.test('nobody confirms: every missing copy is named; no wait outlasts the deadline', async (t) => {
  const s = setup('all', { timeoutMs: 120 });
  const waits: number[] = [];
  const waitFor = s.positions.waitFor.bind(s.positions);
  s.positions.waitFor = (r, n, seq, ms) => (waits.push(ms), waitFor(r, n, seq, ms));
  await s.local.after();
  t.match(await outcome(s.gate.settle(s.gate.plan(KEY, topo))), { message: /missing: b, c$/, details: { missing_copies: ['b', 'c'] } });
  t.ok(waits.length >= 1 && waits.every((ms) => ms <= 120), `each wait within the 120 ms left: ${waits.join(', ')}`);
  t.ok(waits[0]! > 0, 'and the first one actually waits');
});

t.test('ack primary asks the storage node nothing', async (t) => {
  const s = setup('primary');
  let asked = 0;
  const after = s.local.after.bind(s.local);
  s.local.after = () => (asked++, after());
  t.equal(await outcome(s.gate.settle(s.gate.plan(KEY, topo))), 'done');
  t.equal(asked, 0);
});

t.test('a confirmation below the write\'s sequence does not count', async (t) => {
  const s = setup('majority');
  await s.local.after();
  const settling = outcome(s.gate.settle(s.gate.plan(KEY, topo)));
  s.confirm('b', 9);
  t.match(await settling, { code: 'REPLICATION_UNAVAILABLE', details: { missing_copies: ['b', 'c'] } });
});

t.test('settled: waits for a term only when the group has one this shard does not hold', async (t) => {
  const calls: number[] = [];
  const fencing = (fence: boolean, holds: boolean): Fencing => ({
    fenceOf: () => (fence ? { group: 'g', term: 1 } : undefined) as never,
    holds: () => holds,
    untilHeld: async (_token, ms) => (calls.push(ms), true),
  });
  await setup('all', { fencing: fencing(false, false) }).gate.settled(KEY);
  await setup('all', { fencing: fencing(true, true) }).gate.settled(KEY);
  t.same(calls, [], 'no group, or a term held: no wait');
  await setup('all', { fencing: fencing(true, false) }).gate.settled(KEY);
  t.same(calls, [TERM_WAIT_MS], 'a term not held: waits, bounded');
});

t.test('the two fencing refusals say whether the write was applied', async (t) => {
  let holds = false;
  const fencing: Fencing = { fenceOf: () => ({ group: 'g', term: 1 }) as never, holds: () => holds };
  t.throws(() => setup('primary', { fencing }).gate.plan(KEY, topo), {
    code: 'FAILOVER_IN_PROGRESS', message: "a is not (or no longer certainly) the acting primary of this key's range: a failover is in progress; repeat the request",
  });
  holds = true;
  const s = setup('primary', { fencing });
  const p = s.gate.plan(KEY, topo);
  holds = false;
  t.match(await outcome(s.gate.settle(p)), {
    code: 'FAILOVER_IN_PROGRESS', message: "a lost its term as acting primary of this key's range while the write waited (a failover may follow); the write is not reported as done: repeat it",
  });
  t.equal(s.refused(), 1);
});
