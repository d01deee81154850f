// The cutover's write hold: writes to held tokens wait (they are not refused) until release;
// writes elsewhere pass; "drained" waits for writes already past the hold.
import t from 'tap';
import { WriteHold } from '../../../proxy/rebalance/write-hold.js';
import { tokenOf, parseKey } from '../../../src/urn/urn.js';
import { uuidOwnedBy } from '../../support/keys.js';

const HALF = 2n ** 63n;
const low = () => `document.a.b:${uuidOwnedBy({ start: 0n, end: HALF - 1n })}`;
const high = () => `document.a.b:${uuidOwnedBy({ start: HALF, end: 2n ** 64n - 1n })}`;
const tick = () => new Promise((r) => setTimeout(r, 10));

t.test('held writes wait for the release; others pass', async (t) => {
  const h = new WriteHold();
  const { release } = h.hold([{ start: 0n, end: HALF - 1n }]);
  t.ok(tokenOf(parseKey(low())) < HALF);
  let entered = false;
  const held = h.enter(low()).then((leave) => {
    entered = true;
    leave();
  });
  const other = await h.enter(high());
  other();
  await tick();
  t.notOk(entered, 'a write to a held token waits');
  release();
  await held;
  t.ok(entered, 'and goes on once released');
  t.equal(h.active, 0);
});

t.test('drained waits for the writes already past the hold', async (t) => {
  const h = new WriteHold();
  const leave = await h.enter(low());
  const { drained, release } = h.hold([{ start: 0n, end: HALF - 1n }]);
  let done = false;
  void drained.then(() => (done = true));
  await tick();
  t.notOk(done, 'a write in flight in the held tokens');
  leave();
  await tick();
  t.ok(done, 'drained once it finished');
  release();
  const { drained: empty, release: r2 } = h.hold([{ start: HALF, end: 2n ** 64n - 1n }]);
  await empty; // nothing in flight there
  r2();
  t.pass('a hold with nothing in flight is drained at once');
});
