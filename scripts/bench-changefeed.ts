// Write latency while the change log is trimmed: p50/p99/max of acknowledged writes (fsynced
// group commit, in process) with no trimming, with steady trimming, and while a backlog of old
// records is deleted in the background. `npm run bench -- changefeed [seconds] [backlog]`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../src/log.js';
import { SeededRandom, systemClock } from '../src/runtime.js';
import { systemTimers } from '../storage-node/changefeed.js';
import { Retention, type RetentionSettings } from '../storage-node/retention.js';
import { Store } from '../storage-node/store.js';

const KEEP_ALL: RetentionSettings = { feedRetainMs: 3600_000, feedRetainRecords: 1e12, feedMaxRecords: 1e12, feedTrimIntervalMs: 100, feedFollowerTtlMs: 60_000 };
const TRIM: RetentionSettings = { feedRetainMs: 0, feedRetainRecords: 1000, feedMaxRecords: 1e12, feedTrimIntervalMs: 100, feedFollowerTtlMs: 60_000 };

interface Figures {
  writes: number;
  p50: number;
  p99: number;
  max: number;
}

/** Writes with `concurrency` in flight for `ms`, returning latency percentiles in ms. */
async function writeFor(store: Store, ms: number, concurrency: number, uuids: string[]): Promise<Figures> {
  const lat: number[] = [];
  const end = Date.now() + ms;
  let i = 0;
  const blob = JSON.stringify({ pad: 'x'.repeat(200) });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        const t0 = performance.now();
        await store.put('document.bench.items', uuids[i++ % uuids.length]!, blob);
        lat.push(performance.now() - t0);
      }
    }),
  );
  lat.sort((a, b) => a - b);
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!;
  return { writes: lat.length, p50: q(0.5), p99: q(0.99), max: lat[lat.length - 1]! };
}

async function phase(label: string, store: Store, settings: RetentionSettings, ms: number, uuids: string[]): Promise<void> {
  const r = new Retention(store, settings, systemClock, systemTimers, silentLogger);
  await r.start();
  const before = store.log.trimmedThrough;
  const f = await writeFor(store, ms, 16, uuids);
  await r.stop();
  const trimmed = store.log.trimmedThrough - before;
  console.log(`${label.padEnd(34)} ${String(f.writes).padStart(7)}  ${f.p50.toFixed(2).padStart(7)}  ${f.p99.toFixed(2).padStart(7)}  ${f.max.toFixed(2).padStart(7)}  ${String(trimmed).padStart(9)}`);
}

export async function main(argv: string[]): Promise<void> {
  const ms = Number(argv[0] ?? 3) * 1000;
  const backlog = Number(argv[1] ?? 200_000);
  const dir = mkdtempSync(join(tmpdir(), 'themis-bench-feed-'));
  const rnd = new SeededRandom(7);
  const uuids = Array.from({ length: 5000 }, () => rnd.uuid());
  const store = await Store.open(dir);
  try {
    console.log(`change-log trimming vs write latency (16 writers, fsync group commit, ${ms / 1000} s per phase)`);
    console.log('phase                               writes   p50 ms   p99 ms   max ms   trimmed');
    await phase('no trimming', store, KEEP_ALL, ms, uuids);
    await phase('steady trimming (keep 1000)', store, TRIM, ms, uuids);
    // A backlog: fill the log, then trim it all while writing.
    while (store.lastSeq - store.log.trimmedThrough < backlog) {
      await Promise.all(Array.from({ length: 1000 }, (_, i) => store.put('document.bench.items', uuids[i % uuids.length]!, '{}')));
    }
    await phase(`trimming a ${backlog}-record backlog`, store, TRIM, ms, uuids);
    await phase('no trimming (again)', store, KEEP_ALL, ms, uuids);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
