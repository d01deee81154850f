// The topology after a set of moves: each move hands [start, end] from one owner to another;
// ranges are split at the moves' bounds (the topology is explicit ranges, so any token may be a
// bound). Replication factor is kept: a target that was one of the range's replicas trades
// places with the old owner, which keeps a copy as a replica.
//
// A move may also be a *replica* move: its target gets a copy of the tokens (from their owner,
// before the cutover, exactly as an owner move's target does) and holds it as a replica in the
// next topology, whose replica lists the operation's planner chose. `checkMoves` says whether a
// next topology is what a set of moves makes of a base: its owners are the owner moves applied,
// and every copy it adds is brought by a move before the cutover.
import { TOKEN_MAX, tokenHex } from '../hash.js';
import { Topology, type ShardInfo, type TokenRange } from '../topology/topology.js';

export interface Move {
  from: string;
  to: string;
  start: bigint;
  end: bigint;
  /** 'replica': `to` receives a copy and holds it as a replica; absent: `to` becomes the owner. */
  role?: 'replica';
}

export class MoveError extends Error {}

const ascending = (x: bigint, y: bigint) => (x < y ? -1 : x > y ? 1 : 0);
const byStart = (a: { start: bigint }, b: { start: bigint }) => ascending(a.start, b.start);
const at = (m: Move) => `${m.role === 'replica' ? 'replica move' : 'move'} ${tokenHex(m.start)}–${tokenHex(m.end)}`;

/** Throws MoveError for a move that is malformed, or overlaps another move of its kind (owner moves; replica moves to one target). */
function checkShapes(moves: readonly Move[], shards: Record<string, ShardInfo>): void {
  for (const m of moves) {
    if (m.start > m.end || m.end > TOKEN_MAX) throw new MoveError(`${at(m)}: start must be ≤ end`);
    if (m.from === m.to) throw new MoveError(`${at(m)}: from and to are both ${m.from}`);
    if (!(m.to in shards)) throw new MoveError(`${at(m)}: ${m.to} is not a shard of the topology`);
  }
  const groups = new Map<string, Move[]>();
  for (const m of moves) {
    const g = m.role === 'replica' ? `replica ${m.to}` : 'owner';
    groups.set(g, [...(groups.get(g) ?? []), m]);
  }
  for (const list of groups.values()) {
    const sorted = [...list].sort(byStart);
    sorted.forEach((m, i) => {
      const prev = sorted[i - 1];
      if (prev && prev.end >= m.start) throw new MoveError(`${at(m)}: overlaps another move`);
    });
  }
}

/** `base` with the owner moves of `moves` applied, at epoch `base.epoch + 1`; throws MoveError naming the first move that does not fit. */
export function applyMoves(base: Topology, moves: readonly Move[], shards: Record<string, ShardInfo> = { ...base.shards }): Topology {
  return new Topology({ cluster: base.cluster, epoch: base.epoch + 1, vnodes: base.vnodes, shards, ranges: movedRanges(base, moves, shards) });
}

/** The ranges of `applyMoves`, not yet a Topology (a removed shard may still be listed as a replica). */
function movedRanges(base: Topology, moves: readonly Move[], shards: Record<string, ShardInfo>): TokenRange[] {
  checkShapes(moves, shards);
  const owners = moves.filter((m) => m.role !== 'replica');
  // Every bound of every move becomes a range bound. (A move's start 0 and its end + 1 past the
  // last token are bounds of no range: the filter below drops them.)
  const cuts = [...new Set(owners.flatMap((m) => [m.start, m.end + 1n]))].sort(ascending);
  const pieces: TokenRange[] = [];
  for (const r of base.ranges) {
    let start = r.start;
    for (const c of cuts.filter((c) => c > r.start && c <= r.end)) {
      pieces.push({ ...r, start, end: c - 1n });
      start = c;
    }
    pieces.push({ ...r, start });
  }
  return pieces.map((p) => {
    const m = owners.find((x) => x.start <= p.start && p.end <= x.end);
    if (!m) return p;
    if (p.owner !== m.from) throw new MoveError(`${at(m)}: ${tokenHex(p.start)}–${tokenHex(p.end)} is owned by ${p.owner}, not ${m.from}`);
    const replicas = p.replicas.map((x) => (x === m.to ? m.from : x));
    return { start: p.start, end: p.end, owner: m.to, replicas };
  });
}

