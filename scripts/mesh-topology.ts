// The local mesh's topology: each shard owning the range its certificate allows, ranges from the
// hash ring, or every token owned by one shard; each range with `replicas` replica shards.
import { TOKEN_MAX } from '../src/hash.js';
import { HashRing } from '../src/ring/ring.js';
import { topologyFromRing } from '../src/topology/from-ring.js';
import { Topology, type ShardInfo, type TokenRange } from '../src/topology/topology.js';

/** 'certified': shard i owns its certificate's token range; 'ring': the hash ring decides; { owner }: all tokens. */
export type RangeLayout = 'certified' | 'ring' | { owner: string };

export interface TopologyShard {
  id: string;
  /** Mesh endpoint host:port. */
  endpoint: string;
  tokenRange?: { start: bigint; end: bigint };
}

export function meshTopology(o: { cluster: string; shards: readonly TopologyShard[]; ranges: RangeLayout; replicas: number }): Topology {
  const ids = o.shards.map((s) => s.id);
  if (!Number.isInteger(o.replicas) || o.replicas < 0 || o.replicas >= ids.length) {
    throw new Error(`replicas must be an integer from 0 to ${ids.length - 1} (the number of other shards), got ${o.replicas}`);
  }
  const shards: Record<string, ShardInfo> = Object.fromEntries(o.shards.map((s) => [s.id, { endpoint: s.endpoint, datacenter: 'dc1' }]));
  if (o.ranges === 'ring') return topologyFromRing(new HashRing(ids), { cluster: o.cluster, epoch: 1, replicas: o.replicas, shards });
  // The next `replicas` shards after the owner, in shard order (wrapping), like a ring's preference list.
  const replicasOf = (owner: string) => Array.from({ length: o.replicas }, (_, k) => ids[(ids.indexOf(owner) + 1 + k) % ids.length]!);
  let ranges: TokenRange[];
  if (o.ranges === 'certified') {
    ranges = o.shards
      .map((s) => {
        if (!s.tokenRange) throw new Error(`${s.id} has no certified token range`);
        return { ...s.tokenRange, owner: s.id, replicas: replicasOf(s.id) };
      })
      .sort((a, b) => (a.start < b.start ? -1 : 1));
  } else {
    if (!ids.includes(o.ranges.owner)) throw new Error(`the owner of every range, ${o.ranges.owner}, is not one of the shards`);
    ranges = [{ start: 0n, end: TOKEN_MAX, owner: o.ranges.owner, replicas: replicasOf(o.ranges.owner) }];
  }
  return new Topology({ cluster: o.cluster, epoch: 1, vnodes: 0, shards, ranges });
}
