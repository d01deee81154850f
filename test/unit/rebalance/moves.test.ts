// The topology after moves: split at the moves' bounds, owners changed, replication kept; and
// the operation document round-trips and refuses what is malformed, naming the field.
import t from 'tap';
import { TOKEN_MAX } from '../../../src/hash.js';
import { Topology } from '../../../src/topology/topology.js';
import { applyMoves, checkMoves, sameAssignment, seedMoves } from '../../../src/rebalance/moves.js';
import { buildOperation, buildPlannedOperation, operationDocument, parseOperation } from '../../../src/rebalance/operation.js';
import { planAddShard, planRemoveShard } from '../../../src/topology/rebalance.js';

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
  t.throws(bad({ moves: [{ from: 'a', to: 'c', token_start: '0x0', token_end: '0x1', role: 'owner' }] }), /moves\[0\]: role/);
  t.throws(bad({ next_topology: '{}' }), /next_topology/);
  t.throws(() => parseOperation('nope'), /not JSON/);
});

// Replica moves: a planned next topology may change replica lists; every copy it adds must be
// brought before the cutover by a move from the tokens' owner.
const next = (ranges: { start: bigint; end: bigint; owner: string; replicas: string[] }[], shards = { a: {}, b: {}, c: {} }) =>
  new Topology({ cluster: 'c', epoch: 5, vnodes: 0, shards, ranges });

t.test('a new replica without a move that brings its copy is inconsistent; with one it fits', async (t) => {
  // c replaces b as the replica of a's range.
  const after = next([{ start: 0n, end: half, owner: 'a', replicas: ['c'] }, { start: half + 1n, end: TOKEN_MAX, owner: 'b', replicas: ['c'] }]);
  t.match(checkMoves(base, [], after), /c holds 0x0+–0x7f+ in next_topology, but no move brings it a copy from a/);
  const seeds = seedMoves(base, after, []);
  t.same(seeds, [{ from: 'a', to: 'c', start: 0n, end: half, role: 'replica' }], 'one replica move, from the owner');
  t.equal(checkMoves(base, seeds, after), undefined);
  t.match(checkMoves(base, [{ ...seeds[0]!, from: 'b' }], after), /owned by a, not b|no move brings it a copy from a/, 'only from the owner');
  t.match(checkMoves(base, [...seeds, { from: 'b', to: 'c', start: half + 1n, end: TOKEN_MAX, role: 'replica' }], after), /c already holds/, 'no copy of what the target holds');
  t.match(checkMoves(base, [...seeds, { from: 'a', to: 'b', start: 0n, end: 10n, role: 'replica' }], after), /b already holds/);
  const notReplica = next([{ start: 0n, end: half, owner: 'a', replicas: ['b'] }, { start: half + 1n, end: TOKEN_MAX, owner: 'b', replicas: ['c'] }]);
  t.match(checkMoves(base, [{ from: 'a', to: 'c', start: 0n, end: 10n, role: 'replica' }], notReplica), /c is not a replica/);
});

t.test('owners must be the owner moves applied; replica moves change no owner', async (t) => {
  const after = next([{ start: 0n, end: half, owner: 'c', replicas: ['b'] }, { start: half + 1n, end: TOKEN_MAX, owner: 'b', replicas: ['c'] }]);
  t.match(checkMoves(base, [{ from: 'a', to: 'c', start: 0n, end: half, role: 'replica' }], after), /the moves give it to a, next_topology to c/);
  t.equal(checkMoves(base, [{ from: 'a', to: 'c', start: 0n, end: half }], after), undefined);
  // Two replica moves to one target may not overlap; an owner move and a replica move may.
  t.match(checkMoves(base, [{ from: 'a', to: 'c', start: 0n, end: 9n, role: 'replica' }, { from: 'a', to: 'c', start: 5n, end: 20n, role: 'replica' }], after), /overlaps/);
});

t.test('removing a shard of a replicated topology: its copies go elsewhere, RF kept, each new copy seeded', async (t) => {
  const three = new Topology({
    cluster: 'c', epoch: 4, vnodes: 0, shards: { a: {}, b: {}, c: {}, d: {} },
    ranges: [
      { start: 0n, end: TOKEN_MAX / 4n, owner: 'a', replicas: ['b'] },
      { start: TOKEN_MAX / 4n + 1n, end: half, owner: 'b', replicas: ['c'] },
      { start: half + 1n, end: (TOKEN_MAX / 4n) * 3n, owner: 'c', replicas: ['d'] },
      { start: (TOKEN_MAX / 4n) * 3n + 1n, end: TOKEN_MAX, owner: 'd', replicas: ['a'] },
    ],
  });
  const plan = planRemoveShard(three, 'b');
  const op = buildPlannedOperation(three, plan.next, plan.moves.map((m) => ({ from: m.from, to: m.to, start: m.tokenStart, end: m.tokenEnd })));
  for (const r of op.next.ranges) {
    t.notOk([r.owner, ...r.replicas].includes('b'), `b holds nothing of ${r.start}–${r.end}`);
    t.equal(r.replicas.length, 1, 'one replica, as before');
  }
  t.ok(op.moves.some((m) => m.role === 'replica'), 'some copies are new');
  t.equal(checkMoves(three, op.moves, op.next), undefined);
  t.equal(checkMoves(three, op.moves.filter((m) => m.role !== 'replica'), op.next)?.includes('no move brings it a copy'), true, 'without the replica moves it does not fit');
  const back = parseOperation(operationDocument(op));
  t.same(back.moves, op.moves, 'replica moves round-trip with their role');
  const add = planAddShard(three, 'e', { info: {} });
  const addOp = buildPlannedOperation(three, add.next, add.moves.map((m) => ({ from: m.from, to: m.to, start: m.tokenStart, end: m.tokenEnd })));
  for (const r of addOp.next.ranges) t.equal(r.replicas.length, 1, `RF kept after an add (${r.owner})`);
  t.equal(checkMoves(three, addOp.moves, addOp.next), undefined);
});
