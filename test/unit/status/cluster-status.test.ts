// themis-admin status's judgement, from etcd's contents as data: shares, lagging sidecars,
// expiring certificates, moves still in progress and stale CRLs each become a warning.
import t from 'tap';
import { TOKEN_MAX } from '../../../src/hash.js';
import { Topology } from '../../../src/topology/topology.js';
import { buildStatus, renderStatus, type ShardReport, type StatusInput } from '../../../src/status/cluster-status.js';
import { moveProgress } from '../../../src/status/read-status.js';

const quarter = (TOKEN_MAX + 1n) / 4n;
const topology = new Topology({
  cluster: 'c', epoch: 7, vnodes: 0, shards: { a: {}, b: {} },
  ranges: [
    { start: 0n, end: quarter - 1n, owner: 'a', replicas: ['b'] },
    { start: quarter, end: TOKEN_MAX, owner: 'b', replicas: [] },
  ],
});
const NOW = Date.UTC(2026, 11, 6);
const day = 86_400_000;
const shard = (id: string, o: Partial<ShardReport> = {}): ShardReport => ({
  shard: id, endpoint: '127.0.0.2:7443', alive: true, epoch: 7, keys: 100, certNotAfter: new Date(NOW + 200 * day).toISOString(), replication: null, ...o,
});
const input = (o: Partial<StatusInput> = {}): StatusInput => ({
  cluster: 'c', topology: { ok: true, topology }, shards: [shard('a'), shard('b', { keys: 300 })], moves: [], crls: [{ name: 'root', nextUpdate: new Date(NOW + day).toISOString() }], now: NOW, expiringDays: 30, ...o,
});

t.test('a healthy cluster: shares of tokens and keys, no warnings', async (t) => {
  const s = buildStatus(input());
  t.equal(s.epoch, 7);
  t.equal(s.topology, 'verified');
  t.same(s.shards.map((x) => [x.shard, x.ranges, x.replica_ranges, x.token_share, x.key_share, x.lagging, x.cert_days_left]), [
    ['a', 1, 0, 0.25, 0.25, false, 200],
    ['b', 1, 1, 0.75, 0.75, false, 200],
  ]);
  t.same(s.warnings, []);
  t.same(s.crls, [{ name: 'root', next_update: new Date(NOW + day).toISOString(), stale: false }]);
  const text = renderStatus(s);
  t.match(text, /cluster c\s+epoch 7 \(verified\)/);
  t.match(text, /^a\s+yes\s+7\s+1\+0\s+25\.0%\s+100 \(25\.0%\)\s+200\s+-$/m);
  t.match(text, 'warnings: none');
});

t.test('each problem is flagged and listed as a warning', async (t) => {
  const s = buildStatus(input({
    shards: [
      shard('a', { epoch: 6, certNotAfter: new Date(NOW + 10 * day).toISOString(), replication: { b: { state: 'copying', lag_changes: -1 } } }),
      shard('x', { alive: false, keys: null }),
    ],
    moves: [
      { op: 'op-1', shard: 'a', phase: 'copying' },
      { op: 'op-1', shard: 'b', phase: 'done' },
      { op: 'op-0', shard: 'a', phase: 'cleaned' },
    ],
    crls: [{ name: 'client', nextUpdate: new Date(NOW - 1000).toISOString() }],
  }));
  const a = s.shards.find((x) => x.shard === 'a')!;
  t.equal(a.lagging, true, 'serves epoch 6 of 7');
  t.equal(a.cert_expiring, true);
  t.equal(s.shards.find((x) => x.shard === 'b')!.alive, false, 'an owner with no registration is not alive');
  t.equal(s.shards.find((x) => x.shard === 'x')!.lagging, false, 'a dead sidecar is not called lagging');
  t.equal(a.key_share, null, 'no key shares while a shard has no count');
  t.same(s.moves, [{ op: 'op-1', shards: { a: 'copying', b: 'done' }, progress: {}, ranges: [] }], 'only moves with a shard still at work');
  t.same(s.warnings, [
    "a serves epoch 6, the published one is 7",
    `a's certificate expires in 10 days (${new Date(NOW + 10 * day).toISOString()})`,
    'a as replica of b: copying',
    'b owns ranges but is not registered',
    'x is not alive (no lease)',
    `the client CRL in etcd is stale (nextUpdate ${new Date(NOW - 1000).toISOString()}): chains through that CA fail closed`,
  ]);
  t.match(renderStatus(s), /^a\s+yes\s+6!/m, 'lagging marked in the text');
});

t.test('a refused or missing topology is said first', async (t) => {
  t.same(buildStatus(input({ topology: null })).warnings.slice(0, 1), ['no topology published']);
  const r = buildStatus(input({ topology: { ok: false, reason: 'bad_signature: x' } }));
  t.equal(r.topology, 'refused');
  t.equal(r.epoch, null);
  t.same(r.warnings.slice(0, 1), ['the published topology is refused: bad_signature: x']);
});

t.test('the ring for the console: every range with its owner and replicas, tokens as 16 hex digits', async (t) => {
  const s = buildStatus(input());
  t.same(s.ranges, [
    { start: '0x0000000000000000', end: '0x3fffffffffffffff', owner: 'a', replicas: ['b'] },
    { start: '0x4000000000000000', end: '0xffffffffffffffff', owner: 'b', replicas: [] },
  ]);
  t.same(buildStatus(input({ topology: null })).ranges, [], 'no topology, no ring');
});

t.test("a move's progress and moved ranges are kept per operation, and drawn in the text", async (t) => {
  const progress = { keys_copied: 1200, lag_changes: 3, eta_seconds: 2 };
  const moved = [{ from: 'b', to: 'a', start: '0x4000000000000000', end: '0x4fffffffffffffff', role: 'owner' as const }];
  const s = buildStatus(input({
    moves: [{ op: 'op-2', shard: 'a', phase: 'catching-up', progress }, { op: 'op-2', shard: 'b', phase: 'accepted' }],
    moveRanges: { 'op-2': moved, 'op-other': [] },
  }));
  t.same(s.moves, [{ op: 'op-2', shards: { a: 'catching-up', b: 'accepted' }, progress: { a: progress }, ranges: moved }]);
  t.match(renderStatus(s), /op-2 {2}a catching-up \(1200 keys copied, 3 changes behind, ETA 2 s\), b accepted$/m);
});

t.test("moveProgress sums a target's sources; unknown lag or ETA stays unknown", async (t) => {
  t.same(moveProgress({ phase: 'copying', sources: { a: { keys_copied: 10, lag_changes: 4, eta_seconds: 3 }, b: { keys_copied: 5, lag_changes: 1, eta_seconds: 9 } } }), { keys_copied: 15, lag_changes: 5, eta_seconds: 9 });
  t.same(moveProgress({ sources: { a: { keys_copied: 10, lag_changes: null, eta_seconds: null } } }), { keys_copied: 10, lag_changes: null, eta_seconds: null });
  t.same(moveProgress({ sources: { a: { keys_copied: 'x', lag_changes: -1 } } }), { keys_copied: 0, lag_changes: null, eta_seconds: null }, 'nonsense counts as unknown');
  t.equal(moveProgress({ phase: 'accepted' }), undefined, 'a source reports no copy');
  t.equal(moveProgress({ sources: {} }), undefined);
  t.equal(moveProgress(undefined), undefined);
});
