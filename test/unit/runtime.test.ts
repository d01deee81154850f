import t from 'tap';
import { systemRandom, SeededRandom, FakeClock } from '../../src/runtime.js';

t.test('systemRandom: right lengths and no repeats across pool refills', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 5000; i++) seen.add(systemRandom.bytes(8).toString('hex')); // ~10 refills of the 4 KiB pool
  t.equal(seen.size, 5000);
  t.equal(systemRandom.bytes(3).length, 3);
  t.equal(systemRandom.bytes(5000).length, 5000, 'large requests bypass the pool');
  t.match(systemRandom.uuid(), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

t.test('SeededRandom is reproducible and makes v4 uuids; FakeClock only moves when told', async (t) => {
  t.same(new SeededRandom(9).bytes(16), new SeededRandom(9).bytes(16));
  t.not(new SeededRandom(9).uuid(), new SeededRandom(10).uuid());
  t.match(new SeededRandom(1).uuid(), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const c = new FakeClock(1000);
  t.equal(c.now(), 1000);
  c.advance(500);
  t.equal(c.now(), 1500);
});
