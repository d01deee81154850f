// Who takes over a replica group: only a copy that is sure to hold every acknowledged write.
import t from 'tap';
import { decide, type Candidate } from '../../../../proxy/failover/election.js';

const c = (shard: string, position: number, source = 'a', sourceTerm = 7): Candidate => ({ shard, position, source, sourceTerm });
const last = { shard: 'a', term: 7 };
const rf3 = ['a', 'b', 'c'];

t.test('RF 3, majority (2 copies per acknowledgement): both other copies must have published', async (t) => {
  t.ok('wait' in decide({ copies: rf3, last, candidates: [c('b', 90)], needed: 2 }), 'one position is not enough: the write may be on the other copy only');
  t.match(decide({ copies: rf3, last, candidates: [c('b', 90), c('c', 120)], needed: 2 }), { winner: 'c', why: /highest position 120/ });
  t.equal((decide({ copies: rf3, last, candidates: [c('c', 120), c('b', 90)], needed: 2 }) as { winner: string }).winner, 'c', 'the highest position wins, whatever the order');
  t.equal((decide({ copies: rf3, last, candidates: [c('c', 90), c('b', 90)], needed: 2 }) as { winner: string }).winner, 'b', 'ties: the lowest shard id');
});

t.test('RF 3, all (3 copies per acknowledgement): any one other copy holds every acknowledged write', async (t) => {
  t.equal((decide({ copies: rf3, last, candidates: [c('c', 5)], needed: 3 }) as { winner: string }).winner, 'c');
});

t.test('RF 2, majority (both copies): the one other copy alone may take over', async (t) => {
  t.equal((decide({ copies: ['a', 'b'], last, candidates: [c('b', 5)], needed: 2 }) as { winner: string }).winner, 'b');
});

t.test('ack primary: only the last holder has every acknowledged write, so nobody else takes over', async (t) => {
  const d = decide({ copies: rf3, last, candidates: [c('b', 90), c('c', 120)], needed: 1 });
  t.ok('wait' in d);
  t.match((d as { wait: string }).wait, /waiting for it to return/);
});

t.test('the last holder back among the candidates wins: it holds every write it acknowledged', async (t) => {
  t.equal((decide({ copies: rf3, last, candidates: [c('b', 900), c('a', 10, 'a')], needed: 2 }) as { winner: string }).winner, 'a');
});

t.test('positions that prove nothing do not count', async (t) => {
  t.ok('wait' in decide({ copies: rf3, last, candidates: [c('b', 90), c('c', -1)], needed: 2 }), 'no position (-1): still copying');
  t.ok('wait' in decide({ copies: rf3, last, candidates: [c('b', 90), c('c', 500, 'b')], needed: 2 }), 'measured in another feed');
  t.ok('wait' in decide({ copies: rf3, last, candidates: [c('b', 90), c('c', 500, 'a', 6)], needed: 2 }), 'in an older term of the holder');
  t.ok('wait' in decide({ copies: rf3, last, candidates: [c('b', 90), c('x', 500)], needed: 2 }), 'a shard that holds no copy of the group');
});
