// droppedReplicaSpans: the tokens a shard replicated and no longer holds any copy of (what its
// retired-copies sweep deletes). Tokens it still holds as the owner or a replica are not dropped.
import t from 'tap';
import { Topology } from '../../../src/topology/topology.js';
import { droppedReplicaSpans } from '../../../src/topology/replica-ranges.js';
import { TOKEN_MAX } from '../../../src/hash.js';

const shards = { a: {}, b: {}, c: {}, d: {} };
const topo = (epoch: number, ranges: [bigint, bigint, string, string[]][]) =>
  new Topology({ cluster: 'c', epoch, vnodes: 0, shards, ranges: ranges.map(([start, end, owner, replicas]) => ({ start, end, owner, replicas })) });

const before = topo(1, [[0n, 99n, 'a', ['b']], [100n, 199n, 'c', ['b']], [200n, TOKEN_MAX, 'd', ['a']]]);

t.test('a replica handed to another shard is dropped, over the exact tokens', async (t) => {
  const after = topo(2, [[0n, 49n, 'a', ['b']], [50n, 149n, 'a', ['d']], [150n, 199n, 'c', ['b']], [200n, TOKEN_MAX, 'd', ['a']]]);
  t.same(droppedReplicaSpans(before, after, 'b'), [{ start: 50n, end: 149n }]);
  t.same(droppedReplicaSpans(before, after, 'd'), [], 'd gained, dropped nothing');
  // a owned 50–99 before and still does: an owner's tokens are not the replica sweep's.
  t.same(droppedReplicaSpans(before, after, 'a'), []);
});

t.test('a replica that becomes the owner, or stays a replica under another owner, keeps its copy', async (t) => {
  const after = topo(2, [[0n, 99n, 'b', ['a']], [100n, 199n, 'd', ['b']], [200n, TOKEN_MAX, 'd', ['a']]]);
  t.same(droppedReplicaSpans(before, after, 'b'), []);
});

t.test('the last range is bounded by the token space', async (t) => {
  const after = topo(2, [[0n, 99n, 'a', ['b']], [100n, 199n, 'c', ['b']], [200n, TOKEN_MAX, 'd', ['c']]]);
  t.same(droppedReplicaSpans(before, after, 'a'), [{ start: 200n, end: TOKEN_MAX }]);
});

t.test('subtractSpans: the tokens of a that b lacks', async (t) => {
  const { subtractSpans } = await import('../../../src/topology/replica-ranges.js');
  t.same(subtractSpans([{ start: 0n, end: 99n }], [{ start: 10n, end: 19n }, { start: 50n, end: 200n }]), [{ start: 0n, end: 9n }, { start: 20n, end: 49n }]);
  t.same(subtractSpans([{ start: 0n, end: 9n }, { start: 20n, end: 29n }], [{ start: 0n, end: 29n }]), [], 'all covered');
  t.same(subtractSpans([{ start: 5n, end: 9n }], []), [{ start: 5n, end: 9n }], 'nothing to take away');
  t.same(subtractSpans([{ start: 0n, end: TOKEN_MAX }], [{ start: 0n, end: 0n }]), [{ start: 1n, end: TOKEN_MAX }]);
});
