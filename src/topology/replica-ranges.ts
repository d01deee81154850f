// Which token ranges a replica holds for a primary in a topology, and a short digest of that
// list: the replica announces the digest with its position, and the primary counts the
// position only when it names the same ranges (a position for other ranges proves nothing).
import { createHash } from 'node:crypto';
import { tokenHex } from '../hash.js';
import type { Topology } from './topology.js';

export interface TokenSpan {
  start: bigint;
  end: bigint;
}

/** Ranges owned by `primary` that list `replica` among their replicas, in token order, adjacent ones merged. */
export function replicaRanges(t: Topology, primary: string, replica: string): TokenSpan[] {
  const out: TokenSpan[] = [];
  for (const r of t.ranges) {
    if (r.owner !== primary || !r.replicas.includes(replica)) continue;
    const prev = out[out.length - 1];
    if (prev && prev.end + 1n === r.start) prev.end = r.end;
    else out.push({ start: r.start, end: r.end });
  }
  return out;
}

/** Primaries this shard is a replica of, each with its ranges. */
export function primariesOf(t: Topology, replica: string): Map<string, TokenSpan[]> {
  const out = new Map<string, TokenSpan[]>();
  for (const p of new Set(t.ranges.filter((r) => r.replicas.includes(replica)).map((r) => r.owner))) out.set(p, replicaRanges(t, p, replica));
  return out;
}

export function rangesDigest(ranges: readonly TokenSpan[]): string {
  const h = createHash('sha256');
  for (const r of ranges) h.update(`${tokenHex(r.start)}-${tokenHex(r.end)};`);
  return h.digest('hex').slice(0, 16);
}

/** Tokens `self` replicated in `before` (not as the owner) and holds no copy of in `after`, adjacent ones merged. */
export function droppedReplicaSpans(before: Topology, after: Topology, self: string): TokenSpan[] {
  const bounds = new Set<bigint>();
  for (const r of [...before.ranges, ...after.ranges]) bounds.add(r.start);
  const starts = [...bounds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const out: TokenSpan[] = [];
  starts.forEach((start, i) => {
    const was = before.rangeOf(start);
    const now = after.rangeOf(start);
    if (!was.replicas.includes(self) || now.owner === self || now.replicas.includes(self)) return;
    const end = i + 1 < starts.length ? starts[i + 1]! - 1n : was.end > now.end ? now.end : was.end;
    const prev = out[out.length - 1];
    if (prev && prev.end + 1n === start) prev.end = end;
    else out.push({ start, end });
  });
  return out;
}

/** The tokens of `a` not in `b` (both sorted, non-overlapping), as spans in token order. */
export function subtractSpans(a: readonly TokenSpan[], b: readonly TokenSpan[]): TokenSpan[] {
  const out: TokenSpan[] = [];
  for (const x of a) {
    let start = x.start;
    for (const y of b) {
      if (y.end < start || y.start > x.end) continue;
      if (y.start > start) out.push({ start, end: y.start - 1n });
      start = y.end + 1n;
      if (start > x.end) break;
    }
    if (start <= x.end) out.push({ start, end: x.end });
  }
  return out;
}

/** The tokens both `a` and `b` hold (both sorted, non-overlapping). */
export function intersectSpans(a: readonly TokenSpan[], b: readonly TokenSpan[]): TokenSpan[] {
  return subtractSpans(a, subtractSpans(a, b));
}

/** Two span lists as one sorted list, overlapping and adjacent spans joined. */
export function unionSpans(a: readonly TokenSpan[], b: readonly TokenSpan[]): TokenSpan[] {
  const out: TokenSpan[] = [];
  for (const x of [...a, ...b].sort((p, q) => (p.start < q.start ? -1 : p.start > q.start ? 1 : 0))) {
    const last = out[out.length - 1];
    if (last && x.start <= last.end + 1n) last.end = x.end > last.end ? x.end : last.end;
    else out.push({ ...x });
  }
  return out;
}
