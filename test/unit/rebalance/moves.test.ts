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

// Found by mutation testing (docs/testing.md): the exact shapes the checks refuse and accept.
const hx = (n: bigint) => `0x${n.toString(16).padStart(16, '0')}`;

t.test('shape checks: exact messages, either kind of move, out-of-order input', async (t) => {
  t.throws(() => applyMoves(base, [{ from: 'a', to: 'c', start: 0n, end: 10n }, { from: 'a', to: 'c', start: 10n, end: 20n }]), {
    message: new RegExp(`^move ${hx(10n)}–${hx(20n)}: overlaps another move$`),
  }, 'moves sharing one token overlap');
  t.throws(() => checkShapesOf([{ from: 'a', to: 'c', start: 0n, end: 9n, role: 'replica' }, { from: 'a', to: 'c', start: 9n, end: 20n, role: 'replica' }]), {
    message: `replica move ${hx(9n)}–${hx(20n)}: overlaps another move`,
  });
  t.throws(() => applyMoves(base, [{ from: 'a', to: 'c', start: 0n, end: TOKEN_MAX + 1n }]), /start must be ≤ end/, 'past the last token');
  // Owner moves to different targets may not overlap either; replica moves to different targets may.
  t.throws(() => applyMoves(base, [{ from: 'a', to: 'c', start: 0n, end: 10n }, { from: 'a', to: 'b', start: 5n, end: 20n }]), /overlaps/);
  t.doesNotThrow(() => checkShapesOf([{ from: 'a', to: 'c', start: 0n, end: 9n, role: 'replica' }, { from: 'a', to: 'b', start: 5n, end: 20n, role: 'replica' }]));
  // Given out of order, disjoint moves are accepted and applied.
  const next = applyMoves(base, [{ from: 'a', to: 'c', start: 200n, end: 299n }, { from: 'a', to: 'b', start: 100n, end: 199n }]);
  t.same(next.ranges.map((r) => [r.start, r.owner]), [[0n, 'a'], [100n, 'b'], [200n, 'c'], [300n, 'a'], [half + 1n, 'b']]);
});

/** checkShapes is private: applyMoves on a topology where every move's source owns everything runs it first. */
function checkShapesOf(moves: Parameters<typeof applyMoves>[1]): void {
  const all = new Topology({ cluster: 'c', epoch: 1, vnodes: 0, shards: { a: {}, b: {}, c: {} }, ranges: [{ start: 0n, end: TOKEN_MAX, owner: 'a', replicas: [] }] });
  applyMoves(all, moves);
}

t.test('a one-token move at the last token of a range', async (t) => {
  const next = applyMoves(base, [{ from: 'a', to: 'c', start: half, end: half }]);
  t.same(next.ranges.map((r) => [r.start, r.end, r.owner]), [[0n, half - 1n, 'a'], [half, half, 'c'], [half + 1n, TOKEN_MAX, 'b']]);
  // And checkMoves over one-token ranges finds each token's range (a binary search over bounds).
  t.equal(checkMoves(base, [{ from: 'a', to: 'c', start: half, end: half }], next), undefined);
  const wrong = applyMoves(base, [{ from: 'a', to: 'b', start: half, end: half }]);
  t.equal(checkMoves(base, [{ from: 'a', to: 'c', start: half, end: half }], wrong), `${hx(half)}–${hx(half)}: the moves give it to c, next_topology to b`);
});

