// The balanced planner against bounds computed here from N alone: token-share spread ≤ 1 %,
// adding a shard to N moves ≤ 1.05/(N+1), removing one moves only its tokens; replicas and
// certified ranges respected; every plan reads back through the document parser.
import t, { type Test } from 'tap';
import { planBalanced, DEFAULT_RANGES_PER_SHARD, type AllowedRange } from '../../../src/topology/balanced-plan.js';
import { planAddShard, planRemoveShard, type RebalancePlan } from '../../../src/topology/rebalance.js';
import { spread } from '../../../src/topology/balance.js';
import { parseTopology, serializeTopology, toDocument } from '../../../src/topology/document.js';
import type { Topology } from '../../../src/topology/topology.js';
import { TOKEN_MAX } from '../../../src/hash.js';
import { SeededRandom } from '../../../src/runtime.js';

const SPACE = TOKEN_MAX + 1n;
const SPREAD_BOUND = 0.01;
const ids = (n: number, prefix = 'shard-') => Array.from({ length: n }, (_, i) => `${prefix}${String(i + 1).padStart(4, '0')}`);
const frac = (tokens: bigint) => Number(tokens) / 2 ** 64;

/** Tokens per shard, summed from the ranges here (not by the code under test). */
function tokensOf(topo: Topology): Map<string, bigint> {
  const m = new Map(Object.keys(topo.shards).map((s) => [s, 0n]));
  for (const r of topo.ranges) m.set(r.owner, m.get(r.owner)! + r.end - r.start + 1n);
  return m;
}

function tokenSpread(topo: Topology): number {
  return spread([...tokensOf(topo).values()].map(frac)).relStdDev;
}

/** The document parser accepts the plan, and coverage holds as checked here. */
function assertInvariants(t: Test, topo: Topology, what: string): void {
  const back = parseTopology(serializeTopology(topo));
  t.same(toDocument(back), toDocument(topo), `${what}: the serialized document parses back to the same topology`);
  let next = 0n;
  let bad = 0;
  for (const r of topo.ranges) {
    if (r.start !== next || r.end < r.start) bad++;
    if (!(r.owner in topo.shards)) bad++;
    if (r.replicas.includes(r.owner) || new Set(r.replicas).size !== r.replicas.length) bad++;
    next = r.end + 1n;
  }
  t.equal(next, SPACE, `${what}: the ranges end at 2^64-1`);
  t.equal(bad, 0, `${what}: sorted, contiguous, known owners, replicas distinct and never the owner`);
}

/** Tokens whose owner differs between a and b, by a sweep written here. */
function changedTokens(a: Topology, b: Topology): bigint {
  let i = 0;
  let j = 0;
  let start = 0n;
  let changed = 0n;
  while (i < a.ranges.length && j < b.ranges.length) {
    const ra = a.ranges[i]!;
    const rb = b.ranges[j]!;
    const end = ra.end < rb.end ? ra.end : rb.end;
    if (ra.owner !== rb.owner) changed += end - start + 1n;
    if (ra.end === end) i++;
    if (rb.end === end) j++;
    start = end + 1n;
  }
  return changed;
}

/** The moves, applied to `before`, give `plan.next`'s owner for sampled tokens and at every move edge. */
function assertMovesExplain(t: Test, before: Topology, plan: RebalancePlan, what: string): void {
  const r = new SeededRandom(9);
  const probes = [...Array(2000)].map(() => r.bytes(8).readBigUInt64BE());
  for (const m of plan.moves) probes.push(m.tokenStart, m.tokenEnd);
  let wrong = 0;
  for (const tok of probes) {
    const move = plan.moves.find((m) => tok >= m.tokenStart && tok <= m.tokenEnd);
    if ((move ? move.to : before.ownerOf(tok)) !== plan.next.ownerOf(tok)) wrong++;
    if (move && move.from !== before.ownerOf(tok)) wrong++;
  }
  t.equal(wrong, 0, `${what}: the moves account for every change of owner`);
  t.ok(plan.moves.every((m) => m.from !== m.to && m.tokenStart <= m.tokenEnd), `${what}: moves are ranges between different shards`);
  const listed = plan.moves.reduce((a, m) => a + m.tokenEnd - m.tokenStart + 1n, 0n);
  t.equal(listed, changedTokens(before, plan.next), `${what}: the moves list exactly the tokens that change owner`);
}

