// A replica's announced position counts only for its ranges, only up to this node's own head
// (a position beyond it is from another history), and is forgotten when the head goes lower.
import t from 'tap';
import { FakeClock } from '../../../src/runtime.js';
import type { NodeClient } from '../../../proxy/feed/node-client.js';
import { LocalHead } from '../../../proxy/replication/local-head.js';
import { ReplicaPositions } from '../../../proxy/replication/positions.js';

/** A node at head `start` (change `head.value` to move it), its head read once. */
async function setup(start: number) {
  const head = { value: start };
  const local = new LocalHead({ head: async () => head.value } as unknown as NodeClient);
  const positions = new ReplicaPositions(new FakeClock(0), local);
  await local.after();
  return { head, local, positions };
}
const D = '0123456789abcdef';
const tick = () => new Promise((r) => setTimeout(r, 5));

t.test('counts a position up to the head, for the ranges its digest names', async (t) => {
  const { head, local, positions } = await setup(100);
  positions.record('shard-002', `50 ${D}`);
  t.equal(positions.applied('shard-002', D), 50);
  t.equal(positions.applied('shard-002', 'ffffffffffffffff'), -1, 'not for other ranges');
  for (const bad of ['x 0123', `50 ${D} extra`, `99999999999999999 ${D}`, undefined]) positions.record('shard-003', bad as string);
  t.equal(positions.applied('shard-003', D), -1, 'malformed announcements count for nothing');
});

t.test('a position beyond this node’s head counts only once the head reaches it', async (t) => {
  const { head, local, positions } = await setup(100);
  positions.record('shard-002', `5000 ${D}`);
  await tick();
  t.equal(positions.applied('shard-002', D), -1, 'another history: not counted');
  const waiting = positions.waitFor(new Map([['shard-002', D]]), 1, 150, 50);
  t.same(await waiting, [], 'a write at 150 is not confirmed by it');
  head.value = 6000;
  positions.record('shard-002', `5000 ${D}`);
  await tick();
  t.equal(positions.applied('shard-002', D), 5000, 'counted once the head is that high');
});

t.test('a head that goes lower forgets positions beyond it', async (t) => {
  const { head, local, positions } = await setup(100);
  positions.record('shard-002', `90 ${D}`);
  t.equal(positions.applied('shard-002', D), 90);
  head.value = 10; // the node lost its data
  await local.after();
  t.equal(positions.applied('shard-002', D), -1);
});
