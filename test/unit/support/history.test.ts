// The history checker must catch what it exists for: a lost, a reverted and an invented value.
import t from 'tap';
import { History } from '../../support/history.js';

t.test('judges each key by its last acknowledged write', async (t) => {
  const h = new History('w1');
  const a1 = h.next('a'); h.ack('a', a1.n);
  const a2 = h.next('a'); h.ack('a', a2.n);
  const b1 = h.next('b'); h.ack('b', b1.n);
  const b2 = h.next('b'); // attempted, never acknowledged
  const c1 = h.next('c'); h.ack('c', c1.n);
  const d1 = h.next('d'); h.ack('d', d1.n);
  const e1 = h.next('e'); // attempted only
  const store: Record<string, string | undefined> = {
    a: a1.blob, // older than the acknowledged a2: reverted
    b: b2.blob, // newer than acknowledged: fine (the answer was lost, the write landed)
    c: undefined, // acknowledged, gone: lost
    d: JSON.stringify({ key: 'd', n: 0, writer: 'someone-else' }), // never written: invented
    e: undefined, // never acknowledged: fine either way
  };
  const v = await h.check(async (k) => store[k]);
  t.same(v, { checked: 5, lost: ['c'], reverted: ['a'], invented: ['d'] });
  store.a = a2.blob;
  store.c = c1.blob;
  store.d = d1.blob;
  store.e = e1.blob;
  t.same(await h.check(async (k) => store[k]), { checked: 5, lost: [], reverted: [], invented: [] }, 'and passes a store that kept everything');
});
