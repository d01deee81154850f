import t from 'tap';

/** Matches a TopologyError naming `f` (tap's types want an Error-shaped pattern). */
const field = (f: string) => ({ field: f }) as unknown as Error;
import { HashRing } from '../../../src/ring/ring.js';
import { topologyFromRing } from '../../../src/topology/from-ring.js';
import { Topology, TopologyError } from '../../../src/topology/topology.js';
import { diffTopologies } from '../../../src/topology/diff.js';
import { parseTopology, serializeTopology, toDocument } from '../../../src/topology/document.js';
import { measureBalance } from '../../../src/topology/balance.js';
import { TOKEN_MAX } from '../../../src/hash.js';
import { SeededRandom } from '../../../src/runtime.js';

const SPACE = TOKEN_MAX + 1n;
const rt = (r: SeededRandom) => r.bytes(8).readBigUInt64BE();

function randomShardSet(r: SeededRandom): string[] {
  const n = 1 + (r.bytes(1)[0]! % 12);
  const ids = new Set<string>();
  while (ids.size < n) ids.add(`shard-${r.bytes(2).toString('hex')}`);
  return [...ids];
}

t.test('property: a topology built from any ring covers every token exactly once and agrees with the ring', async (t) => {
  const r = new SeededRandom(42);
  for (let trial = 0; trial < 40; trial++) {
    const ids = randomShardSet(r);
    const vnodes = 1 + (r.bytes(1)[0]! % 60);
    const replicas = r.bytes(1)[0]! % ids.length;
    const ring = new HashRing(ids, vnodes);
    const topo = topologyFromRing(ring, { cluster: 'c', epoch: 1, replicas });
    // Coverage checked here independently of the constructor's own validation.
    let next = 0n;
    let total = 0n;
    for (const range of topo.ranges) {
      if (range.start !== next) t.fail(`gap or overlap at ${range.start}`);
      total += range.end - range.start + 1n;
      next = range.end + 1n;
      if (range.replicas.length !== replicas || range.replicas.includes(range.owner)) t.fail('bad replicas');
    }
    t.equal(total, SPACE, `trial ${trial}: sizes sum to 2^64`);
    let disagree = 0;
    for (let i = 0; i < 300; i++) {
      const tok = rt(r);
      if (topo.ownerOf(tok) !== ring.ownerOf(tok)) disagree++;
      const range = topo.rangeOf(tok);
      if (tok < range.start || tok > range.end) disagree++;
    }
    for (const v of ring.vnodes) if (topo.ownerOf(v.token) !== v.shard) disagree++;
    t.equal(disagree, 0, `trial ${trial}: ${ids.length} shards × ${vnodes} vnodes`);
  }
});

t.test('the constructor refuses gaps, overlaps, short coverage and unknown owners, naming the field', async (t) => {
  const shards = { a: {}, b: {} };
  const mk = (ranges: { start: bigint; end: bigint; owner: string; replicas?: string[] }[]) =>
    new Topology({ cluster: 'c', epoch: 1, vnodes: 0, shards, ranges: ranges.map((x) => ({ replicas: [], ...x })) });
  t.doesNotThrow(() => mk([{ start: 0n, end: 9n, owner: 'a' }, { start: 10n, end: TOKEN_MAX, owner: 'b' }]));
  t.throws(() => mk([{ start: 0n, end: 9n, owner: 'a' }, { start: 11n, end: TOKEN_MAX, owner: 'b' }]), field('ranges[1].start'));
  t.throws(() => mk([{ start: 0n, end: 9n, owner: 'a' }, { start: 9n, end: TOKEN_MAX, owner: 'b' }]), field('ranges[1].start'));
  t.throws(() => mk([{ start: 0n, end: 9n, owner: 'a' }]), field('ranges[0].end'));
  t.throws(() => mk([{ start: 1n, end: TOKEN_MAX, owner: 'a' }]), field('ranges[0].start'));
  t.throws(() => mk([{ start: 0n, end: TOKEN_MAX, owner: 'z' }]), field('ranges[0].owner'));
  t.throws(() => mk([{ start: 0n, end: TOKEN_MAX, owner: 'a', replicas: ['a'] }]), field('ranges[0].replicas'));
  t.throws(() => mk([]), TopologyError);
});

