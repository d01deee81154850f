import t from 'tap';
import { ReplayGuard } from '../../../src/signing/replay-guard.js';
import { FakeClock } from '../../../src/runtime.js';

t.test('timestamps outside ±60 s are refused; the edges pass', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const g = new ReplayGuard(clock);
  t.doesNotThrow(() => g.checkTimestamp(clock.now() - 60_000));
  t.doesNotThrow(() => g.checkTimestamp(clock.now() + 60_000));
  t.throws(() => g.checkTimestamp(clock.now() - 60_001), { code: 'TIMESTAMP_OUT_OF_WINDOW' });
  t.throws(() => g.checkTimestamp(clock.now() + 60_001), { code: 'TIMESTAMP_OUT_OF_WINDOW' });
});

t.test('a nonce is accepted once per sender within the window', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const g = new ReplayGuard(clock);
  const ts = clock.now();
  g.checkAndRemember('shard-001', 'aaaaaaaaaaaaaaaa', ts);
  t.throws(() => g.checkAndRemember('shard-001', 'aaaaaaaaaaaaaaaa', ts), { code: 'REPLAY_DETECTED' });
  t.doesNotThrow(() => g.checkAndRemember('shard-002', 'aaaaaaaaaaaaaaaa', ts), 'senders are independent');
  clock.advance(59_000);
  t.throws(() => g.checkAndRemember('shard-001', 'aaaaaaaaaaaaaaaa', ts), { code: 'REPLAY_DETECTED' }, 'still remembered near the end of the window');
  clock.advance(2_000);
  // Now the timestamp itself is out of the window, so the timestamp check refuses the replay.
  t.throws(() => g.checkTimestamp(ts), { code: 'TIMESTAMP_OUT_OF_WINDOW' });
});

t.test('eviction under memory pressure fails closed: older requests are refused, newer pass', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const g = new ReplayGuard(clock, { maxNoncesPerSender: 3 });
  const base = clock.now();
  for (let i = 0; i < 4; i++) g.checkAndRemember('s', `000000000000000${i}`, base + i);
  // Nonce 0 was evicted; a replay of it (same timestamp) must still be refused.
  t.throws(() => g.checkAndRemember('s', '0000000000000000', base), { code: 'REPLAY_DETECTED' });
  t.doesNotThrow(() => g.checkAndRemember('s', '00000000000000ff', base + 10));
});

t.test('evicting a whole sender raises the global floor', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const g = new ReplayGuard(clock, { maxSenders: 1 });
  const ts = clock.now();
  g.checkAndRemember('a', '1111111111111111', ts);
  g.checkAndRemember('b', '2222222222222222', ts + 5);
  t.throws(() => g.checkAndRemember('a', '1111111111111111', ts), { code: 'REPLAY_DETECTED' });
});

t.test('expired nonces are purged, so memory follows rate × window; nothing still in the window goes', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const g = new ReplayGuard(clock, { windowMs: 10_000 });
  const old = clock.now();
  for (let i = 0; i < 100; i++) g.checkAndRemember('shard-001', i.toString(16).padStart(16, '0'), old);
  clock.advance(5_000);
  const fresh = clock.now();
  g.checkAndRemember('shard-002', 'ffffffffffffffff', fresh);
  g.purgeStale();
  t.equal(g.size, 101, 'inside the window: nothing purged');
  clock.advance(5_002); // the first hundred can no longer pass the timestamp check
  g.purgeStale();
  t.equal(g.size, 1, 'the expired hundred are gone; the fresh one stays');
  t.throws(() => g.checkAndRemember('shard-002', 'ffffffffffffffff', fresh), { code: 'REPLAY_DETECTED' }, 'the fresh nonce is still refused again');
  t.throws(() => g.checkTimestamp(old), { code: 'TIMESTAMP_OUT_OF_WINDOW' }, 'a replay of a purged one fails the timestamp check');
  clock.advance(10_000);
  g.purgeStale();
  t.equal(g.size, 0, 'all gone once the window has passed');
});

// Edges found by mutation testing (npm run mutate, docs/testing.md): each test below failed
// with one surviving mutant of replay-guard.ts applied.

t.test('refusals say why: the skew and window in seconds, and which replay check refused', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const g = new ReplayGuard(clock, { windowMs: 30_000 });
  t.throws(() => g.checkTimestamp(clock.now() - 90_000), { message: "request timestamp is -90 s from this shard's clock; allowed ±30 s" });
  const ts = clock.now();
  g.checkAndRemember('s', 'aaaaaaaaaaaaaaaa', ts);
  t.throws(() => g.checkAndRemember('s', 'aaaaaaaaaaaaaaaa', ts), { message: /nonce already used by this sender/ });
  const small = new ReplayGuard(clock, { maxNoncesPerSender: 1 });
  small.checkAndRemember('s', '0000000000000000', ts);
  small.checkAndRemember('s', '0000000000000001', ts + 1); // evicts the first: floor = ts
  t.throws(() => small.checkAndRemember('s', '0000000000000002', ts), { message: /older than the replay cache can vouch for/ });
});

t.test('a nonce is remembered up to the last millisecond its timestamp passes the window check', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const g = new ReplayGuard(clock);
  const ts = clock.now();
  g.checkAndRemember('s', 'aaaaaaaaaaaaaaaa', ts);
  clock.advance(60_000); // |skew| = window: the timestamp still passes
  t.doesNotThrow(() => g.checkTimestamp(ts));
  g.purgeStale();
  t.throws(() => g.checkAndRemember('s', 'aaaaaaaaaaaaaaaa', ts), { code: 'REPLAY_DETECTED' }, 'so the replay is still refused at the edge');
});