t.test(`spread ≤ ${SPREAD_BOUND * 100} % for 3, 10, 100 and 1,000 shards, in at most ${DEFAULT_RANGES_PER_SHARD} scattered ranges each`, async (t) => {
  for (const n of [3, 10, 100, 1000]) {
    const topo = planBalanced(ids(n), { cluster: 'c', epoch: 1, replicas: Math.min(2, n - 1) });
    const s = tokenSpread(topo);
    t.ok(s <= SPREAD_BOUND, `${n} shards: spread ${(s * 100).toExponential(2)} % ≤ 1 %`);
    const each = SPACE / BigInt(n);
    const worst = [...tokensOf(topo).values()].reduce((a, v) => (v - each > a ? v - each : each - v > a ? each - v : a), 0n);
    t.ok(worst <= 1n, `${n} shards: every share is 2^64/${n} to the token (off by ${worst})`);
    const perShard = new Map<string, number>();
    for (const r of topo.ranges) perShard.set(r.owner, (perShard.get(r.owner) ?? 0) + 1);
    const counts = [...perShard.values()];
    t.equal(perShard.size, n, `${n} shards: every shard owns tokens`);
    t.ok(Math.max(...counts) <= DEFAULT_RANGES_PER_SHARD && Math.min(...counts) >= 2, `${n} shards: 2…${DEFAULT_RANGES_PER_SHARD} ranges per shard (${Math.min(...counts)}…${Math.max(...counts)})`);
    assertInvariants(t, topo, `${n} shards`);
  }
});

t.test('the ring this replaces fails the same bound (the test can tell them apart)', async (t) => {
  const { HashRing } = await import('../../../src/ring/ring.js');
  const { topologyFromRing } = await import('../../../src/topology/from-ring.js');
  const ring = topologyFromRing(new HashRing(ids(10), 150), { cluster: 'c', epoch: 1 });
  t.ok(tokenSpread(ring) > SPREAD_BOUND, `the 150-vnode ring's spread for 10 shards is ${(tokenSpread(ring) * 100).toFixed(1)} %`);
});

