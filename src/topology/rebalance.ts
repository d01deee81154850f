// Adding or removing a shard with the least movement: shards above the new equal share give
// their excess, shards below take their shortfall (passed along where certified ranges require).
import { tokenHex, xxh64 } from '../hash.js';
import { allowedSpan, checkCoverage, checkRoom, DEFAULT_RANGES_PER_SHARD, stripedDemands, type AllowedRange } from './balanced-plan.js';
import { FlowGraph } from './min-cost-flow.js';
import { diffTopologies } from './diff.js';
import { replicaRule, replicasFor } from './replicas.js';
import { balanceReplicas } from './replica-balance.js';
import { equalShares, intersect, layTokens, PlanError, SPACE, spanSize, WHOLE, type Piece, type Span } from './token-schedule.js';
import { SHARD_ID_RE, Topology, type ShardInfo, type TokenRange } from './topology.js';

export interface PlannedMove {
  readonly from: string;
  readonly to: string;
  /** Inclusive bounds. */
  readonly tokenStart: bigint;
  readonly tokenEnd: bigint;
}

export interface RebalancePlan {
  readonly next: Topology;
  readonly moves: readonly PlannedMove[];
  readonly tokensMoved: bigint;
}

export interface RebalanceOptions {
  /** Default: the current epoch + 1. */
  epoch?: number;
  /** Endpoint and datacenter of the added shard. */
  info?: ShardInfo;
  allowed?: AllowedRange;
}

/** Adds `shard`: every shard gives it 1/N − 1/(N+1) of the space, so it moves 1/(N+1) in all. */
export function planAddShard(current: Topology, shard: string, opts: RebalanceOptions = {}): RebalancePlan {
  if (!SHARD_ID_RE.test(shard)) throw new PlanError(`"${shard}" is not a valid shard id (e.g. shard-004)`);
  if (current.ranges.some((r) => r.owner === shard)) throw new PlanError(`${shard} already owns tokens in this topology`);
  return rebalance(current, { ...current.shards, [shard]: opts.info ?? current.shards[shard] ?? {} }, opts, shard);
}

/** Removes `shard`: its tokens go to the others, equally; nothing else moves. */
export function planRemoveShard(current: Topology, shard: string, opts: RebalanceOptions = {}): RebalancePlan {
  if (!(shard in current.shards)) throw new PlanError(`${shard} is not in this topology`);
  const shards = { ...current.shards };
  delete shards[shard];
  if (Object.keys(shards).length === 0) throw new PlanError(`${shard} is the last shard; a topology needs at least one`);
  return rebalance(current, shards, opts, shard);
}

