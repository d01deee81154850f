import t from 'tap';
import { TOKEN_MAX } from '../../../src/hash.js';
import { capabilitiesFor, missingCapabilities } from '../../../src/topology/change-capabilities.js';
import { Topology } from '../../../src/topology/topology.js';

/** A topology from [end, owner, replicas?] rows, ranges contiguous from token 0. */
function topo(epoch: number, shards: string[], rows: [bigint, string, string[]?][]): Topology {
  let start = 0n;
  const ranges = rows.map(([end, owner, replicas = []]) => {
    const r = { start, end, owner, replicas };
    start = end + 1n;
    return r;
  });
  return new Topology({ cluster: 'c', epoch, vnodes: 0, shards: Object.fromEntries(shards.map((s) => [s, {}])), ranges });
}

const H = TOKEN_MAX / 2n;
const Q = TOKEN_MAX / 4n;
const two = topo(1, ['a', 'b'], [[H, 'a'], [TOKEN_MAX, 'b']]);

t.test('each kind of change needs its own capability, and a change of several kinds needs all of them', async (t) => {
  const cases: [string, Topology, string[]][] = [
    ['add c, which takes tokens from a', topo(2, ['a', 'b', 'c'], [[Q, 'a'], [H, 'c'], [TOKEN_MAX, 'b']]), ['add_shard']],
    ['remove b, whose tokens go to a', topo(2, ['a'], [[TOKEN_MAX, 'a']]), ['remove_shard']],
    ['add c and remove b in one change', topo(2, ['a', 'c'], [[H, 'a'], [TOKEN_MAX, 'c']]), ['add_shard', 'remove_shard']],
    ['move tokens from a to b', topo(2, ['a', 'b'], [[Q, 'a'], [TOKEN_MAX, 'b']]), ['rebalance']],
    ['add c and also move tokens from a to b', topo(2, ['a', 'b', 'c'], [[Q, 'a'], [H, 'b'], [TOKEN_MAX, 'c']]), ['add_shard', 'rebalance']],
    ['give b a copy of a’s range', topo(2, ['a', 'b'], [[H, 'a', ['b']], [TOKEN_MAX, 'b']]), ['rebalance']],
    ['swap owner and replica', topo(2, ['a', 'b'], [[H, 'b', ['a']], [TOKEN_MAX, 'b', ['a']]]), ['rebalance']],
    ['nothing but the epoch', two.withEpoch(2), ['rebalance']],
  ];
  for (const [name, next, want] of cases) t.same(capabilitiesFor(two, next), want, name);
  const replicated = topo(1, ['a', 'b'], [[H, 'a', ['b']], [TOKEN_MAX, 'b', ['a']]]);
  t.same(capabilitiesFor(replicated, topo(2, ['a', 'b'], [[H, 'b', ['a']], [TOKEN_MAX, 'b', ['a']]])), ['rebalance'], 'the owner changes between staying shards that both hold copies');
  t.same(capabilitiesFor(undefined, two), ['add_shard'], 'the first topology brings its shards in');
});

t.test('missingCapabilities lists what is needed and not held', async (t) => {
  t.same(missingCapabilities(['add_shard', 'remove_shard'], ['add_shard', 'view_topology']), ['remove_shard']);
  t.same(missingCapabilities(['rebalance'], ['rebalance']), []);
});
