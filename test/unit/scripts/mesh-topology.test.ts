import t from 'tap';
import { TOKEN_MAX } from '../../../src/hash.js';
import { devShards } from '../../../src/pki/dev-pki.js';
import { meshTopology } from '../../../scripts/mesh-topology.js';

const shards = (n: number, split = true) => devShards(n, { firstIp: 2, split }).map((s) => ({ ...s, endpoint: `${s.ip}:7443` }));

t.test('certified: each shard owns the range its certificate allows; replicas are the next shards, wrapping', async (t) => {
  const topo = meshTopology({ cluster: 'c', shards: shards(4), ranges: 'certified', replicas: 2 });
  t.equal(topo.ranges.length, 4);
  t.same(topo.ranges.map((r) => [r.owner, r.replicas]), [
    ['shard-001', ['shard-002', 'shard-003']],
    ['shard-002', ['shard-003', 'shard-004']],
    ['shard-003', ['shard-004', 'shard-001']],
    ['shard-004', ['shard-001', 'shard-002']],
  ]);
  t.same(topo.shards['shard-003'], { endpoint: '127.0.0.4:7443', datacenter: 'dc1' });
  t.same(meshTopology({ cluster: 'c', shards: shards(3), ranges: 'certified', replicas: 0 }).ranges.map((r) => r.replicas), [[], [], []]);
});

t.test('ring: ranges from the hash ring, each with its preference list as replicas', async (t) => {
  const topo = meshTopology({ cluster: 'c', shards: shards(3, false), ranges: 'ring', replicas: 1 });
  t.ok(topo.ranges.length > 3);
  t.ok(topo.ranges.every((r) => r.replicas.length === 1 && r.replicas[0] !== r.owner));
  t.same(topo.owners(), ['shard-001', 'shard-002', 'shard-003']);
});

t.test('one owner: every token', async (t) => {
  const topo = meshTopology({ cluster: 'c', shards: shards(2, false), ranges: { owner: 'shard-002' }, replicas: 1 });
  t.same(topo.ranges.map((r) => [r.start, r.end, r.owner, r.replicas]), [[0n, TOKEN_MAX, 'shard-002', ['shard-001']]]);
  t.throws(() => meshTopology({ cluster: 'c', shards: shards(2, false), ranges: { owner: 'shard-009' }, replicas: 0 }), /shard-009/);
});

t.test('replicas must leave the owner out', async (t) => {
  t.throws(() => meshTopology({ cluster: 'c', shards: shards(3), ranges: 'certified', replicas: 3 }), /from 0 to 2/);
  t.throws(() => meshTopology({ cluster: 'c', shards: shards(3, false), ranges: 'certified', replicas: 0 }), /no certified token range/);
});
