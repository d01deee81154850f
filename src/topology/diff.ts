// Diffs two topologies into the token ranges whose owner changes: what adding, removing
// or rebalancing shards must move. A sweep over the union of both range boundaries.
import type { Topology, TokenRange } from './topology.js';

export interface RangeMove {
  readonly start: bigint;
  readonly end: bigint;
  readonly from: string;
  readonly to: string;
}

export function diffTopologies(before: Topology, after: Topology): RangeMove[] {
  return changedOwners(before, after, () => true);
}

/**
 * The token ranges `after` gives to a shard that held no copy of them in `before` (neither its
 * owner nor a replica): publishing that alone leaves their data where it was, and the keys answer
 * 404. Moving data is a rebalance operation's job (themis-admin shard add|remove).
 */
export function strandedRanges(before: Topology, after: Topology): RangeMove[] {
  return changedOwners(before, after, (was, now) => !was.replicas.includes(now.owner));
}

/** A sweep over the union of both topologies' bounds: the spans whose owner changes and `keep` accepts, contiguous ones joined. */
function changedOwners(before: Topology, after: Topology, keep: (was: TokenRange, now: TokenRange) => boolean): RangeMove[] {
  const moves: RangeMove[] = [];
  let i = 0;
  let j = 0;
  let start = 0n;
  const a = before.ranges;
  const b = after.ranges;
  while (i < a.length && j < b.length) {
    const ra = a[i]!;
    const rb = b[j]!;
    const end = ra.end < rb.end ? ra.end : rb.end;
    if (ra.owner !== rb.owner && keep(ra, rb)) {
      const last = moves[moves.length - 1];
      if (last && last.end + 1n === start && last.from === ra.owner && last.to === rb.owner) {
        moves[moves.length - 1] = { ...last, end };
      } else {
        moves.push({ start, end, from: ra.owner, to: rb.owner });
      }
    }
    if (ra.end === end) i++;
    if (rb.end === end) j++;
    start = end + 1n;
  }
  return moves;
}