t.test('seedMoves joins contiguous spans of one copy from one owner, and only those', async (t) => {
  const q = TOKEN_MAX / 4n;
  const four = new Topology({
    cluster: 'c', epoch: 4, vnodes: 0, shards: { a: {}, b: {}, c: {}, d: {} },
    ranges: [
      { start: 0n, end: q, owner: 'a', replicas: [] },
      { start: q + 1n, end: half, owner: 'a', replicas: [] },
      { start: half + 1n, end: q * 3n, owner: 'b', replicas: [] },
      { start: q * 3n + 1n, end: TOKEN_MAX, owner: 'a', replicas: [] },
    ],
  });
  const after = new Topology({
    cluster: 'c', epoch: 5, vnodes: 0, shards: four.shards,
    ranges: [
      { start: 0n, end: q, owner: 'a', replicas: ['d'] },
      { start: q + 1n, end: half, owner: 'a', replicas: ['d'] },
      { start: half + 1n, end: q * 3n, owner: 'b', replicas: ['d'] },
      { start: q * 3n + 1n, end: TOKEN_MAX, owner: 'a', replicas: ['c'] },
    ],
  });
  const seeds = seedMoves(four, after, []);
  t.same(seeds, [
    { from: 'a', to: 'd', start: 0n, end: half, role: 'replica' },
    { from: 'b', to: 'd', start: half + 1n, end: q * 3n, role: 'replica' },
    { from: 'a', to: 'c', start: q * 3n + 1n, end: TOKEN_MAX, role: 'replica' },
  ], 'a→d joined over two ranges; b→d apart (another owner); a→c its own');
  t.equal(checkMoves(four, seeds, after), undefined);
  // Not contiguous: d gets 0..q and half+1..3q from a, with q+1..half between left as it was.
  const gap = new Topology({
    cluster: 'c', epoch: 5, vnodes: 0, shards: four.shards,
    ranges: [
      { start: 0n, end: q, owner: 'a', replicas: ['d'] },
      { start: q + 1n, end: half, owner: 'a', replicas: [] },
      { start: half + 1n, end: q * 3n, owner: 'b', replicas: [] },
      { start: q * 3n + 1n, end: TOKEN_MAX, owner: 'a', replicas: ['d'] },
    ],
  });
  t.same(seedMoves(four, gap, []), [
    { from: 'a', to: 'd', start: 0n, end: q, role: 'replica' },
    { from: 'a', to: 'd', start: q * 3n + 1n, end: TOKEN_MAX, role: 'replica' },
  ]);
  // A copy that comes with an owner move needs no seed.
  const owned = applyMoves(four, [{ from: 'a', to: 'd', start: 0n, end: q }]);
  t.same(seedMoves(four, owned, [{ from: 'a', to: 'd', start: 0n, end: q }]), [], 'nothing to seed: d comes with the owner move, a kept nothing new');
});

t.test('checkMoves: every new copy needs its own move, covering exactly its span', async (t) => {
  const after = next([{ start: 0n, end: half, owner: 'a', replicas: ['b', 'c'] }, { start: half + 1n, end: TOKEN_MAX, owner: 'b', replicas: ['c'] }]);
  const toC = { from: 'a', to: 'c', start: 0n, end: half, role: 'replica' as const };
  t.equal(checkMoves(base, [toC], after), undefined);
  // Another target's move does not bring c a copy.
  const bOnly = next([{ start: 0n, end: half, owner: 'a', replicas: ['b', 'c'] }, { start: half + 1n, end: TOKEN_MAX, owner: 'b', replicas: ['c', 'a'] }]);
  t.equal(checkMoves(base, [toC], bOnly), `a holds ${hx(half + 1n)}–${hx(TOKEN_MAX)} in next_topology, but no move brings it a copy from b`);
  // A move that covers only part of the new copy: the rest is named.
  t.equal(checkMoves(base, [{ ...toC, end: 10n }], after), `c holds ${hx(11n)}–${hx(half)} in next_topology, but no move brings it a copy from a`);
  // A one-token replica move is checked like any other.
  t.equal(checkMoves(base, [toC, { from: 'a', to: 'b', start: 7n, end: 7n, role: 'replica' }], after), `replica move ${hx(7n)}–${hx(7n)}: b already holds ${hx(7n)}–${hx(7n)}`);
  t.equal(checkMoves(base, [{ ...toC, from: 'b' }], after), `c holds ${hx(0n)}–${hx(half)} in next_topology, but no move brings it a copy from a`);
});