for (const n of [3, 10, 100]) {
  t.test(`adding a shard to ${n}: moves ≤ 1.05/${n + 1} of the space, all to it, and leaves the spread ≤ 1 %`, async (t) => {
    const replicas = Math.min(2, n - 1);
    const current = planBalanced(ids(n), { cluster: 'c', epoch: 4, replicas });
    const plan = planAddShard(current, 'shard-new');
    const bound = 1.05 / (n + 1);
    const moved = frac(changedTokens(current, plan.next));
    t.ok(moved <= bound, `moved ${(moved * 100).toFixed(4)} % ≤ ${(bound * 100).toFixed(4)} %`);
    t.ok(moved >= 1 / (n + 1) - 1e-12, 'and no less than the new shard’s equal share (it must get that much)');
    t.ok(plan.moves.every((m) => m.to === 'shard-new'), 'every move goes to the new shard');
    const s = tokenSpread(plan.next);
    t.ok(s <= SPREAD_BOUND, `spread after ${(s * 100).toExponential(2)} % ≤ 1 %`);
    t.equal(plan.next.epoch, 5, 'the epoch goes up by one');
    assertMovesExplain(t, current, plan, `add to ${n}`);
    assertInvariants(t, plan.next, `add to ${n}`);
    // Replicas follow the tokens, and the new shard takes its part of them: each new range
    // keeps the replicas of the range it was cut from, or has one of them replaced by the new shard.
    let changed = 0;
    const replicaTokens = new Map<string, bigint>();
    for (const r of plan.next.ranges) {
      const was = current.rangeOf(r.start);
      const swapped = r.replicas.filter((x, i) => x !== was.replicas[i]);
      if (r.end > was.end || r.replicas.length !== was.replicas.length || !(swapped.length === 0 || (swapped.length === 1 && swapped[0] === 'shard-new'))) changed++;
      for (const x of r.replicas) replicaTokens.set(x, (replicaTokens.get(x) ?? 0n) + r.end - r.start + 1n);
    }
    t.equal(changed, 0, 'every range lies inside one former range and keeps its replicas, or hands one to the new shard');
    const copied = frac(replicaTokens.get('shard-new') ?? 0n);
    t.ok(copied <= (1.05 * replicas) / (n + 1), `replica tokens copied to the new shard: ${(copied * 100).toFixed(4)} % ≤ 1.05 × ${replicas}/${n + 1}`);
    const mean = replicas / (n + 1);
    t.ok(Math.abs(copied - mean) / mean <= SPREAD_BOUND, `and that is its equal part of the replicas, ${(mean * 100).toFixed(4)} %, within 1 %`);
    const ranges = plan.next.ranges.filter((r) => r.owner === 'shard-new').length;
    t.ok(ranges <= n * 2, `the new shard gets ${ranges} ranges (at most one or two from each shard)`);
  });

  t.test(`removing a shard from ${n}: moves only its tokens, spreads them equally, and takes it out of every replica list`, async (t) => {
    const replicas = Math.min(2, n - 2);
    const current = planBalanced(ids(n), { cluster: 'c', epoch: 1, replicas });
    const gone = ids(n)[1]!;
    const itsTokens = tokensOf(current).get(gone)!;
    const plan = planRemoveShard(current, gone);
    t.equal(changedTokens(current, plan.next), itsTokens, `moved exactly ${gone}'s tokens (${(frac(itsTokens) * 100).toFixed(3)} % = 1/${n})`);
    t.ok(plan.moves.every((m) => m.from === gone), `every move comes from ${gone}`);
    t.notOk(gone in plan.next.shards, 'it leaves the shard list');
    t.ok(plan.next.ranges.every((r) => !r.replicas.includes(gone)), 'and every replica list');
    t.ok(plan.next.ranges.every((r) => r.replicas.length === replicas), `every range still has ${replicas} replicas`);
    const s = tokenSpread(plan.next);
    t.ok(s <= SPREAD_BOUND, `spread after ${(s * 100).toExponential(2)} % ≤ 1 %`);
    assertMovesExplain(t, current, plan, `remove from ${n}`);
    assertInvariants(t, plan.next, `remove from ${n}`);
  });
}

t.test('a run of additions and removals keeps every bound and leaves no rounding slivers', async (t) => {
  let topo = planBalanced(ids(4), { cluster: 'c', epoch: 1, replicas: 2 });
  for (let step = 0; step < 12; step++) {
    const n = Object.keys(topo.shards).length;
    const plan = step % 3 === 2 ? planRemoveShard(topo, Object.keys(topo.shards)[step % n]!) : planAddShard(topo, `added-${step}`);
    const moved = frac(changedTokens(topo, plan.next));
    const bound = step % 3 === 2 ? 1 / n + 1e-9 : 1.05 / (n + 1);
    t.ok(moved <= bound, `step ${step}: moved ${(moved * 100).toFixed(3)} % ≤ ${(bound * 100).toFixed(3)} %`);
    t.ok(tokenSpread(plan.next) <= SPREAD_BOUND, `step ${step}: spread ≤ 1 %`);
    t.ok(plan.next.ranges.every((r) => r.end - r.start >= 1n << 24n), `step ${step}: no range of a handful of tokens`);
    topo = plan.next;
  }
});