/** The spans between the bounds of both topologies' ranges and of `moves`, with the range of each that covers it. */
function spans(a: Ranges, b: Ranges, moves: readonly Move[] = []): { start: bigint; end: bigint; before: TokenRange; after: TokenRange }[] {
  const bounds = new Set<bigint>(); // 0 among them: every range list starts there
  for (const r of [...a.ranges, ...b.ranges, ...moves]) {
    bounds.add(r.start);
    if (r.end < TOKEN_MAX) bounds.add(r.end + 1n);
  }
  const starts = [...bounds].sort(ascending);
  return starts.map((start, i) => ({ start, end: i + 1 < starts.length ? starts[i + 1]! - 1n : TOKEN_MAX, before: rangeAt(a.ranges, start), after: rangeAt(b.ranges, start) }));
}

/** Ranges covering the token space in order: a Topology's, or moved ones not yet made one. */
interface Ranges {
  readonly ranges: readonly TokenRange[];
}

function rangeAt(ranges: readonly TokenRange[], token: bigint): TokenRange {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ranges[mid]!.end < token) lo = mid + 1;
    else hi = mid;
  }
  return ranges[lo]!;
}

const copiesOf = (r: TokenRange) => new Set([r.owner, ...r.replicas]);

/**
 * The replica moves that bring every copy `next` adds (a shard holding tokens it did not hold in
 * `base`, other than by an owner move) from the tokens' owner in `base`; contiguous spans joined.
 */
export function seedMoves(base: Topology, next: Topology, ownerMoves: readonly Move[]): Move[] {
  const out: Move[] = [];
  for (const s of spans(base, next, ownerMoves)) {
    const had = copiesOf(s.before);
    for (const to of [s.after.owner, ...s.after.replicas]) {
      if (had.has(to) || ownerMoves.some((m) => m.to === to && m.start <= s.start && s.end <= m.end)) continue;
      const last = out.findLast((m) => m.to === to);
      if (last && last.from === s.before.owner && last.end + 1n === s.start) last.end = s.end;
      else out.push({ from: s.before.owner, to, start: s.start, end: s.end, role: 'replica' });
    }
  }
  return out;
}

/**
 * Why `next` is not what `moves` make of `base` (undefined when it is): its owners must be the
 * owner moves applied, every copy it adds must come with a move (owner or replica) from the
 * tokens' owner in `base`, and a replica move must bring a copy the target did not hold and
 * holds afterwards. Replica lists may otherwise change (the planner repairs them).
 */
export function checkMoves(base: Topology, moves: readonly Move[], next: Topology): string | undefined {
  let owners: Ranges;
  try {
    owners = { ranges: movedRanges(base, moves, next.shards) };
  } catch (e) {
    if (e instanceof MoveError) return e.message;
    throw e;
  }
  for (const s of spans(owners, next)) {
    if (s.before.owner !== s.after.owner) return `${tokenHex(s.start)}–${tokenHex(s.end)}: the moves give it to ${s.before.owner}, next_topology to ${s.after.owner}`;
  }
  for (const s of spans(base, next, moves)) {
    const had = copiesOf(s.before);
    const covering = moves.filter((m) => m.start <= s.start && s.end <= m.end);
    for (const to of copiesOf(s.after)) {
      if (had.has(to)) continue;
      if (!covering.some((m) => m.to === to && m.from === s.before.owner)) return `${to} holds ${tokenHex(s.start)}–${tokenHex(s.end)} in next_topology, but no move brings it a copy from ${s.before.owner}`;
    }
  }
  for (const m of moves) {
    if (m.role !== 'replica') continue;
    for (const s of spans(base, next, moves)) {
      if (s.end < m.start || s.start > m.end) continue;
      if (s.before.owner !== m.from) return `${at(m)}: ${tokenHex(s.start)}–${tokenHex(s.end)} is owned by ${s.before.owner}, not ${m.from}`;
      if (copiesOf(s.before).has(m.to)) return `${at(m)}: ${m.to} already holds ${tokenHex(s.start)}–${tokenHex(s.end)}`;
      if (!s.after.replicas.includes(m.to)) return `${at(m)}: ${m.to} is not a replica of ${tokenHex(s.start)}–${tokenHex(s.end)} in next_topology`;
    }
  }
  return undefined;
}

/** Whether two topologies assign every token the same owner and replicas (bounds may differ). */
export function sameAssignment(a: Topology, b: Topology): boolean {
  const bounds = [...new Set([...a.ranges, ...b.ranges].map((r) => r.start))];
  return bounds.every((t) => {
    const [x, y] = [a.rangeOf(t), b.rangeOf(t)];
    return x.owner === y.owner && x.replicas.join() === y.replicas.join();
  });
}
