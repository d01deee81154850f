// Ring/topology lookup rate for 3, 100 and 1,000 shards, and proof that a lookup allocates
// nothing: the number of garbage collections during millions of lookups over pre-hashed tokens.
import { PerformanceObserver } from 'node:perf_hooks';
import { HashRing } from '../src/ring/ring.js';
import { topologyFromRing } from '../src/topology/from-ring.js';
import { xxh64 } from '../src/hash.js';
import { SeededRandom } from '../src/runtime.js';

let gcCount = 0;
new PerformanceObserver((list) => (gcCount += list.getEntries().length)).observe({ entryTypes: ['gc'] });

function rate(label: string, n: number, fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  return n / secs;
}

export async function main(argv: string[]): Promise<void> {
  const lookups = Number(argv[0] ?? 2_000_000);
  const r = new SeededRandom(1);
  const uuids = Array.from({ length: 100_000 }, () => r.uuid());
  const tokens = uuids.map((u) => xxh64(u));
  console.log(`ring/topology lookups (150 vnodes per shard, ${lookups} lookups per figure, median of 5)`);
  console.log('shards  ranges   lookups/s (token)   lookups/s (hash+lookup)   GCs during token lookups');
  for (const shards of [3, 100, 1000]) {
    const ids = Array.from({ length: shards }, (_, i) => `shard-${String(i + 1).padStart(4, '0')}`);
    const topo = topologyFromRing(new HashRing(ids, 150), { cluster: 'bench', epoch: 1 });
    let sink = 0;
    const runTokens = () => {
      let local = 0; // a local accumulator: a captured one would box a number per iteration
      for (let i = 0; i < lookups; i++) local = (local + topo.rangeIndexOf(tokens[i % tokens.length]!)) | 0;
      sink ^= local;
    };
    runTokens(); // warm-up
    await settle();
    const gcBefore = gcCount;
    const tokenRates = Array.from({ length: 5 }, () => rate('token', lookups, runTokens));
    await settle(); // let the observer deliver
    const gcs = gcCount - gcBefore;
    const hashN = Math.floor(lookups / 4);
    const hashRates = Array.from({ length: 5 }, () =>
      rate('hash', hashN, () => {
        let local = 0;
        for (let i = 0; i < hashN; i++) local = (local + topo.rangeIndexOf(xxh64(uuids[i % uuids.length]!))) | 0;
        sink ^= local;
      }),
    );
    console.log(
      `${String(shards).padStart(6)}  ${String(topo.ranges.length).padStart(6)}   ${fmt(median(tokenRates)).padStart(17)}   ${fmt(median(hashRates)).padStart(23)}   ${gcs}`,
    );
    if (sink === -1) console.log('');
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (x: number) => `${(x / 1e6).toFixed(2)} M`;
/** Lets pending collections of earlier garbage run and their events arrive. */
const settle = () => new Promise((res) => setTimeout(res, 150));