t.test('replicas: distinct, never the owner, in other datacenters first, by the ring rule', async (t) => {
  const shards = Object.fromEntries(ids(6).map((s, i) => [s, { datacenter: `dc${(i % 3) + 1}` }]));
  const dcCount = (topo: Topology, owner: string, reps: readonly string[]) => new Set([owner, ...reps].map((s) => topo.shards[s]!.datacenter)).size;
  const topo = planBalanced(ids(6), { cluster: 'c', epoch: 1, replicas: 2, shards });
  t.ok(topo.ranges.every((r) => dcCount(topo, r.owner, r.replicas) === 3), 'owner and 2 replicas sit in 3 datacenters');
  const added = planAddShard(topo, 'shard-x', { info: { datacenter: 'dc1' } }).next;
  t.ok(added.ranges.every((r) => r.replicas.length === 2 && dcCount(added, r.owner, r.replicas) === 3), 'still after adding a shard in dc1');
  const removed = planRemoveShard(added, 'shard-0002').next;
  t.ok(removed.ranges.every((r) => r.replicas.length === 2 && dcCount(removed, r.owner, r.replicas) === 3), 'still after removing one');
  // Without datacenters the rule is the ring's: the next distinct shards clockwise.
  const plain = planBalanced(ids(5), { cluster: 'c', epoch: 1, replicas: 2 });
  let off = 0;
  plain.ranges.forEach((r, i) => {
    const next: string[] = [];
    for (let k = 1; next.length < 2; k++) {
      const s = plain.ranges[(i + k) % plain.ranges.length]!.owner;
      if (s !== r.owner && !next.includes(s)) next.push(s);
    }
    if (next.join() !== r.replicas.join()) off++;
  });
  t.equal(off, 0, 'with one datacenter, replicas are the next distinct owners clockwise');
  // Removing a shard that is a replica: it is replaced, by a shard other than the owner.
  const small = planBalanced(ids(4), { cluster: 'c', epoch: 1, replicas: 2 });
  const after = planRemoveShard(small, 'shard-0003').next;
  t.ok(after.ranges.every((r) => r.replicas.length === 2 && !r.replicas.includes('shard-0003') && !r.replicas.includes(r.owner)), 'a leaving replica is replaced');
});

t.test('certified ranges: never a token outside them, and a clear refusal when impossible', async (t) => {
  const quarter = SPACE / 4n;
  const firstQuarter = { start: 0n, end: quarter - 1n };
  const only = (m: Record<string, { start: bigint; end: bigint }>): AllowedRange => (s) => m[s];
  const inside = (topo: Topology, allowed: AllowedRange) =>
    topo.ranges.every((r) => {
      const w = allowed(r.owner);
      return !w || (w.start <= r.start && r.end <= w.end);
    });

  const five = ids(5);
  const allowed = only({ [five[0]!]: firstQuarter, [five[1]!]: { start: quarter * 3n, end: TOKEN_MAX } });
  const topo = planBalanced(five, { cluster: 'c', epoch: 1, replicas: 1, allowed });
  t.ok(inside(topo, allowed), 'shards with a certified range own tokens only inside it');
  t.ok(tokenSpread(topo) <= SPREAD_BOUND, 'and the shares are still equal');
  assertInvariants(t, topo, 'certified');

  t.throws(() => planBalanced(ids(3), { cluster: 'c', epoch: 1, allowed: only({ 'shard-0001': firstQuarter }) }), {
    name: 'PlanError',
    message: /shard-0001's certified token range 0x0000000000000000…0x3fffffffffffffff holds 25\.000% .* less than its equal share of 33\.333%/,
  });
  t.throws(() => planBalanced(ids(8), { cluster: 'c', epoch: 1, allowed: only(Object.fromEntries(ids(3).map((s) => [s, firstQuarter]))) }), {
    name: 'PlanError',
    message: /cannot get its share inside its certified token range/,
  }, 'three shards cannot all take an eighth from the same quarter');
  t.throws(() => planBalanced(ids(2), { cluster: 'c', epoch: 1, allowed: () => ({ start: 0n, end: quarter * 3n - 1n }) }), {
    name: 'PlanError',
    message: /no shard may own 0xc000000000000000…0xffffffffffffffff/,
  });

  // Adding a shard certified for the first half only: it gets tokens only there.
  const half = { start: 0n, end: SPACE / 2n - 1n };
  const withNew: AllowedRange = (s) => (s === 'shard-new' ? half : allowed(s));
  const add = planAddShard(topo, 'shard-new', { allowed: withNew });
  t.ok(inside(add.next, withNew), 'the added shard and the others stay inside their ranges');
  t.ok(tokenSpread(add.next) <= SPREAD_BOUND, 'shares equal after adding');
  // shard-0002 (last quarter only) cannot give to the new shard (first half only): its excess
  // 1/5 − 1/6 goes to a shard that may own it, which gives as much more to the new shard.
  // So the least movement is the new share 1/6 plus that 1/30, and no layout moves less.
  const least = 1 / 6 + (1 / 5 - 1 / 6);
  const moved = frac(changedTokens(topo, add.next));
  t.ok(moved <= least + 1e-12 && moved >= least - 1e-12, `moved ${(moved * 100).toFixed(4)} % = 1/6 + 1/30 (passed along, not laid out anew)`);
  t.ok(add.moves.some((m) => m.from === 'shard-0002' && m.to !== 'shard-new'), 'shard-0002 passes its excess to a shard that may own it');

  // One shard per certified quarter: a quarter's shard cannot leave, nobody else may own it.
  const quarters = ids(4);
  const q: AllowedRange = (s) => ({ start: quarter * BigInt(quarters.indexOf(s)), end: quarter * BigInt(quarters.indexOf(s) + 1) - 1n });
  const byQuarter = planBalanced(quarters, { cluster: 'c', epoch: 1, allowed: q });
  t.ok(inside(byQuarter, q));
  t.throws(() => planRemoveShard(byQuarter, 'shard-0002', { allowed: q }), { name: 'PlanError', message: /certified token range/ });
  t.throws(() => planAddShard(byQuarter, 'shard-0005', { allowed: (s) => (s === 'shard-0005' ? firstQuarter : q(s)) }), {
    name: 'PlanError',
    message: /certified token range/,
  }, 'a fifth shard in the first quarter would squeeze shard-0001 below its share');
});

