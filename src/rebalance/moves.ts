// The topology after a set of moves: each move hands [start, end] from one owner to another;
// ranges are split at the moves' bounds (the topology is explicit ranges, so any token may be a
// bound). Replication factor is kept: a target that was one of the range's replicas trades
// places with the old owner, which keeps a copy as a replica.
import { TOKEN_MAX, tokenHex } from '../hash.js';
import { Topology, type ShardInfo, type TokenRange } from '../topology/topology.js';

export interface Move {
  from: string;
  to: string;
  start: bigint;
  end: bigint;
}

export class MoveError extends Error {}

/** `base` with `moves` applied, at epoch `base.epoch + 1`; throws MoveError naming the first move that does not fit. */
export function applyMoves(base: Topology, moves: readonly Move[], shards: Record<string, ShardInfo> = { ...base.shards }): Topology {
  const sorted = [...moves].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  sorted.forEach((m, i) => {
    const at = `move ${tokenHex(m.start)}–${tokenHex(m.end)}`;
    if (m.start > m.end || m.end > TOKEN_MAX) throw new MoveError(`${at}: start must be ≤ end`);
    if (m.from === m.to) throw new MoveError(`${at}: from and to are both ${m.from}`);
    if (!(m.to in shards)) throw new MoveError(`${at}: ${m.to} is not a shard of the topology`);
    const prev = sorted[i - 1];
    if (prev && prev.end >= m.start) throw new MoveError(`${at}: overlaps another move`);
  });
  // Every bound of every move becomes a range bound.
  const cuts = new Set<bigint>();
  for (const m of sorted) {
    if (m.start > 0n) cuts.add(m.start);
    if (m.end < TOKEN_MAX) cuts.add(m.end + 1n);
  }
  const pieces: TokenRange[] = [];
  for (const r of base.ranges) {
    let start = r.start;
    for (const c of [...cuts].filter((c) => c > r.start && c <= r.end).sort((a, b) => (a < b ? -1 : 1))) {
      pieces.push({ ...r, start, end: c - 1n });
      start = c;
    }
    pieces.push({ ...r, start });
  }
  const ranges = pieces.map((p) => {
    const m = sorted.find((x) => x.start <= p.start && p.end <= x.end);
    if (!m) return p;
    if (p.owner !== m.from) throw new MoveError(`move ${tokenHex(m.start)}–${tokenHex(m.end)}: ${tokenHex(p.start)}–${tokenHex(p.end)} is owned by ${p.owner}, not ${m.from}`);
    const replicas = p.replicas.includes(m.to) ? p.replicas.map((x) => (x === m.to ? m.from : x)) : [...p.replicas];
    return { start: p.start, end: p.end, owner: m.to, replicas };
  });
  return new Topology({ cluster: base.cluster, epoch: base.epoch + 1, vnodes: base.vnodes, shards, ranges });
}

/** Whether two topologies assign every token the same owner and replicas (bounds may differ). */
export function sameAssignment(a: Topology, b: Topology): boolean {
  const bounds = [...new Set([...a.ranges, ...b.ranges].map((r) => r.start))];
  return bounds.every((t) => {
    const [x, y] = [a.rangeOf(t), b.rangeOf(t)];
    return x.owner === y.owner && x.replicas.join() === y.replicas.join();
  });
}
