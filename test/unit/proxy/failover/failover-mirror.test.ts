// A worker's failover mirror: it holds a term exactly when the control process's state says this
// shard acts for the group on its live lease, and stops holding when the lease's remaining time
// (counted from the state's arrival, less the margin) has passed without a newer state; it routes
// a failed-over group's keys where the control process routes them.
import t from 'tap';
import { FakeClock } from '../../../../src/runtime.js';
import { TOKEN_MAX } from '../../../../src/hash.js';
import { Topology } from '../../../../src/topology/topology.js';
import { replicaGroups } from '../../../../src/topology/replica-groups.js';
import type { TopologySource } from '../../../../proxy/control/topology-source.js';
import { FailoverMirror, MIRROR_MARGIN_MS } from '../../../../proxy/failover/failover-mirror.js';
import type { FailoverState } from '../../../../proxy/failover/failover.js';

const topo = new Topology({ cluster: 'c', epoch: 1, vnodes: 0, shards: { a: {}, b: {} }, ranges: [{ start: 0n, end: TOKEN_MAX, owner: 'a', replicas: ['b'] }] });
const group = replicaGroups(topo)[0]!.id;
const source = { current: () => topo, onChange: () => undefined } as unknown as TopologySource;

function mirror(self = 'a') {
  const clock = new FakeClock(0);
  return { m: new FailoverMirror(source, self, () => clock.monotonic()), clock };
}

const acting = (shard: string, term = 7, lease = 'L1'): FailoverState['acting'] => [[group, { shard, term, lease }]];
let seq = 0;
const state = (over: Partial<FailoverState> = {}): FailoverState => ({ seq: ++seq, acting: acting('a'), routes: [[group, 'a']], rolledBack: [], settling: [], lease: { id: 'L1', untilMs: 1000 }, nodeUp: true, ...over });

t.test('holds while this shard acts on its live lease, and only then', async (t) => {
  const { m } = mirror();
  const fence = () => m.fenceOf(5n)!;
  t.same(fence(), { group, term: 0 }, 'before any state: term 0');
  t.notOk(m.holds(fence()), 'nothing is held before the first state');
  m.apply(state());
  t.same(fence(), { group, term: 7, lease: 'L1' });
  t.ok(m.holds(fence()), 'acting, lease alive, node up');
  const cases: [string, Partial<FailoverState>][] = [
    ['another shard acts', { acting: acting('b') }],
    ['acting on another lease', { acting: acting('a', 7, 'L0') }],
    ['no live lease', { lease: null }],
    ['storage node down', { nodeUp: false }],
    ['the group rolled back', { rolledBack: [group] }],
    ['the follower of the previous primary still writes (settling)', { settling: [group] }],
  ];
  for (const [why, over] of cases) {
    m.apply(state(over));
    t.notOk(m.holds({ group, term: 7, lease: 'L1' }), why);
  }
  m.apply(state());
  t.notOk(m.holds({ group, term: 6, lease: 'L1' }), 'an older term');
});

t.test('the lease lapses in the worker at the control process\'s deadline less the margin, however late the state arrived', async (t) => {
  const { m, clock } = mirror();
  clock.advance(200); // the state was sent at 0 and applied 200 ms late (a paused worker)
  m.apply(state({ lease: { id: 'L1', untilMs: 300 } }));
  const f = m.fenceOf(5n)!;
  clock.advance(300 - 200 - MIRROR_MARGIN_MS - 1);
  t.ok(m.holds(f), 'just inside');
  clock.advance(1);
  t.notOk(m.holds(f), 'the margin before the control process\'s own deadline, counted on the shared clock');
  m.apply(state({ lease: { id: 'L1', untilMs: 600 } }));
  t.ok(m.holds(f), 'a newer state (a keep-alive confirmed) extends it');
});

t.test('a state older than the one applied is ignored (a welcome overtaken by a newer state)', async (t) => {
  const { m } = mirror();
  const older = state({ lease: { id: 'L1', untilMs: 10_000 } });
  const newer = state({ lease: null });
  m.apply(newer);
  m.apply(older);
  t.notOk(m.holds(m.fenceOf(5n)!), 'the lost lease stays lost');
});

t.test('routes a failed-over group to its acting primary and says so to its listeners', async (t) => {
  const { m } = mirror('b');
  const seen: string[] = [];
  m.onChange((next) => seen.push(next.ranges[0]!.owner));
  t.equal(m.current().ranges[0]!.owner, 'a');
  m.apply(state({ acting: acting('b', 8, 'L9'), routes: [[group, 'b']], lease: { id: 'L9', untilMs: 1000 } }));
  t.equal(m.current().ranges[0]!.owner, 'b');
  t.same(seen, ['b']);
  t.ok(m.holds(m.fenceOf(5n)!), 'b now holds term 8');
  t.ok(await m.untilHeld(5n, 10), 'untilHeld: at once');
  m.apply(state({ acting: acting('a', 9, 'L1'), routes: [[group, 'a']] }));
  t.notOk(await m.untilHeld(5n, 1000), 'another shard acts: nothing to wait for');
});
