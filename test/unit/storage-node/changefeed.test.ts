import t from 'tap';
import { ChangeWaiters, parseChangefeedParams, type Timers } from '../../../storage-node/changefeed.js';
import { parseScanParams } from '../../../storage-node/scan.js';
import { FakeClock } from '../../../src/runtime.js';

/** Timers driven by a FakeClock: `advance` moves the clock and fires what is due. */
class FakeTimers implements Timers {
  private pending = new Map<number, { at: number; fn: () => void }>();
  private next = 1;
  constructor(readonly clock: FakeClock) {}
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.pending.set(id, { at: this.clock.monotonic() + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  get count(): number {
    return this.pending.size;
  }
  advance(ms: number): void {
    this.clock.advance(ms);
    for (const [id, p] of [...this.pending]) {
      if (p.at <= this.clock.monotonic()) {
        this.pending.delete(id);
        p.fn();
      }
    }
  }
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

function setup(lastSeq = 5): { waiters: ChangeWaiters; timers: FakeTimers } {
  const clock = new FakeClock();
  const timers = new FakeTimers(clock);
  return { waiters: new ChangeWaiters(lastSeq, clock, timers), timers };
}

t.test('a long poll wakes on the first commit after from_seq, and clears its timer', async (t) => {
  const { waiters, timers } = setup(5);
  let result: boolean | undefined;
  void waiters.wait(5, 1000).then((r) => (result = r));
  await settle();
  t.equal(waiters.size, 1);
  timers.advance(999);
  await settle();
  t.equal(result, undefined, 'still waiting just before the deadline');
  waiters.committed(6);
  await settle();
  t.equal(result, true);
  t.equal(waiters.size, 0);
  t.equal(timers.count, 0, 'timer cancelled');
});

t.test('a long poll times out when nothing is committed', async (t) => {
  const { waiters, timers } = setup(5);
  let result: boolean | undefined;
  void waiters.wait(5, 1000).then((r) => (result = r));
  await settle();
  timers.advance(1000);
  await settle();
  t.equal(result, false);
});

t.test('a client ahead of the node keeps waiting through commits it already has', async (t) => {
  const { waiters, timers } = setup(5);
  let result: boolean | undefined;
  void waiters.wait(8, 1000).then((r) => (result = r));
  await settle();
  waiters.committed(7);
  await settle();
  t.equal(result, undefined, 'sequence 7 is not after 8');
  timers.advance(500);
  waiters.committed(9);
  await settle();
  t.equal(result, true);
});

t.test('already newer, closing, and abort all end the wait at once', async (t) => {
  const { waiters } = setup(5);
  t.equal(await waiters.wait(4, 1000), true, 'sequence 5 is already after 4');
  const ac = new AbortController();
  const aborted = waiters.wait(5, 1000, ac.signal);
  ac.abort();
  t.equal(await aborted, false);
  const closing = waiters.wait(5, 1000);
  waiters.close();
  t.equal(await closing, false);
  t.equal(await waiters.wait(5, 1000), false, 'after close, waits return at once');
  t.equal(waiters.size, 0);
});

t.test('changefeed parameters: defaults, cap, and every bad value is INVALID_PARAMETER', async (t) => {
  const p = (s: string) => parseChangefeedParams(new URLSearchParams(s), 30000);
  t.same(p(''), { fromSeq: 0, limit: 100, longPollMs: 0 });
  t.same(p('from_seq=7&limit=1000&long_poll_ms=99999'), { fromSeq: 7, limit: 1000, longPollMs: 30000 }, 'long poll capped');
  const bad = ['from_seq=-1', 'from_seq=1.5', 'from_seq=abc', 'from_seq=', 'from_seq=1e3', 'from_seq=+1', 'from_seq=99999999999999999',
    'limit=0', 'limit=1001', 'long_poll_ms=-1', 'long_poll_ms=x', 'limit=1&limit=2', 'fromSeq=1', 'from_seq=%201'];
  for (const q of bad) t.throws(() => p(q), { code: 'INVALID_PARAMETER' }, q);
});

t.test('scan parameters: table, after (either key form) and limit', async (t) => {
  const uuid = '550e8400-e29b-41d4-a716-446655440000';
  const p = (s: string) => parseScanParams(new URLSearchParams(s));
  t.same(p(''), { table: undefined, after: undefined, limit: 100 });
  t.same(p(`table=graph.a.b&after=urn:themis:graph:a:b:${uuid}&limit=5`), {
    table: 'graph.a.b',
    after: { table: 'graph.a.b', uuid },
    limit: 5,
  });
  t.same(p(`after=graph.a.b:${uuid}`).after, { table: 'graph.a.b', uuid });
  const bad = ['table=graph.a', 'table=nope.a.b', `table=graph.a.b&after=graph.a.c:${uuid}`, 'after=graph.a.b:not-a-uuid',
    'limit=0', 'limit=1001', 'limit=ten', 'table=graph.a.b&table=graph.a.c', 'cursor=x'];
  for (const q of bad) t.throws(() => p(q), { code: 'INVALID_PARAMETER' }, q);
});
