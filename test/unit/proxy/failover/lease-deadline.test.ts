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

// Found by mutation testing (docs/testing.md).
import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';
import { FencingLease } from '../../../../proxy/failover/fencing-lease.js';

t.test('a keep-alive answered with TTL 0 (the lease already expired in etcd) extends nothing', async (t) => {
  const { d, at } = setup();
  d.granted(0);
  at(100);
  d.keepaliveSent();
  d.keepaliveConfirmed(0);
  at(850);
  t.notOk(d.alive(), 'still only until the grant’s deadline');
  t.equal(d.remainingMs(), 0, 'never negative');
  at(700);
  t.equal(d.remainingMs(), 150);
});

t.test('an answer with no keep-alive outstanding changes nothing', async (t) => {
  const { d, at } = setup();
  d.granted(0);
  d.keepaliveConfirmed(1);
  at(100);
  t.ok(d.alive(), 'still alive: the grant’s deadline stands');
  t.equal(d.remainingMs(), 750, 'and it is a number, not NaN');
});

/** etcd3's Lease as FencingLease uses it: events, grant, revoke, release. */
class FakeLease extends EventEmitter {
  released = 0;
  revoked = 0;
  constructor(readonly ttl: number, readonly opts: unknown) {
    super();
  }
  async grant(): Promise<string> {
    return '7587';
  }
  async revoke(): Promise<void> {
    this.revoked++;
    throw new Error('etcd unreachable'); // a failed revoke is not the caller's problem
  }
  release(): void {
    this.released++;
  }
}

async function granted() {
  let now = 0;
  let lease!: FakeLease;
  const etcd = { lease: (ttl: number, opts: unknown) => (lease = new FakeLease(ttl, opts)) } as unknown as Etcd3;
  const lost: string[] = [];
  const l = await FencingLease.grant(etcd, { ttlSeconds: 2, monotonic: () => now, onLost: (why) => lost.push(why) });
  return { l, lease, lost, at: (ms: number) => (now = ms) };
}

t.test('FencingLease: granted with keep-alives, alive by its deadline, lost once', async (t) => {
  const { l, lease, lost, at } = await granted();
  t.equal(l.id, '7587');
  t.same([lease.ttl, lease.opts], [2, { autoKeepAlive: true }]);
  t.ok(l.alive(), 'alive after the grant');
  at(1500);
  lease.emit('keepaliveFired');
  lease.emit('keepaliveSucceeded', { TTL: '2' });
  at(3000);
  t.ok(l.alive(), 'a keep-alive sent at 1.5 s extends to 1.5 + 2 − 0.25 s');
  lease.emit('keepaliveFired');
  lease.emit('keepaliveFailed');
  lease.emit('keepaliveSucceeded', { TTL: '2' }); // a late answer to nothing outstanding
  at(3250);
  t.notOk(l.alive(), 'a failed keep-alive extends nothing, nor does an answer after it');
  at(3000);
  lease.emit('lost', new Error('etcd says no'));
  t.notOk(l.alive(), 'lost: dead at once, whatever the deadline');
  lease.emit('lost', new Error('again'));
  t.same(lost, ['lease lost: etcd says no'], 'told once');
});

t.test('FencingLease: revoke and close end it at once', async (t) => {
  const a = await granted();
  await a.l.revoke();
  t.notOk(a.l.alive());
  t.equal(a.lease.revoked, 1);
  const b = await granted();
  b.l.close();
  t.notOk(b.l.alive());
  t.equal(b.lease.released, 1);
  a.lease.emit('lost', new Error('revoked under it'));
  b.lease.emit('lost', new Error('released under it'));
  t.same([a.lost, b.lost], [[], []], 'giving it up is not losing it');
});
