// A balanced topology that does not follow the ring: every shard gets an equal share of the
// 2^64 tokens (to the token), in a few ranges scattered over the space, inside its certified range.
import { xxh64 } from '../hash.js';
import { replicaRule, replicasFor } from './replicas.js';
import { equalShares, layTokens, PlanError, sharePct, spanSize, spanText, WHOLE, type Demand, type Span } from './token-schedule.js';
import { SHARD_ID_RE, Topology, type ShardInfo, type TokenRange } from './topology.js';

/**
 * Ranges per shard in a fresh plan. A shard's replicas are the shards after its ranges
 * (clockwise), and each stripe of the space orders the shards differently, so a shard's 8
 * ranges have up to 8 different successors: when it fails, its reads and its re-replication
 * fall on up to 8 × replicas shards instead of the same few, and a hot spot in one region of
 * the space lands on one eighth of a shard. More ranges spread that further but grow the
 * document every sidecar holds (8 × 1,000 shards = 8,000 ranges, ~1 MB of JSON; the 150-vnode
 * ring gives 14,828 ranges for 100 shards).
 */
export const DEFAULT_RANGES_PER_SHARD = 8;
export const MAX_RANGES_PER_SHARD = 64;

/** The token range a shard may own (its certificate's), or undefined for all of them. */
export type AllowedRange = (shard: string) => Span | undefined;

export interface BalancedOptions {
  cluster: string;
  epoch: number;
  /** Replicas per range, placed by `replicasFor` (default 0). */
  replicas?: number;
  shards?: Record<string, ShardInfo>;
  rangesPerShard?: number;
  allowed?: AllowedRange;
}

export function planBalanced(ids: readonly string[], opts: BalancedOptions): Topology {
  if (ids.length === 0) throw new PlanError('a topology needs at least one shard');
  for (const id of ids) if (!SHARD_ID_RE.test(id)) throw new PlanError(`"${id}" is not a valid shard id (e.g. shard-001)`);
  if (new Set(ids).size !== ids.length) throw new PlanError('shard ids must be unique');
  const k = opts.rangesPerShard ?? DEFAULT_RANGES_PER_SHARD;
  if (!Number.isInteger(k) || k < 1 || k > MAX_RANGES_PER_SHARD) {
    throw new PlanError(`ranges per shard must be an integer from 1 to ${MAX_RANGES_PER_SHARD}`);
  }
  const replicas = opts.replicas ?? 0;
  if (!Number.isInteger(replicas) || replicas < 0 || replicas > ids.length - 1) {
    throw new PlanError(`replicas must be an integer from 0 to ${ids.length - 1} (the other shards)`);
  }
  const pieces = layTokens([WHOLE], stripedDemands(equalShares(ids), opts.allowed, k));
  const shards: Record<string, ShardInfo> = {};
  for (const id of ids) shards[id] = opts.shards?.[id] ?? {};
  return new Topology({ cluster: opts.cluster, epoch: opts.epoch, vnodes: 0, shards, ranges: withReplicas(pieces, shards, replicas) });
}

/**
 * Each shard's share as `k` pieces, checked against its certified range. Stripe j of the
 * space holds every shard's j-th piece, in an order hashed from (shard, j), so each stripe
 * orders the shards differently. A certified range narrower than the space comes first:
 * pieces are laid earliest range end first, and the stripes only break ties.
 */
export function stripedDemands(shares: ReadonlyMap<string, bigint>, allowed: AllowedRange | undefined, k: number): Demand[] {
  const demands: Demand[] = [];
  checkCoverage([...shares.keys()].map((s) => allowedSpan(allowed, s)));
  for (const [shard, share] of shares) {
    const window = allowedSpan(allowed, shard);
    checkRoom(shard, window, share);
    [...equalShares([...Array(k).keys()].map(String), share).values()].forEach((amount, j) =>
      demands.push({ shard, amount, window, order: [j, xxh64(`${shard}#${j}`)] }),
    );
  }
  return demands;
}

/** Gives each owner-only piece its replicas by the ring's rule. */
export function withReplicas(pieces: readonly { start: bigint; end: bigint; owner: string }[], shards: Record<string, ShardInfo>, count: number): TokenRange[] {
  const rule = replicaRule(pieces.map((p) => p.owner), shards);
  return pieces.map((p, i) => ({ start: p.start, end: p.end, owner: p.owner, replicas: count ? replicasFor(rule, i, count) : [] }));
}

export function allowedSpan(allowed: AllowedRange | undefined, shard: string): Span {
  const w = allowed?.(shard) ?? WHOLE;
  if (w.start > w.end) throw new PlanError(`${shard}'s certified token range ${spanText(w)} is empty`);
  return w;
}

export function checkRoom(shard: string, window: Span, share: bigint): void {
  if (spanSize(window) < share) {
    throw new PlanError(
      `${shard}'s certified token range ${spanText(window)} holds ${sharePct(spanSize(window))} of the token space, less than its equal share of ${sharePct(share)}`,
    );
  }
}

/** Every token must be ownable by some shard: the certified ranges must cover the space. */
export function checkCoverage(windows: readonly Span[]): void {
  let next = 0n;
  for (const w of [...windows].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0))) {
    if (w.start > next) break;
    if (w.end + 1n > next) next = w.end + 1n;
  }
  if (next <= WHOLE.end) {
    const gapEnd = windows.filter((w) => w.start > next).reduce((a, w) => (w.start - 1n < a ? w.start - 1n : a), WHOLE.end);
    throw new PlanError(`no shard may own ${spanText({ start: next, end: gapEnd })}: it lies outside every shard's certified token range`);
  }
}
