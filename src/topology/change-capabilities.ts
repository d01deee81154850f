// Which operator capabilities a topology change needs: all of them, not any one. Adding a
// shard needs add_shard, removing one remove_shard, and moving tokens between shards that stay
// (or changing what they hold in any other way) needs rebalance. Tokens that go to an added
// shard, or come from a removed one, are part of that add or remove.
import type { Topology } from './topology.js';

export type TopologyCapability = 'add_shard' | 'remove_shard' | 'rebalance';

export const TOPOLOGY_CAPABILITIES: readonly TopologyCapability[] = ['add_shard', 'remove_shard', 'rebalance'];

/**
 * Every capability going from `current` to `next` needs. Without `current` the change is a
 * first topology (the bootstrap brings shards in: add_shard).
 */
export function capabilitiesFor(current: Topology | undefined, next: Topology): TopologyCapability[] {
  if (!current) return ['add_shard'];
  const before = new Set(Object.keys(current.shards));
  const after = new Set(Object.keys(next.shards));
  const need = new Set<TopologyCapability>();
  if ([...after].some((s) => !before.has(s))) need.add('add_shard');
  if ([...before].some((s) => !after.has(s))) need.add('remove_shard');
  const staying = (s: string) => before.has(s) && after.has(s);
  if (holdingsChangeAmong(current, next, staying)) need.add('rebalance');
  // Same shards, same holdings (endpoints, datacenters, epoch only): still a change of the topology.
  if (need.size === 0) need.add('rebalance');
  return TOPOLOGY_CAPABILITIES.filter((c) => need.has(c));
}

/** Capabilities from `needed` that `held` lacks. */
export function missingCapabilities(needed: readonly string[], held: readonly string[]): string[] {
  return needed.filter((c) => !held.includes(c));
}

/**
 * True when, somewhere in the token space, shards that stay change what they hold: tokens go
 * from one staying shard to another, the owner changes between staying shards, or a staying
 * shard gains or drops a copy with no added or removed shard on the other side.
 */
function holdingsChangeAmong(a: Topology, b: Topology, staying: (s: string) => boolean): boolean {
  let i = 0;
  let j = 0;
  while (i < a.ranges.length && j < b.ranges.length) {
    const ra = a.ranges[i]!;
    const rb = b.ranges[j]!;
    const oldSet = new Set([ra.owner, ...ra.replicas]);
    const newSet = new Set([rb.owner, ...rb.replicas]);
    const gained = [...newSet].filter((s) => !oldSet.has(s));
    const lost = [...oldSet].filter((s) => !newSet.has(s));
    const stayingGained = gained.some(staying);
    const stayingLost = lost.some(staying);
    if (stayingGained && (stayingLost || lost.length === 0)) return true;
    if (stayingLost && gained.length === 0) return true;
    if (ra.owner !== rb.owner && staying(ra.owner) && staying(rb.owner)) return true;
    const end = ra.end < rb.end ? ra.end : rb.end;
    if (ra.end === end) i++;
    if (rb.end === end) j++;
  }
  return false;
}
