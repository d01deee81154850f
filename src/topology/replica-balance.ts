// Evening out replica holdings after the owners were planned. Adding a shard gives it its share
// of owned tokens; without this it would hold no replica, and the others would keep holding
// (RF − 1)/N of the space as replicas each: a shard added because disks are full would free
// little. Each shard should hold its equal part of all replica tokens, within MIN_PIECE.
//
// Greedy: the newcomer furthest below its part takes replica tokens from the
// one furthest above, out of a range where it holds no copy yet, that its certified range covers
// and where it does not reduce the number of datacenters holding copies; a range is split when
// only part of it is needed. Every replica token taken is copied once (a replica move).
import { allowedSpan, type AllowedRange } from './balanced-plan.js';
import { intersect, spanSize } from './token-schedule.js';
import { Topology, type TokenRange } from './topology.js';

/** Below this, a shard's shortfall is left alone: 2^24 tokens is 10^-12 of the space. */
const MIN_PIECE = 1n << 24n;

export interface ReplicaHandover {
  readonly from: string;
  readonly to: string;
  readonly start: bigint;
  readonly end: bigint;
}

/**
 * `t` with replica tokens handed to each of `takers` below its equal part, from the shards above
 * theirs. Only `takers` gain (an added shard): shards already in place keep what they hold, so a
 * plan copies no more than the newcomer's part.
 */
export function balanceReplicas(t: Topology, takers: readonly string[], allowed?: AllowedRange): { next: Topology; handovers: ReplicaHandover[] } {
  const ids = Object.keys(t.shards);
  const ranges: TokenRange[] = t.ranges.map((r) => ({ ...r, replicas: [...r.replicas] }));
  const total = ranges.reduce((a, r) => a + spanSize(r) * BigInt(r.replicas.length), 0n);
  if (total === 0n || ids.length < 2) return { next: t, handovers: [] };
  const held = new Map(ids.map((s) => [s, 0n]));
  for (const r of ranges) for (const s of r.replicas) held.set(s, (held.get(s) ?? 0n) + spanSize(r));
  const part = total / BigInt(ids.length);
  const window = new Map(ids.map((s) => [s, allowedSpan(allowed, s)]));
  const dc = (s: string) => t.shards[s]?.datacenter ?? '';
  const handovers: ReplicaHandover[] = [];
  const deficit = (s: string) => part - held.get(s)!;
  // Each round moves at least MIN_PIECE tokens or ends: bounded by total / MIN_PIECE, and in
  // practice by the number of shards.
  for (;;) {
    const short = takers.filter((s) => held.has(s) && deficit(s) >= MIN_PIECE).sort((a, b) => cmp(deficit(b), deficit(a)) || a.localeCompare(b));
    let moved = false;
    for (const taker of short) {
      const givers = ids.filter((s) => -deficit(s) >= MIN_PIECE).sort((a, b) => cmp(deficit(a), deficit(b)) || a.localeCompare(b));
      const w = window.get(taker)!;
      for (const giver of givers) {
        const want = min(deficit(taker), -deficit(giver));
        // The largest range the giver replicates that the taker may hold, last tokens first.
        let best = -1;
        ranges.forEach((r, i) => {
          if (!r.replicas.includes(giver) || r.owner === taker || r.replicas.includes(taker)) return;
          const inside = intersect(r, w);
          if (!inside || spanSize(inside) < MIN_PIECE) return;
          const copies = [r.owner, ...r.replicas];
          const swapped = copies.map((s) => (s === giver ? taker : s));
          if (new Set(swapped.map(dc)).size < new Set(copies.map(dc)).size) return;
          if (best < 0 || spanSize(intersect(ranges[best]!, w)!) < spanSize(inside)) best = i;
        });
        if (best < 0) continue;
        const r = ranges[best]!;
        const inside = intersect(r, w)!;
        const take = min(want, spanSize(inside));
        const piece = { start: inside.end - take + 1n, end: inside.end };
        const pieces: TokenRange[] = [];
        if (piece.start > r.start) pieces.push({ ...r, end: piece.start - 1n, replicas: [...r.replicas] });
        pieces.push({ ...r, ...piece, replicas: r.replicas.map((s) => (s === giver ? taker : s)) });
        if (piece.end < r.end) pieces.push({ ...r, start: piece.end + 1n, replicas: [...r.replicas] });
        ranges.splice(best, 1, ...pieces);
        held.set(giver, held.get(giver)! - take);
        held.set(taker, held.get(taker)! + take);
        handovers.push({ from: giver, to: taker, ...piece });
        moved = true;
        break;
      }
      if (moved) break;
    }
    if (!moved) break;
  }
  if (!handovers.length) return { next: t, handovers };
  return { next: new Topology({ cluster: t.cluster, epoch: t.epoch, vnodes: t.vnodes, shards: t.shards, ranges: merged(ranges) }), handovers };
}

/** Adjacent ranges with the same owner and replicas, joined. */
function merged(ranges: readonly TokenRange[]): TokenRange[] {
  const out: TokenRange[] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last && last.owner === r.owner && last.replicas.join() === r.replicas.join() && last.end + 1n === r.start) out[out.length - 1] = { ...last, end: r.end };
    else out.push(r);
  }
  return out;
}


const min = (a: bigint, b: bigint) => (a < b ? a : b);
const cmp = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);