t.test('refusals name the problem', async (t) => {
  const topo = planBalanced(ids(3), { cluster: 'c', epoch: 1 });
  t.throws(() => planAddShard(topo, 'shard-0001'), { name: 'PlanError', message: /already owns tokens/ });
  t.throws(() => planAddShard(topo, 'Bad!'), { name: 'PlanError', message: /not a valid shard id/ });
  t.throws(() => planRemoveShard(topo, 'shard-0009'), { name: 'PlanError', message: /not in this topology/ });
  t.throws(() => planRemoveShard(planBalanced(['solo'], { cluster: 'c', epoch: 1 }), 'solo'), { name: 'PlanError', message: /last shard/ });
  t.throws(() => planBalanced(ids(3), { cluster: 'c', epoch: 1, replicas: 3 }), { name: 'PlanError', message: /replicas must be/ });
  t.throws(() => planBalanced(['a', 'a'], { cluster: 'c', epoch: 1 }), { name: 'PlanError', message: /unique/ });
  t.throws(() => planBalanced(ids(2), { cluster: 'c', epoch: 1, rangesPerShard: 0 }), { name: 'PlanError', message: /ranges per shard/ });
});

t.test('certified ranges of exactly 1/N: the rounding token goes to a shard with room', async (t) => {
  // Three shards certified for thirds of the space (2^64 = 3q + 1: the first two hold q tokens,
  // the last q + 1), plus one certified for everything: added, then removed again.
  const q = SPACE / 3n;
  const thirds: Record<string, { start: bigint; end: bigint }> = {
    a: { start: 0n, end: q - 1n }, b: { start: q, end: 2n * q - 1n }, c: { start: 2n * q, end: TOKEN_MAX },
  };
  const allowed: AllowedRange = (s) => thirds[s];
  const { Topology } = await import('../../../src/topology/topology.js');
  const three = new Topology({ cluster: 'c', epoch: 1, vnodes: 0, shards: { a: {}, b: {}, c: {} }, ranges: Object.entries(thirds).map(([owner, r]) => ({ ...r, owner, replicas: [] })) });
  const added = planAddShard(three, 'd', { allowed });
  const back = planRemoveShard(added.next, 'd', { allowed });
  const shares = tokensOf(back.next);
  t.same([...shares.values()].map((n) => n - q).sort(), [0n, 0n, 1n], 'each gets a third again, the extra token where it fits');
  t.ok(back.next.ranges.every((r) => thirds[r.owner]!.start <= r.start && r.end <= thirds[r.owner]!.end), 'inside every certified range');
});
