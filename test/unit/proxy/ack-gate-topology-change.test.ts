// A write waiting for its replica's confirmation while a range move cuts over: the replica now
// follows this shard's smaller set of ranges with a new follower (a new digest), whose
// confirmations count. Before, the write waited for the retired follower and failed after the
// ack timeout with REPLICATION_UNAVAILABLE although the replica held it.
import t from 'tap';
import { FakeClock } from '../../../src/runtime.js';
import { TOKEN_MAX } from '../../../src/hash.js';
import { Topology } from '../../../src/topology/topology.js';
import { rangesDigest, replicaRanges } from '../../../src/topology/replica-ranges.js';
import { tokenOf, parseKey } from '../../../src/urn/urn.js';
import type { NodeClient } from '../../../proxy/feed/node-client.js';
import type { TopologySource } from '../../../proxy/control/topology-source.js';
import { AckGate } from '../../../proxy/replication/ack-gate.js';
import { LocalHead } from '../../../proxy/replication/local-head.js';
import { ReplicaPositions } from '../../../proxy/replication/positions.js';

const KEY = 'document.shop.orders:9f1c1d9e-4b7e-4f4e-8a55-0c7c2b6f0f11';
const token = tokenOf(parseKey(KEY));
// Before: a owns everything, b replicates it. After: the half without the key moved to b (a replicates it), a keeps the key's half.
const before = new Topology({ cluster: 'c', epoch: 1, vnodes: 0, shards: { a: {}, b: {} }, ranges: [{ start: 0n, end: TOKEN_MAX, owner: 'a', replicas: ['b'] }] });
const cut = token < TOKEN_MAX / 2n ? [token + 1n, TOKEN_MAX] : [0n, token - 1n];
const after = new Topology({
  cluster: 'c', epoch: 2, vnodes: 0, shards: { a: {}, b: {} },
  ranges: (cut[0] === 0n
    ? [{ start: 0n, end: cut[1]!, owner: 'b', replicas: ['a'] }, { start: cut[1]! + 1n, end: TOKEN_MAX, owner: 'a', replicas: ['b'] }]
    : [{ start: 0n, end: cut[0]! - 1n, owner: 'a', replicas: ['b'] }, { start: cut[0]!, end: TOKEN_MAX, owner: 'b', replicas: ['a'] }]),
});

t.test('confirmations from the follower of the topology now in force count', async (t) => {
  t.not(rangesDigest(replicaRanges(before, 'a', 'b')), rangesDigest(replicaRanges(after, 'a', 'b')), 'the move changes what b follows of a');
  let current = before;
  const local = new LocalHead({ head: async () => 10 } as unknown as NodeClient);
  const positions = new ReplicaPositions(new FakeClock(0), local);
  const gate = new AckGate({ self: 'a', topology: { current: () => current } as unknown as TopologySource, positions, head: local, mode: 'all', timeoutMs: 3000 });
  const pending = gate.plan(KEY, before);
  const started = performance.now();
  const settled = gate.settle(pending);
  // The cutover: the new topology comes into force, and b's new follower (its full copy done) confirms a's head.
  setTimeout(() => {
    current = after;
    positions.record('b', `10 ${rangesDigest(replicaRanges(after, 'a', 'b'))}`);
  }, 100);
  await t.resolves(settled, 'done, not REPLICATION_UNAVAILABLE');
  t.ok(performance.now() - started < 2000, 'well before the ack timeout');
});

t.test('without any confirmation it still fails after the ack timeout', async (t) => {
  const local = new LocalHead({ head: async () => 10 } as unknown as NodeClient);
  const positions = new ReplicaPositions(new FakeClock(0), local);
  const gate = new AckGate({ self: 'a', topology: { current: () => after } as unknown as TopologySource, positions, head: local, mode: 'all', timeoutMs: 400 });
  await t.rejects(gate.settle(gate.plan(KEY, before)), { code: 'REPLICATION_UNAVAILABLE' });
});
