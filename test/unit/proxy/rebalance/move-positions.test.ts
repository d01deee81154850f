// What a move target announces of its position: believed up to this node's head (read again when
// the position is beyond the last read, since writes that need no confirmation never read it),
// dropped beyond it, kept per operation and target.
import t from 'tap';
import { MovePositions } from '../../../../proxy/rebalance/cutover.js';
import { LocalHead } from '../../../../proxy/replication/local-head.js';
import type { NodeClient } from '../../../../proxy/feed/node-client.js';

const OP = '2c5e0a51-8f0e-4d7b-9a51-0d4c1f3e9b11';
const OTHER = '00000000-0000-4000-8000-000000000000';

function setup(head: { seq: number }) {
  const reads = { n: 0 };
  const node = { head: async () => (reads.n++, head.seq) } as unknown as NodeClient;
  const local = new LocalHead(node);
  return { positions: new MovePositions(local), local, reads };
}
const tick = () => new Promise((r) => setTimeout(r, 5));

t.test('a position beyond the last head read is checked against a fresh read', async (t) => {
  const head = { seq: 100 };
  const { positions, local, reads } = setup(head);
  await local.after(); // latest 100
  positions.record('shard-002', `90 ${OP}`);
  t.equal(positions.of(OP, 'shard-002'), 90, 'at or below the last read: believed at once');
  t.equal(reads.n, 1, 'without another read');
  head.seq = 150; // writes went on without reading the head
  positions.record('shard-002', `140 ${OP}`);
  await tick();
  t.equal(positions.of(OP, 'shard-002'), 140, 'beyond it: believed once a fresh read reaches it');
  positions.record('shard-002', `500 ${OP}`);
  await tick();
  t.equal(positions.of(OP, 'shard-002'), 140, 'beyond this node\'s history: dropped');
  positions.record('shard-002', `120 ${OP}`);
  t.equal(positions.of(OP, 'shard-002'), 140, 'an older announcement does not move it back');
  t.equal(positions.of(OP, 'shard-003'), -1, 'per target');
  t.equal(positions.of(OTHER, 'shard-002'), -1, 'per operation');
  positions.record('shard-002', 'garbage');
  positions.record('shard-002', undefined);
  t.equal(positions.of(OP, 'shard-002'), 140, 'a malformed header changes nothing');
});

t.test('waitFor resolves when the position arrives, false after the time given', async (t) => {
  const head = { seq: 10 };
  const { positions, local } = setup(head);
  await local.after();
  const waiting = positions.waitFor(OP, 'shard-002', 30, 1000);
  head.seq = 40;
  positions.record('shard-002', `35 ${OP}`);
  t.equal(await waiting, true);
  t.equal(await positions.waitFor(OP, 'shard-002', 60, 30), false);
});
