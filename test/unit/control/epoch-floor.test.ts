// The epoch floor of a cache-less start: the highest epoch at least two other shards report, so
// that one shard alone can neither raise it nor lower it.
import t from 'tap';
import { floorOf } from '../../../src/control/epoch-floor.js';

t.test('no floor with fewer than two reports', async (t) => {
  t.equal(floorOf([]), undefined);
  t.equal(floorOf([9]), undefined);
});

t.test('the second-highest report', async (t) => {
  t.equal(floorOf([7, 7]), 7);
  t.equal(floorOf([7, 7, 7]), 7);
  t.equal(floorOf([1_000_000, 7, 7]), 7, 'one shard reporting a huge epoch does not raise it');
  t.equal(floorOf([0, 7, 7]), 7, 'one shard reporting an old epoch does not lower it');
  t.equal(floorOf([5, 7]), 5, 'two shards mid-change: the lower');
});
