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
