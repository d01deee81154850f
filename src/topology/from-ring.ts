// Builds a topology from a ring: vnode i owns (token[i-1], token[i]]; the first vnode also
// owns everything after the last vnode token (the wrap). Adjacent ranges with the same
// owner and replicas are merged, so the result is the smallest exact description.
import { TOKEN_MAX } from '../hash.js';
import type { HashRing } from '../ring/ring.js';
import { Topology, type ShardInfo, type TokenRange } from './topology.js';

export interface FromRingOptions {
  cluster: string;
  epoch: number;
  /** Replica candidates per range: the next distinct shards clockwise (default 0). */
  replicas?: number;
  shards?: Record<string, ShardInfo>;
}

export function topologyFromRing(ring: HashRing, opts: FromRingOptions): Topology {
  const replicas = opts.replicas ?? 0;
  const vn = ring.vnodes;
  const pieces: TokenRange[] = [];
  const push = (start: bigint, end: bigint, index: number) => {
    if (end < start) return;
    const [owner, ...reps] = ring.preferenceList(index, replicas) as [string, ...string[]];
    const prev = pieces[pieces.length - 1];
    if (prev && prev.owner === owner && sameList(prev.replicas, reps) && prev.end + 1n === start) {
      pieces[pieces.length - 1] = { ...prev, end };
    } else {
      pieces.push({ start, end, owner, replicas: reps });
    }
  };
  // [0, t0] → vnode 0; (t(i-1), t(i)] → vnode i; (t(last), MAX] wraps to vnode 0.
  push(0n, vn[0]!.token, 0);
  for (let i = 1; i < vn.length; i++) push(vn[i - 1]!.token + 1n, vn[i]!.token, i);
  if (vn[vn.length - 1]!.token < TOKEN_MAX) push(vn[vn.length - 1]!.token + 1n, TOKEN_MAX, 0);
  const shards: Record<string, ShardInfo> = {};
  for (const s of ring.shards) shards[s] = opts.shards?.[s] ?? {};
  return new Topology({ cluster: opts.cluster, epoch: opts.epoch, vnodes: ring.vnodesPerShard, shards, ranges: pieces });
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
