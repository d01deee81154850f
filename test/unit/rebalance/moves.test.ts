// The topology after moves: split at the moves' bounds, owners changed, replication kept; and
// the operation document round-trips and refuses what is malformed, naming the field.
import t from 'tap';
import { TOKEN_MAX } from '../../../src/hash.js';
import { Topology } from '../../../src/topology/topology.js';
import { applyMoves, sameAssignment } from '../../../src/rebalance/moves.js';
import { buildOperation, operationDocument, parseOperation } from '../../../src/rebalance/operation.js';

const half = TOKEN_MAX / 2n;
const base = new Topology({
  cluster: 'c', epoch: 4, vnodes: 0, shards: { a: {}, b: {}, c: {} },
  ranges: [
    { start: 0n, end: half, owner: 'a', replicas: ['b'] },
    { start: half + 1n, end: TOKEN_MAX, owner: 'b', replicas: ['c'] },
  ],
});

t.test('a move splits its range at both bounds and changes only its owner', async (t) => {
  const next = applyMoves(base, [{ from: 'a', to: 'c', start: 100n, end: 199n }]);
  t.equal(next.epoch, 5);
  t.same(next.ranges.map((r) => [r.start, r.end, r.owner, r.replicas]), [
    [0n, 99n, 'a', ['b']],
    [100n, 199n, 'c', ['b']],
    [200n, half, 'a', ['b']],
    [half + 1n, TOKEN_MAX, 'b', ['c']],
  ]);
});

t.test('a target that was a replica trades places with the old owner: the replication factor stays', async (t) => {
  const next = applyMoves(base, [{ from: 'a', to: 'b', start: 0n, end: half }]);
  t.same(next.ranges[0], { start: 0n, end: half, owner: 'b', replicas: ['a'] });
});

t.test('moves that do not fit are refused, naming the move', async (t) => {
  t.throws(() => applyMoves(base, [{ from: 'b', to: 'c', start: 0n, end: 10n }]), /owned by a, not b/);
  t.throws(() => applyMoves(base, [{ from: 'a', to: 'x', start: 0n, end: 10n }]), /x is not a shard/);
  t.throws(() => applyMoves(base, [{ from: 'a', to: 'a', start: 0n, end: 10n }]), /both a/);
  t.throws(() => applyMoves(base, [{ from: 'a', to: 'c', start: 0n, end: 10n }, { from: 'a', to: 'c', start: 5n, end: 20n }]), /overlaps/);
  t.throws(() => applyMoves(base, [{ from: 'a', to: 'c', start: 10n, end: 5n }]), /start must be ≤ end/);
});

t.test('sameAssignment compares owners token by token, whatever the bounds', async (t) => {
  const split = applyMoves(base, [{ from: 'a', to: 'c', start: 0n, end: 0n }]);
  const back = applyMoves(split, [{ from: 'c', to: 'a', start: 0n, end: 0n }]);
  t.ok(sameAssignment(back, base), 'split ranges with the same owners');
  t.notOk(sameAssignment(split, base));
});

t.test('the operation document round-trips; malformed documents name the field', async (t) => {
  const op = buildOperation(base, [{ from: 'a', to: 'c', start: 100n, end: 199n }]);
  const back = parseOperation(operationDocument(op));
  t.same([back.id, back.cluster, back.baseEpoch, back.moves, back.nextDocument], [op.id, 'c', 4, op.moves, op.nextDocument]);
  const doc = JSON.parse(operationDocument(op)) as Record<string, unknown>;
  const bad = (o: Record<string, unknown>) => () => parseOperation(JSON.stringify({ ...doc, ...o }));
  t.throws(bad({ op_id: 'x' }), /op_id/);
  t.throws(bad({ base_epoch: -1 }), /base_epoch/);
  t.throws(bad({ moves: [] }), /moves/);
  t.throws(bad({ moves: [{ from: 'a', to: 'c', token_start: 'zz', token_end: '0x1' }] }), /moves\[0\]/);
  t.throws(bad({ next_topology: '{}' }), /next_topology/);
  t.throws(() => parseOperation('nope'), /not JSON/);
});