t.test('document round-trip and field-naming parse errors', async (t) => {
  const topo = topologyFromRing(new HashRing(['shard-001', 'shard-002'], 8), {
    cluster: 'prod',
    epoch: 3,
    replicas: 1,
    shards: { 'shard-001': { endpoint: '127.0.0.2:7443' } },
  });
  const text = serializeTopology(topo);
  const back = parseTopology(text);
  t.same(toDocument(back), toDocument(topo));
  t.equal(back.shards['shard-001']!.endpoint, '127.0.0.2:7443');
  const doc = JSON.parse(text);
  t.match(doc.ranges[0].start, /^0x[0-9a-f]{16}$/);
  const bad: [unknown, string][] = [
    ['{', '(document)'],
    [{ ...doc, epoch: -1 }, 'epoch'],
    [{ ...doc, extra: 1 }, 'extra'],
    [{ ...doc, shards: { ...doc.shards, 'shard-001': { endpoint: 'nope' } } }, 'shards.shard-001.endpoint'],
    [{ ...doc, ranges: [{ ...doc.ranges[0], start: '0x1ffffffffffffffff' }, ...doc.ranges.slice(1)] }, 'ranges[0].start'],
    [{ ...doc, ranges: doc.ranges.slice(1) }, 'ranges[0].start'],
    [{ ...doc, ranges: [...doc.ranges.slice(0, -1), { ...doc.ranges.at(-1), owner: 'shard-009' }] }, `ranges[${doc.ranges.length - 1}].owner`],
  ];
  for (const [input, field] of bad) t.throws(() => parseTopology(input), { name: 'TopologyError', field }, field);
});

t.test('diff: adding a shard moves ranges only to it, removing one only from it, and applying the moves gives the new owners', async (t) => {
  const three = topologyFromRing(new HashRing(['s1', 's2', 's3'], 50), { cluster: 'c', epoch: 1 });
  const four = topologyFromRing(new HashRing(['s1', 's2', 's3', 's4'], 50), { cluster: 'c', epoch: 2 });
  const added = diffTopologies(three, four);
  t.ok(added.length > 0);
  t.ok(added.every((m) => m.to === 's4' && m.from !== 's4'), 'only to the new shard');
  const removed = diffTopologies(four, three);
  t.ok(removed.every((m) => m.from === 's4'), 'only from the removed shard');
  t.same(diffTopologies(three, three.withEpoch(9)), [], 'same ranges → nothing moves');
  const r = new SeededRandom(3);
  let wrong = 0;
  for (let i = 0; i < 2000; i++) {
    const tok = rt(r);
    const move = added.find((m) => tok >= m.start && tok <= m.end);
    const expect = move ? move.to : three.ownerOf(tok);
    if (expect !== four.ownerOf(tok)) wrong++;
    if (move && move.from !== three.ownerOf(tok)) wrong++;
  }
  t.equal(wrong, 0);
  for (let i = 1; i < added.length; i++) t.ok(added[i]!.start > added[i - 1]!.end, 'moves are ordered and disjoint');
});

t.test('balance shares sum to one and count every sampled key', async (t) => {
  const topo = topologyFromRing(new HashRing(['a', 'b', 'c'], 150), { cluster: 'c', epoch: 1 });
  const r = new SeededRandom(5);
  const uuids = Array.from({ length: 5000 }, () => r.uuid());
  const b = measureBalance(topo, uuids);
  t.equal(b.shards.reduce((a, s) => a + s.keys, 0), 5000);
  t.ok(Math.abs(b.shards.reduce((a, s) => a + s.tokenShare, 0) - 1) < 1e-9);
  t.ok(b.tokens.maxOverMean >= 1);
});