/** Re-balances `current` onto `shards` (equal shares), moving as few tokens as there can be. */
export function rebalance(current: Topology, shards: Record<string, ShardInfo>, opts: RebalanceOptions, salt: string): RebalancePlan {
  const ids = Object.keys(shards);
  const window = new Map(ids.map((s) => [s, allowedSpan(opts.allowed, s)]));
  checkCoverage([...window.values()]);
  // Regions between certified-range edges: inside one, a shard may own all of it or none.
  const regions = elementary([...window.values()]);
  const hold = regions.map(() => new Map<string, bigint>());
  // Tokens that must move whatever happens: a leaving shard's, and any outside a shard's certified range.
  const forced = regions.map((): Piece[] => []);
  let g = 0;
  for (const r of current.ranges) {
    while (regions[g]!.end < r.start) g++;
    for (let k = g; k < regions.length && regions[k]!.start <= r.end; k++) {
      const part = intersect(r, regions[k]!)!;
      if (mayOwn(window.get(r.owner), regions[k]!)) hold[k]!.set(r.owner, (hold[k]!.get(r.owner) ?? 0n) + spanSize(part));
      else forced[k]!.push({ ...part, owner: r.owner });
    }
  }
  const kept = new Map(ids.map((s) => [s, hold.reduce((a, h) => a + (h.get(s) ?? 0n), 0n)]));
  // The one-token roundings go to shards whose certified range has room for one more token
  // (a range of exactly 1/N has none), and among those to the ones that hold the most, so they
  // move nothing.
  const base = SPACE / BigInt(ids.length);
  const room = (s: string) => (spanSize(window.get(s)!) > base ? 1 : 0);
  const order = [...ids].sort((a, b) => room(b) - room(a) || (kept.get(b)! > kept.get(a)! ? 1 : kept.get(b)! < kept.get(a)! ? -1 : a < b ? -1 : 1));
  const targets = equalShares(ids, SPACE, order);
  for (const s of ids) checkRoom(s, window.get(s)!, targets.get(s)!);
  const excess = new Map<string, bigint>();
  const need = new Map<string, bigint>();
  for (const s of ids) {
    const d = kept.get(s)! - targets.get(s)!;
    if (d > 0n) excess.set(s, d);
    if (d < 0n) need.set(s, -d);
  }
  const flows = regions.length === 1 ? [{ give: excess, take: need }] : leastMoves(regions, hold, forced, excess, need, window);
  if (!flows) {
    // No layout at all gives equal shares inside the certified ranges; laying one out anew says why.
    layTokens([WHOLE], stripedDemands(targets, opts.allowed, DEFAULT_RANGES_PER_SHARD));
    throw new PlanError('the certified token ranges do not allow equal shares');
  }
  const assignment: Piece[] = [];
  flows.forEach(({ give, take }, k) => {
    const free = [...forced[k]!, ...gives(current, give, [regions[k]!], window, salt)].sort((a, b) => (a.start < b.start ? -1 : 1));
    const demands = [...take].map(([shard, amount]) => ({ shard, amount, window: regions[k]!, order: [xxh64(`${salt}:${shard}`)] }));
    assignment.push(...layTokens(free, demands));
  });
  // Replica lists repaired where owners changed; an added shard then takes its part of the replicas too.
  const added = ids.filter((s) => !(s in current.shards));
  const next = balanceReplicas(new Topology({
    cluster: current.cluster,
    epoch: opts.epoch ?? current.epoch + 1,
    vnodes: 0,
    shards,
    ranges: overlay(current.ranges, assignment, shards, window),
  }), added, opts.allowed).next;
  const moves = diffTopologies(current, next).map((m) => ({ from: m.from, to: m.to, tokenStart: m.start, tokenEnd: m.end }));
  const tokensMoved = moves.reduce((a, m) => a + m.tokenEnd - m.tokenStart + 1n, 0n);
  return { next, moves, tokensMoved };
}

/**
 * Who gives and who takes how much in each region, moving the fewest tokens: a min-cost flow
 * where handing a token to another shard inside a region costs one. A shard that gives in
 * one region and takes in another passes tokens along when certified ranges leave no direct
 * way. Undefined when no layout gives every shard its share.
 */
function leastMoves(
  regions: readonly Span[],
  hold: readonly ReadonlyMap<string, bigint>[],
  forced: readonly Piece[][],
  excess: ReadonlyMap<string, bigint>,
  need: ReadonlyMap<string, bigint>,
  window: ReadonlyMap<string, Span>,
): { give: Map<string, bigint>; take: Map<string, bigint> }[] | undefined {
  const ids = [...window.keys()];
  const node = new Map(ids.map((s, i) => [s, 2 + i]));
  const region = (k: number) => 2 + ids.length + k;
  const f = new FlowGraph(2 + ids.length + regions.length);
  let supply = 0n;
  for (const [s, e] of excess) {
    f.add(0, node.get(s)!, e, 0);
    supply += e;
  }
  for (const [s, n] of need) f.add(node.get(s)!, 1, n, 0);
  const giving: [string, number, [number, number]][] = [];
  const taking: [string, number, [number, number]][] = [];
  regions.forEach((g, k) => {
    const loose = forced[k]!.reduce((a, p) => a + spanSize(p), 0n);
    if (loose > 0n) f.add(0, region(k), loose, 0);
    supply += loose;
    for (const [s, held] of hold[k]!) giving.push([s, k, f.add(node.get(s)!, region(k), held, 0)]);
    for (const s of ids) if (mayOwn(window.get(s), g)) taking.push([s, k, f.add(region(k), node.get(s)!, spanSize(g), 1)]);
  });
  if (f.run(0, 1) !== supply) return undefined;
  const out = regions.map(() => ({ give: new Map<string, bigint>(), take: new Map<string, bigint>() }));
  for (const [s, k, e] of giving) if (f.flowOn(e) > 0n) out[k]!.give.set(s, f.flowOn(e));
  for (const [s, k, e] of taking) if (f.flowOn(e) > 0n) out[k]!.take.set(s, f.flowOn(e));
  return out;
}

