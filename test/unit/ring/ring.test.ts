import t from 'tap';
import { HashRing } from '../../../src/ring/ring.js';
import { TOKEN_MAX } from '../../../src/hash.js';
import { SeededRandom } from '../../../src/runtime.js';
import { xxhsum64 } from '../../support/xxhsum.js';

// The ring's rule stated literally: the first vnode token ≥ t, wrapping to the smallest.
function ownerBySpec(vnodes: { token: bigint; shard: string }[], t: bigint): string {
  let best: { token: bigint; shard: string } | undefined;
  let min = vnodes[0]!;
  for (const v of vnodes) {
    if (v.token < min.token) min = v;
    if (v.token >= t && (!best || v.token < best.token)) best = v;
  }
  return (best ?? min).shard;
}

function randomToken(r: SeededRandom): bigint {
  return r.bytes(8).readBigUInt64BE();
}

t.test('vnode tokens are XXH64("{shardId}#{i}", 0) per an independent xxhsum', async (t) => {
  const ring = new HashRing(['shard-001', 'shard-002'], 150);
  t.equal(ring.vnodes.length, 300);
  for (const probe of ['shard-001#0', 'shard-001#149', 'shard-002#7']) {
    const token = xxhsum64(probe);
    t.ok(ring.vnodes.some((v) => v.token === token && probe.startsWith(v.shard + '#')), probe);
  }
});

t.test('ownerOf follows "first vnode token ≥ hash, wrapping" for random and edge tokens', async (t) => {
  const r = new SeededRandom(7);
  for (const n of [1, 2, 3, 17]) {
    const ids = Array.from({ length: n }, (_, i) => `s${i}`);
    const ring = new HashRing(ids, 20);
    const vnodes = [...ring.vnodes];
    const probes = [0n, TOKEN_MAX, vnodes[0]!.token, vnodes[0]!.token + 1n, vnodes.at(-1)!.token, vnodes.at(-1)!.token + 1n];
    for (let i = 0; i < 500; i++) probes.push(randomToken(r));
    let mismatches = 0;
    for (const p of probes) if (p <= TOKEN_MAX && ring.ownerOf(p) !== ownerBySpec(vnodes, p)) mismatches++;
    t.equal(mismatches, 0, `${n} shards`);
  }
});

t.test('preference list: owner first, then distinct shards clockwise', async (t) => {
  const ring = new HashRing(['a', 'b', 'c', 'd'], 10);
  for (let i = 0; i < ring.vnodes.length; i++) {
    const list = ring.preferenceList(i, 2);
    t.equal(list[0], ring.vnodes[i]!.shard);
    t.equal(new Set(list).size, 3);
    // The second entry is the first vnode clockwise whose shard differs from the owner.
    let j = (i + 1) % ring.vnodes.length;
    while (ring.vnodes[j]!.shard === list[0]) j = (j + 1) % ring.vnodes.length;
    t.equal(list[1], ring.vnodes[j]!.shard);
  }
  t.same(new HashRing(['a', 'b'], 5).preferenceList(0, 5).length, 2, 'never more than the shard count');
});

t.test('bad ring parameters are refused', async (t) => {
  t.throws(() => new HashRing([]));
  t.throws(() => new HashRing(['a', 'a']));
  t.throws(() => new HashRing(['a'], 0));
});