t.test('an evicted sender: a replay of its newest request, at exactly the global floor, is refused', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const g = new ReplayGuard(clock, { maxSenders: 2 });
  const ts = clock.now();
  g.checkAndRemember('a', '1111111111111111', ts + 7);
  g.checkAndRemember('b', '2222222222222222', ts + 3);
  g.checkAndRemember('c', '3333333333333333', ts + 10); // evicts a: global floor = ts + 7
  // a comes back (evicting b, whose newest is older): its nonce is forgotten, the floor is all that refuses it.
  t.throws(() => g.checkAndRemember('a', '1111111111111111', ts + 7), { code: 'REPLAY_DETECTED' });
  t.doesNotThrow(() => g.checkAndRemember('c', '4444444444444444', ts + 8), 'a newer request passes');
});

t.test('a nonce evicted at the last millisecond of its window still raises the floor', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const g = new ReplayGuard(clock, { maxNoncesPerSender: 1 });
  const ts = clock.now();
  g.checkAndRemember('s', 'aaaaaaaaaaaaaaaa', ts);
  clock.advance(60_000); // ts still passes the timestamp check
  g.checkAndRemember('s', 'bbbbbbbbbbbbbbbb', clock.now()); // evicts a for room
  t.doesNotThrow(() => g.checkTimestamp(ts));
  t.throws(() => g.checkAndRemember('s', 'aaaaaaaaaaaaaaaa', ts), { code: 'REPLAY_DETECTED' }, 'its replay is refused by the floor');
});

t.test('purging keeps a sender whose floor is still inside the window, though it holds no nonce', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const g = new ReplayGuard(clock, { maxNoncesPerSender: 1 });
  const t0 = clock.now();
  g.checkAndRemember('s', 'aaaaaaaaaaaaaaaa', t0 + 5_000); // a timestamp ahead of this clock
  g.checkAndRemember('s', 'bbbbbbbbbbbbbbbb', t0 - 5_000); // evicts a: floor = t0 + 5 s
  clock.set(t0 + 5_000 + 60_000); // b has expired; a's timestamp passes the check for this last millisecond
  g.purgeStale();
  t.equal(g.size, 0, 'no nonce is held');
  t.doesNotThrow(() => g.checkTimestamp(t0 + 5_000));
  t.throws(() => g.checkAndRemember('s', 'aaaaaaaaaaaaaaaa', t0 + 5_000), { code: 'REPLAY_DETECTED' }, 'the floor was kept: the replay of a is refused');
});

t.test('a request that passed the timestamp check but reaches the nonce check after its window is refused, not remembered anew', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const g = new ReplayGuard(clock);
  const ts = clock.now();
  g.checkAndRemember('s', 'aaaaaaaaaaaaaaaa', ts); // the original, accepted
  clock.advance(60_000);
  g.checkTimestamp(ts); // a copy passes the window check at its last millisecond …
  clock.advance(5); // … and its body (or, with workers, the control process's queue) takes a little longer
  g.purgeStale(); // the original's nonce has left the cache
  t.throws(() => g.checkAndRemember('s', 'aaaaaaaaaaaaaaaa', ts), { code: 'TIMESTAMP_OUT_OF_WINDOW' }, 'the copy is refused');
});

t.test('memory follows the traffic: nothing is set aside for the bound up front', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const g = new ReplayGuard(clock, { maxNoncesPerSender: 1_000_000 });
  const before = process.memoryUsage();
  for (let s = 0; s < 20; s++) g.checkAndRemember(`shard-${s}`, '0123456789abcdef', clock.now());
  const after = process.memoryUsage();
  // A cache that allocates its bound per sender would take hundreds of MB here.
  const grown = (after.heapUsed - before.heapUsed + after.arrayBuffers - before.arrayBuffers) / 2 ** 20;
  t.ok(grown < 8, `20 senders with one nonce each: ${grown.toFixed(1)} MB`);
  t.equal(g.size, 20);
});

t.test('a nonce whose first use left the window is taken as new, and counts as the newest for eviction', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const g = new ReplayGuard(clock, { windowMs: 10_000, maxNoncesPerSender: 2 });
  const t0 = clock.now();
  g.checkAndRemember('s', 'aaaaaaaaaaaaaaaa', t0);
  clock.advance(10_001); // a's first use has left the window (not purged yet)
  const t1 = clock.now();
  g.checkAndRemember('s', 'bbbbbbbbbbbbbbbb', t1);
  t.doesNotThrow(() => g.checkAndRemember('s', 'aaaaaaaaaaaaaaaa', t1 + 1), 'a again, with a fresh timestamp');
  t.throws(() => g.checkAndRemember('s', 'aaaaaaaaaaaaaaaa', t1 + 1), { code: 'REPLAY_DETECTED' }, 'and now remembered');
  g.checkAndRemember('s', 'cccccccccccccccc', t1 + 2); // full: the oldest by arrival (b) goes, the floor rises to t1
  t.throws(() => g.checkAndRemember('s', 'dddddddddddddddd', t1), { code: 'REPLAY_DETECTED' }, 'b was evicted: the floor is its timestamp');
  t.throws(() => g.checkAndRemember('s', 'aaaaaaaaaaaaaaaa', t1 + 1), { message: /nonce already used/ }, 'a was kept: refused as a replay, not by the floor');
});
