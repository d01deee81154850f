// A term just taken is held only once the promoted replica's follower of the previous primary has
// stopped writing into the group's ranges (term-settling.ts): which terms count as just taken,
// and when they are released.
import t from 'tap';
import { TermSettling } from '../../../../proxy/failover/term-settling.js';
import type { ReplicaGroup } from '../../../../src/topology/replica-groups.js';

const group = (id: string, start: bigint): ReplicaGroup => ({ id, owner: 'a', replicas: ['b', 'c'], copies: ['a', 'b', 'c'], ranges: [{ start, end: start + 9n }] });
const [g1, g2, g3] = [group('g1', 0n), group('g2', 10n), group('g3', 20n)];
const acting = (entries: [string, string, number][]) => new Map(entries.map(([g, shard, term]) => [g, { shard, term }]));
const tick = () => new Promise((r) => setImmediate(r));

t.test('only terms this shard did not act at before are marked; each is held once its ranges are quiet', async (t) => {
  const gates = new Map<string, () => void>();
  const asked: bigint[] = [];
  let changes = 0;
  const s = new TermSettling('c', (ranges) => {
    asked.push(ranges[0]!.start);
    if (ranges[0]!.start === 20n) return undefined; // g3: no follower writes there
    return new Promise<void>((r) => gates.set(ranges[0]!.start === 0n ? 'g1' : 'g2', r));
  }, () => void changes++);
  const before = acting([['g1', 'a', 5], ['g2', 'c', 3], ['g3', 'b', 4]]);
  const after = acting([['g1', 'c', 6], ['g2', 'c', 7], ['g3', 'c', 8]]);
  const fresh = s.mark([g1, g2, g3], before, after);
  t.same(fresh.map((g) => g.id), ['g1', 'g2', 'g3'], 'taken from another shard, or at a new term');
  t.same(s.list().sort(), ['g1', 'g2', 'g3'], 'not held from the moment they are marked');
  t.same(s.mark([g1, g2, g3], after, after), [], 'the same state again marks nothing');
  s.settle(fresh);
  t.same(asked, [0n, 10n, 20n]);
  t.notOk(s.has('g3'), 'ranges nobody writes: held at once');
  t.ok(s.has('g1') && s.has('g2'), 'the others wait');
  gates.get('g2')!();
  await tick();
  t.notOk(s.has('g2'), 'g2 held once quiet');
  t.ok(s.has('g1'), 'g1 still waits');
  gates.get('g1')!();
  await tick();
  t.same(s.list(), []);
  t.equal(changes, 3, 'told after settle() and after each release');
});

t.test('another shard taking the term, a term held before, or none acting: nothing to settle', async (t) => {
  const s = new TermSettling('c', () => Promise.resolve(), () => undefined);
  t.same(s.mark([g1], acting([['g1', 'c', 6]]), acting([['g1', 'c', 6]])), [], 'a term held before is not marked');
  t.same(s.list(), []);
  t.same(s.mark([g1, g2], acting([['g1', 'a', 1]]), acting([['g1', 'b', 2]])), [], 'b took it');
  t.same(s.mark([g1, g2], acting([]), acting([])), []);
});

t.test('a rejected wait still releases the term (the term is not stuck)', async (t) => {
  const s = new TermSettling('c', () => Promise.reject(new Error('x')), () => undefined);
  s.settle(s.mark([g1], acting([]), acting([['g1', 'c', 1]])));
  await tick();
  t.notOk(s.has('g1'));
});
