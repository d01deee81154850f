// Replica groups and the effective topology: a failed-over group's ranges owned by its acting
// primary, the signed owner among its replicas; nothing else changes.
import t from 'tap';
import { TOKEN_MAX } from '../../../src/hash.js';
import { Topology } from '../../../src/topology/topology.js';
import { effectiveTopology, replicaGroups } from '../../../src/topology/replica-groups.js';

const q = TOKEN_MAX / 4n;
const signed = new Topology({
  cluster: 'c',
  epoch: 3,
  vnodes: 0,
  shards: { a: {}, b: {}, c: {}, d: {} },
  ranges: [
    { start: 0n, end: q, owner: 'a', replicas: ['b', 'c'] },
    { start: q + 1n, end: 2n * q, owner: 'a', replicas: ['b', 'c'] },
    { start: 2n * q + 1n, end: 3n * q, owner: 'a', replicas: ['c', 'd'] },
    { start: 3n * q + 1n, end: TOKEN_MAX, owner: 'd', replicas: [] },
  ],
});

t.test('a group is one owner with one replica list; adjacent ranges merge; ranges without replicas form none', async (t) => {
  const g = replicaGroups(signed);
  t.same(g.map((x) => [x.owner, x.copies, x.ranges.length]), [['a', ['a', 'b', 'c'], 1], ['a', ['a', 'c', 'd'], 1]]);
  t.same(g[0]!.ranges, [{ start: 0n, end: 2n * q }]);
  t.not(g[0]!.id, g[1]!.id);
  t.equal(replicaGroups(signed.withEpoch(9))[0]!.id, g[0]!.id, 'a new epoch alone keeps the group (and its acting primary)');
});

t.test('the effective topology moves exactly the failed-over group', async (t) => {
  const [g1] = replicaGroups(signed);
  const eff = effectiveTopology(signed, new Map([[g1!.id, 'c']]));
  t.same(eff.ranges.map((r) => [r.owner, r.replicas]), [
    ['c', ['a', 'b']],
    ['c', ['a', 'b']],
    ['a', ['c', 'd']],
    ['d', []],
  ]);
  t.equal(eff.epoch, 3);
  t.equal(effectiveTopology(signed, new Map([[g1!.id, 'a']])), signed, 'the signed owner acting: the signed topology itself');
  t.equal(effectiveTopology(signed, new Map([[g1!.id, 'd']])), signed, 'an acting shard that holds no copy of the group is ignored');
  t.equal(effectiveTopology(signed, new Map([['0000000000000000', 'b']])), signed, 'an unknown group is ignored');
});
