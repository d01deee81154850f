// Replica groups: the unit of failover. A group is the ranges one owner holds with the same
// list of replicas (the balanced planner gives one owner's ranges different replicas, so an
// owner may head several groups). Its id digests owner, replicas and ranges, so a topology that
// changes any of them makes a new group; one that only renumbers the epoch keeps it.
//
// The effective topology is the signed one with each failed-over group's ranges owned by its
// acting primary, the signed owner moved among the replicas: routing, ownership, the ack gate
// and the replica followers all read it, so a failover changes where data flows and nothing else.
import { createHash } from 'node:crypto';
import { tokenHex } from '../hash.js';
import { Topology, type TokenRange } from './topology.js';
import type { TokenSpan } from './replica-ranges.js';

export interface ReplicaGroup {
  readonly id: string;
  readonly owner: string;
  readonly replicas: readonly string[];
  /** Owner first, then the replicas: every shard that holds a copy. */
  readonly copies: readonly string[];
  readonly ranges: readonly TokenSpan[];
}

/** The groups of ranges that have replicas (a range without any has nothing to fail over to). */
export function replicaGroups(t: Topology): ReplicaGroup[] {
  const byKey = new Map<string, { owner: string; replicas: string[]; ranges: TokenSpan[] }>();
  for (const r of t.ranges) {
    if (r.replicas.length === 0) continue;
    const key = `${r.owner}|${r.replicas.join(',')}`;
    let g = byKey.get(key);
    if (!g) byKey.set(key, (g = { owner: r.owner, replicas: [...r.replicas], ranges: [] }));
    const last = g.ranges[g.ranges.length - 1];
    if (last && last.end + 1n === r.start) last.end = r.end;
    else g.ranges.push({ start: r.start, end: r.end });
  }
  return [...byKey.values()].map((g) => {
    const h = createHash('sha256').update(`${g.owner}|${g.replicas.join(',')}|`);
    for (const s of g.ranges) h.update(`${tokenHex(s.start)}-${tokenHex(s.end)};`);
    return { id: h.digest('hex').slice(0, 16), owner: g.owner, replicas: g.replicas, copies: [g.owner, ...g.replicas], ranges: g.ranges };
  });
}

/** The group a range belongs to, by the range's owner and replicas. */
export function groupOfRange(groups: readonly ReplicaGroup[], r: TokenRange): ReplicaGroup | undefined {
  return groups.find((g) => g.owner === r.owner && g.replicas.length === r.replicas.length && g.replicas.every((x, i) => x === r.replicas[i]));
}

/**
 * `signed` with every group in `acting` (group id → acting shard, one of its copies) owned by
 * its acting primary; the other copies are its replicas, the signed owner first. Acting
 * entries naming no copy of their group are ignored. Returns `signed` itself when nothing changes.
 */
export function effectiveTopology(signed: Topology, acting: ReadonlyMap<string, string>): Topology {
  const groups = replicaGroups(signed);
  let changed = false;
  const ranges = signed.ranges.map((r) => {
    if (r.replicas.length === 0) return r;
    const g = groupOfRange(groups, r)!;
    const a = acting.get(g.id);
    if (a === undefined || a === r.owner || !g.copies.includes(a)) return r;
    changed = true;
    return { ...r, owner: a, replicas: g.copies.filter((c) => c !== a) };
  });
  if (!changed) return signed;
  return new Topology({ cluster: signed.cluster, epoch: signed.epoch, vnodes: signed.vnodes, shards: { ...signed.shards }, ranges });
}
