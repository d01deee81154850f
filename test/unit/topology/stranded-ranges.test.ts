// strandedRanges: what `topology publish` refuses without --i-know-data-is-stranded — tokens given
// to a shard that held no copy of them. A replica promoted to owner holds the data already.
import t from 'tap';
import { Topology } from '../../../src/topology/topology.js';
import { strandedRanges } from '../../../src/topology/diff.js';
import { TOKEN_MAX } from '../../../src/hash.js';

const shards = { a: {}, b: {}, c: {}, d: {} };
const topo = (epoch: number, ranges: [bigint, bigint, string, string[]][]) =>
  new Topology({ cluster: 'c', epoch, vnodes: 0, shards, ranges: ranges.map(([start, end, owner, replicas]) => ({ start, end, owner, replicas })) });

const before = topo(1, [[0n, 99n, 'a', ['b']], [100n, 199n, 'c', []], [200n, TOKEN_MAX, 'd', []]]);

t.test('tokens handed to a shard with no copy are stranded, over the exact tokens', async (t) => {
  const after = topo(2, [[0n, 49n, 'a', ['b']], [50n, 149n, 'd', []], [150n, 199n, 'c', []], [200n, TOKEN_MAX, 'd', []]]);
  t.same(strandedRanges(before, after), [
    { start: 50n, end: 99n, from: 'a', to: 'd' },
    { start: 100n, end: 149n, from: 'c', to: 'd' },
  ]);
});

t.test('a replica promoted to owner, or an unchanged owner, strands nothing', async (t) => {
  const after = topo(2, [[0n, 99n, 'b', ['a']], [100n, 199n, 'c', ['d']], [200n, TOKEN_MAX, 'd', []]]);
  t.same(strandedRanges(before, after), []);
  t.same(strandedRanges(before, before), []);
});