/**
 * Chooses the tokens each shard above its target gives up (only inside `accept`, where a
 * receiver may own them). Two neighbours that both give do so on either side of their common
 * boundary, so the receiver gets one range instead of two; the others give the end of their
 * largest range (ties broken by a hash, which scatters the pieces over the space).
 */
function gives(current: Topology, excess: ReadonlyMap<string, bigint>, accept: Span[], window: ReadonlyMap<string, Span>, salt: string): Piece[] {
  const ranges = current.ranges;
  const cands = ranges.map((r) => (excess.has(r.owner) ? accept.flatMap((a) => intersect(r, a) ?? []).flatMap((x) => intersect(x, window.get(r.owner)!) ?? []) : []));
  const out: Piece[] = [];
  const done = new Set<string>();
  const hash = (s: Span) => xxh64(`${salt}@${tokenHex(s.start)}`);
  const bySize = (a: Span, b: Span) => {
    const d = spanSize(b) - spanSize(a);
    return d !== 0n ? (d > 0n ? 1 : -1) : hash(a) < hash(b) ? -1 : 1;
  };
  const boundaries = ranges.slice(0, -1).map((_, i) => i).filter((i) => ranges[i]!.owner !== ranges[i + 1]!.owner && excess.has(ranges[i]!.owner) && excess.has(ranges[i + 1]!.owner));
  const smaller = (i: number) => (spanSize(ranges[i]!) < spanSize(ranges[i + 1]!) ? ranges[i]! : ranges[i + 1]!);
  boundaries.sort((i, j) => bySize(smaller(i), smaller(j)));
  for (const i of boundaries) {
    const a = ranges[i]!;
    const b = ranges[i + 1]!;
    if (done.has(a.owner) || done.has(b.owner)) continue;
    const tail = cands[i]!.at(-1);
    const head = cands[i + 1]![0];
    const ea = excess.get(a.owner)!;
    const eb = excess.get(b.owner)!;
    if (!tail || !head || tail.end !== a.end || head.start !== b.start || spanSize(tail) < ea || spanSize(head) < eb) continue;
    out.push({ start: a.end - ea + 1n, end: a.end, owner: a.owner }, { start: b.start, end: b.start + eb - 1n, owner: b.owner });
    done.add(a.owner).add(b.owner);
  }
  const spans = new Map<string, Span[]>();
  ranges.forEach((r, i) => {
    if (excess.has(r.owner) && !done.has(r.owner)) spans.set(r.owner, [...(spans.get(r.owner) ?? []), ...cands[i]!]);
  });
  for (const [shard, list] of spans) {
    let left = excess.get(shard)!;
    for (const s of list.sort(bySize)) {
      const take = spanSize(s) < left ? spanSize(s) : left;
      out.push({ start: s.end - take + 1n, end: s.end, owner: shard });
      left -= take;
      if (left === 0n) break;
    }
    if (left > 0n) throw new PlanError(`${shard} cannot give ${left} tokens where the shards that need them may own them`);
  }
  for (const shard of excess.keys()) {
    if (!done.has(shard) && !spans.has(shard)) throw new PlanError(`${shard} owns no tokens the shards that need them may own`);
  }
  return out;
}

