// The fencing deadline: a primary counts its lease alive only until (keep-alive sent + TTL −
// margin), by its own monotonic clock; etcd can only expire the lease later than that.
import t from 'tap';
import { LeaseDeadline } from '../../../../proxy/failover/fencing-lease.js';

function setup(ttlMs = 1000) {
  let now = 0;
  const d = new LeaseDeadline(ttlMs, () => now);
  return { d, at: (ms: number) => (now = ms) };
}

t.test('a granted lease is alive until the TTL minus the margin from when it was asked for', async (t) => {
  const { d, at } = setup();
  t.equal(d.marginMs, 150);
  t.notOk(d.alive(), 'not before it is granted');
  at(10);
  d.granted(0);
  at(849);
  t.ok(d.alive());
  at(850);
  t.notOk(d.alive(), 'asked at 0: at most until 1000 − 150');
});

t.test('a confirmed keep-alive extends from when it was sent, not from when the answer came', async (t) => {
  const { d, at } = setup();
  d.granted(0);
  at(300);
  d.keepaliveSent();
  at(800); // a slow answer
  d.keepaliveConfirmed(1);
  at(1149);
  t.ok(d.alive());
  at(1150);
  t.notOk(d.alive(), 'sent at 300: until 300 + 1000 − 150, although confirmed at 800');
  t.equal(d.remainingMs(), 0);
});

t.test('a keep-alive that failed or was never confirmed extends nothing; a lost lease is dead at once', async (t) => {
  const { d, at } = setup();
  d.granted(0);
  at(300);
  d.keepaliveSent();
  d.keepaliveFailed();
  d.keepaliveConfirmed(1); // a stray answer after the failure: no send to pair it with
  at(850);
  t.notOk(d.alive());
  d.granted(800);
  at(900);
  t.ok(d.alive());
  d.lost();
  t.notOk(d.alive());
});

t.test('etcd granting a shorter TTL than asked shortens the deadline', async (t) => {
  const { d, at } = setup(3000);
  d.granted(0);
  at(100);
  d.keepaliveSent();
  d.keepaliveConfirmed(1);
  at(2000);
  t.ok(d.alive(), 'the grant itself still holds: deadlines never move back');
  at(2650);
  t.notOk(d.alive());
});

t.test('answers pair with keep-alives in the order they were sent', async (t) => {
  const { d, at } = setup();
  d.granted(0);
  at(100);
  d.keepaliveSent();
  at(400);
  d.keepaliveSent();
  d.keepaliveConfirmed(1); // the answer to the one sent at 100
  at(949);
  t.ok(d.alive());
  at(950);
  t.notOk(d.alive(), 'until 100 + 1000 − 150, not from the later send');
  d.keepaliveConfirmed(1);
  t.ok(d.alive(), 'the second answer extends from 400');
});
