// The ack gate with failover's fencing: a write in a replicated range is applied only by the
// group's acting primary, and answered as done only if it still holds its term (lease alive)
// after the confirmations arrived.
import t from 'tap';
import { FakeClock } from '../../../../src/runtime.js';
import { ThemisError } from '../../../../src/errors.js';
import { TOKEN_MAX } from '../../../../src/hash.js';
import { Topology } from '../../../../src/topology/topology.js';
import { rangesDigest, replicaRanges } from '../../../../src/topology/replica-ranges.js';
import type { NodeClient } from '../../../../proxy/feed/node-client.js';
import type { TopologySource } from '../../../../proxy/control/topology-source.js';
import { AckGate, type AckMode } from '../../../../proxy/replication/ack-gate.js';
import { LocalHead } from '../../../../proxy/replication/local-head.js';
import { ReplicaPositions } from '../../../../proxy/replication/positions.js';

const topo = new Topology({ cluster: 'c', epoch: 1, vnodes: 0, shards: { a: {}, b: {} }, ranges: [{ start: 0n, end: TOKEN_MAX, owner: 'a', replicas: ['b'] }] });
const KEY = 'document.shop.orders:9f1c1d9e-4b7e-4f4e-8a55-0c7c2b6f0f11';

function setup(mode: AckMode) {
  const lease = { holds: true };
  const local = new LocalHead({ head: async () => 10 } as unknown as NodeClient);
  const positions = new ReplicaPositions(new FakeClock(0), local);
  const source = { current: () => topo } as unknown as TopologySource;
  const gate = new AckGate({
    self: 'a', topology: source, positions, head: local, mode, timeoutMs: 200,
    fencing: { fenceOf: () => ({ group: 'g', term: 5 }), holds: (f) => lease.holds && f.term === 5 },
  });
  const confirm = (seq: number) => positions.record('b', `${seq} ${rangesDigest(replicaRanges(topo, 'a', 'b'))}`);
  return { gate, lease, confirm, local };
}

const code = (e: unknown) => (e instanceof ThemisError ? e.code : String(e));

t.test('a shard that does not hold the term refuses the write before applying it', async (t) => {
  const { gate, lease } = setup('majority');
  lease.holds = false;
  t.throws(() => gate.plan(KEY, topo), { code: 'FAILOVER_IN_PROGRESS' });
});

t.test('a lease that lapsed while the write waited for its confirmations: not reported as done', async (t) => {
  const { gate, lease, confirm, local } = setup('majority');
  await local.after();
  const p = gate.plan(KEY, topo);
  const settling = gate.settle(p).then(() => 'done', code);
  lease.holds = false; // paused past the lease while waiting
  confirm(10);
  t.equal(await settling, 'FAILOVER_IN_PROGRESS');
});

t.test('held throughout: done once the replica confirms', async (t) => {
  const { gate, confirm, local } = setup('majority');
  await local.after();
  const p = gate.plan(KEY, topo);
  const settling = gate.settle(p).then(() => 'done', code);
  confirm(10);
  t.equal(await settling, 'done');
});

t.test('ack primary (no confirmations to wait for) is fenced too', async (t) => {
  const { gate, lease } = setup('primary');
  const p = gate.plan(KEY, topo);
  t.equal(p.needed, 0);
  lease.holds = false;
  t.equal(await gate.settle(p).then(() => 'done', code), 'FAILOVER_IN_PROGRESS');
});