/**
 * The next ranges: `current` with the tokens in `assignment` given to their new owners. A
 * piece keeps the replicas of the range it came from; where its owner changed or a replica
 * left, the replicas are repaired by the ring's rule (keeping every one it can).
 */
function overlay(current: readonly TokenRange[], assignment: readonly Piece[], shards: Record<string, ShardInfo>, window: ReadonlyMap<string, Span>): TokenRange[] {
  const raw: Cut[] = [];
  const emit = (start: bigint, end: bigint, owner: string, was: TokenRange) => {
    const touched = owner !== was.owner || was.replicas.some((s) => !(s in shards));
    const last = raw[raw.length - 1];
    if (last && last.owner === owner && last.touched === touched && sameList(last.was.replicas, was.replicas)) last.end = end;
    else raw.push({ start, end, owner, was, touched });
  };
  let j = 0;
  for (const r of current) {
    let pos = r.start;
    while (j < assignment.length && assignment[j]!.start <= r.end) {
      const p = assignment[j]!;
      if (p.start > pos) emit(pos, p.start - 1n, r.owner, r);
      const end = p.end < r.end ? p.end : r.end;
      emit(p.start > pos ? p.start : pos, end, p.owner, r);
      pos = end + 1n;
      if (p.end > r.end) break;
      j++;
    }
    if (pos <= r.end) emit(pos, r.end, r.owner, r);
  }
  snapSlivers(raw, window);
  const rule = replicaRule(raw.map((x) => x.owner), shards);
  const out: TokenRange[] = [];
  raw.forEach((x, i) => {
    const replicas = x.touched ? replicasFor(rule, i, x.was.replicas.length, x.was.replicas) : [...x.was.replicas];
    const last = out[out.length - 1];
    if (last && last.owner === x.owner && sameList(last.replicas, replicas)) out[out.length - 1] = { ...last, end: x.end };
    else out.push({ start: x.start, end: x.end, owner: x.owner, replicas });
  });
  return out;
}

interface Cut {
  start: bigint;
  end: bigint;
  owner: string;
  /** The current range this piece was cut from (the first one, when pieces merged). */
  was: TokenRange;
  touched: boolean;
}

/**
 * Below this size a piece cut by the plan is a rounding sliver: equal shares are rounded to
 * the token, so a shard's excess can be its range plus one token, or a receiver's share can
 * end one token before a range does. 2^24 tokens is 10^-12 of the space.
 */
const SLIVER = 1n << 24n;

/**
 * Joins each sliver the plan cut to a neighbour that may own it, preferring the shard that
 * owned it before (so it does not move), which leaves shares off by at most a sliver.
 */
function snapSlivers(raw: Cut[], window: ReadonlyMap<string, Span>): void {
  for (let i = 0; i < raw.length; i++) {
    const x = raw[i]!;
    if (x.end - x.start + 1n >= SLIVER || (x.start === x.was.start && x.end === x.was.end)) continue;
    const may = (n: Cut | undefined): n is Cut => {
      const w = n && window.get(n.owner);
      return !!w && w.start <= x.start && x.end <= w.end;
    };
    const [left, right] = [raw[i - 1], raw[i + 1]];
    const keep = [left, right].find((n) => may(n) && n.owner === x.was.owner);
    const into = keep ?? [left, right].find((n) => may(n) && n.was === x.was) ?? [left, right].find(may);
    if (!into) continue;
    if (into === left) left.end = x.end;
    else into.start = x.start;
    raw.splice(i, 1);
    i--;
  }
}

function mayOwn(w: Span | undefined, g: Span): boolean {
  return !!w && w.start <= g.start && g.end <= w.end;
}

/** The spans between consecutive edges of the given spans, covering the whole space. */
function elementary(spans: readonly Span[]): Span[] {
  const edges = [...new Set([0n, ...spans.flatMap((w) => [w.start, w.end + 1n]), SPACE])].filter((e) => e <= SPACE).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return edges.slice(0, -1).map((start, i) => ({ start, end: edges[i + 1]! - 1n }));
}


function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
