// Where a range's replicas go: the next distinct shards clockwise from the range (the rule
// `topology plan --replicas` follows on the ring), first those in datacenters not yet holding it.
import type { ShardInfo } from './topology.js';

export interface ReplicaRule {
  /** The owner of every range, in token order (the ring is read clockwise from a range). */
  readonly owners: readonly string[];
  readonly shards: Readonly<Record<string, ShardInfo>>;
  readonly ids: readonly string[];
  readonly datacenters: number;
}

export function replicaRule(owners: readonly string[], shards: Readonly<Record<string, ShardInfo>>): ReplicaRule {
  const ids = Object.keys(shards).sort();
  return { owners, shards, ids, datacenters: new Set(ids.map((s) => shards[s]!.datacenter ?? '')).size };
}

/**
 * The replicas of range `i`: `count` distinct shards other than its owner. Shards from
 * `keep` (the range's current replicas) are kept unless a shard in an unused datacenter
 * can take the place of one sharing a datacenter; the rest are the next shards clockwise,
 * those in datacenters not yet used first. With one datacenter (or none named) this is
 * exactly the ring's rule: the next distinct shards clockwise.
 */
export function replicasFor(rule: ReplicaRule, i: number, count: number, keep: readonly string[] = []): string[] {
  const { owners, shards, datacenters } = rule;
  const owner = owners[i]!;
  const dc = (s: string) => shards[s]?.datacenter ?? '';
  const want = Math.min(count, rule.ids.length - 1);
  const used = new Set([dc(owner)]);
  const out: string[] = [];
  const sharing: string[] = [];
  for (const s of new Set(keep)) {
    if (s === owner || !(s in shards)) continue;
    if (used.has(dc(s))) sharing.push(s);
    else if (out.length < want) {
      out.push(s);
      used.add(dc(s));
    }
  }
  const clockwise = (accept: (s: string) => boolean) => {
    for (let step = 1; step < owners.length && out.length < want; step++) {
      const s = owners[(i + step) % owners.length]!;
      if (s !== owner && !out.includes(s) && accept(s)) {
        out.push(s);
        used.add(dc(s));
      }
    }
  };
  if (used.size < datacenters) clockwise((s) => !used.has(dc(s)) && used.size < datacenters);
  for (const s of sharing) if (out.length < want) out.push(s);
  clockwise(() => true);
  // Shards that own no range are not on the ring; they can still hold replicas.
  for (const s of rule.ids) if (out.length < want && s !== owner && !out.includes(s)) out.push(s);
  return out;
}