t.test('sameAssignment also compares replica lists', async (t) => {
  const swapped = next([{ start: 0n, end: half, owner: 'a', replicas: ['c'] }, { start: half + 1n, end: TOKEN_MAX, owner: 'b', replicas: ['c'] }]);
  t.notOk(sameAssignment(swapped, base), 'same owners, another replica');
  t.ok(sameAssignment(next(base.ranges.map((r) => ({ ...r, replicas: [...r.replicas] }))), base));
});

t.test('shape checks sort any number of moves before comparing neighbours', async (t) => {
  const shuffled = [{ from: 'a', to: 'c', start: 300n, end: 399n }, { from: 'a', to: 'b', start: 100n, end: 199n }, { from: 'a', to: 'c', start: 0n, end: 99n }, { from: 'a', to: 'b', start: 200n, end: 299n }];
  t.same(applyMoves(base, shuffled).ranges.map((r) => [r.start, r.owner]), [[0n, 'c'], [100n, 'b'], [200n, 'b'], [300n, 'c'], [400n, 'a'], [half + 1n, 'b']]);
  t.throws(() => applyMoves(base, [...shuffled, { from: 'a', to: 'c', start: 150n, end: 150n }]), new RegExp(`^move ${hx(150n)}–${hx(150n)}: overlaps another move$`));
});

const four = { a: {}, b: {}, c: {}, d: {} };

t.test('seedMoves: bounds from both topologies in any order; two new copies of one span each get their move', async (t) => {
  // next splits a's range at 100 (a bound base lacks, after base's half+1 in the bound set).
  const after = next([{ start: 0n, end: 99n, owner: 'a', replicas: ['b', 'c', 'd'] }, { start: 100n, end: half, owner: 'a', replicas: ['b', 'c', 'd'] }, { start: half + 1n, end: TOKEN_MAX, owner: 'b', replicas: ['c'] }], four);
  const seeds = seedMoves(base, after, []);
  t.same(seeds, [
    { from: 'a', to: 'c', start: 0n, end: half, role: 'replica' },
    { from: 'a', to: 'd', start: 0n, end: half, role: 'replica' },
  ], 'one move per target over the whole span, across the new bound');
  t.equal(checkMoves(base, seeds, after), undefined);
  // A move to c does not bring d its copy.
  t.equal(checkMoves(base, [seeds[0]!], after), `d holds ${hx(0n)}–${hx(99n)} in next_topology, but no move brings it a copy from a`);
  // A move covering only the upper part of c's new copy leaves the lower part without one.
  t.equal(checkMoves(base, [{ ...seeds[0]!, start: 100n }, seeds[1]!], after), `c holds ${hx(0n)}–${hx(99n)} in next_topology, but no move brings it a copy from a`);
});

t.test('a replica move from a shard that does not own the tokens is refused as such', async (t) => {
  t.equal(checkMoves(base, [{ from: 'c', to: 'b', start: 0n, end: 10n, role: 'replica' }], next(base.ranges.map((r) => ({ ...r, replicas: [...r.replicas] })))), `replica move ${hx(0n)}–${hx(10n)}: ${hx(0n)}–${hx(10n)} is owned by a, not c`);
});

t.test('two moves from the same token overlap: the one listed later is named', async (t) => {
  t.throws(() => applyMoves(base, [{ from: 'a', to: 'c', start: 0n, end: 20n }, { from: 'a', to: 'b', start: 0n, end: 10n }]), { message: `move ${hx(0n)}–${hx(10n)}: overlaps another move` });
  t.throws(() => applyMoves(base, [{ from: 'a', to: 'b', start: 0n, end: 10n }, { from: 'a', to: 'c', start: 0n, end: 20n }]), { message: `move ${hx(0n)}–${hx(20n)}: overlaps another move` });
});
