// The retention policy on a real LevelDB store with a fake clock: age vs record windows (the one
// keeping more wins), registered followers hold the log up to the hard cap, expired ones do not,
// and a trim cut short by a crash is finished when the store is opened again.
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../src/log.js';
import { systemTimers } from '../../../storage-node/changefeed.js';
import { TRIMMED_KEY } from '../../../storage-node/layout.js';
import { Retention, type RetentionSettings } from '../../../storage-node/retention.js';
import { Store } from '../../../storage-node/store.js';

const u = (n: number): string => `${String(n).padStart(8, '0')}-0000-4000-8000-000000000000`;
const base: RetentionSettings = { feedRetainMs: 10_000, feedRetainRecords: 5, feedMaxRecords: 40, feedTrimIntervalMs: 3_600_000, feedFollowerTtlMs: 60_000 };

async function setup(t: Test, s: Partial<RetentionSettings> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'retention-unit-'));
  let now = 1_000_000;
  const clock = { now: () => now, monotonic: () => now };
  const store = await Store.open(dir, undefined, () => now);
  const r = new Retention(store, { ...base, ...s }, clock, systemTimers, silentLogger);
  await r.start();
  t.teardown(async () => {
    await r.stop();
    await store.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });
  const write = async (n: number) => {
    for (let i = 0; i < n; i++) await store.put('document.ns.c', u(i % 7), `{"i":${i}}`);
  };
  return { store, r, dir, write, advance: (ms: number) => (now += ms) };
}

t.test('age or records, whichever keeps more (age known to within the second of a time mark)', async (t) => {
  const { store, r, write, advance } = await setup(t);
  await write(20); // in second t0: its time mark → 20
  advance(1_000);
  await write(10); // in second t0 + 1 s: → 30
  advance(5_000);
  t.equal(await r.trimOnce(), 0, 'everything younger than 10 s is kept');
  advance(5_500); // t0 + 11.5 s: the first 20 are over 10 s old
  t.equal(await r.trimOnce(), 20, 'the 20 older than 10 s go; 10 stay (more than retain_records 5)');
  t.equal(store.log.trimmedThrough, 20);
  advance(20_000);
  await r.trimOnce();
  t.equal(store.log.trimmedThrough, 25, 'all old: the record window keeps 5');
  t.same((await store.changes(0, 100, 1 << 20)).map((c) => c.seq), [26, 27, 28, 29, 30], 'records below the horizon are deleted');
  t.same((await store.changes(25, 100, 1 << 20)).map((c) => c.seq), [26, 27, 28, 29, 30]);
});

t.test('a registered follower holds the log up to the hard cap; an expired one does not', async (t) => {
  const { store, r, write, advance } = await setup(t, { feedRetainMs: 0 });
  await write(10);
  await r.register('backup', 3);
  await write(20);
  advance(1_000); // a time mark: all 30 are older than retain_ms 0
  await write(1);
  await r.trimOnce();
  t.equal(store.log.trimmedThrough, 3, 'held at the checkpoint');
  await write(19); // 50 written: the cap of 40 records wins
  await r.trimOnce();
  t.equal(store.log.trimmedThrough, 10, 'hard cap');
  t.equal(r.stats.followersCutOff, 1);
  t.match((await r.report()).followers, [{ id: 'backup', seq: 3, lag: 47, behind_horizon: true }]);
  await r.register('backup', 30);
  advance(61_000);
  await write(1); // a time mark: all 51 are old
  await r.trimOnce();
  t.equal(store.log.trimmedThrough, 46, 'expired: only retain_records holds');
  t.same((await r.report()).followers, []);
});

t.test('a trim cut short (horizon recorded, records not yet deleted) is finished at open', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'retention-unit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  let store = await Store.open(dir);
  for (let i = 0; i < 30; i++) await store.put('document.ns.c', u(i), '{}');
  await store.close();
  // What a crash between recording the horizon and deleting leaves behind.
  const { ClassicLevel } = await import('classic-level');
  const db = new ClassicLevel<string, string>(dir);
  await db.put(TRIMMED_KEY, '12');
  await db.close();
  store = await Store.open(dir);
  t.equal(store.log.trimmedThrough, 12);
  t.same((await store.changes(0, 100, 1 << 20)).map((c) => c.seq)[0], 13, 'records up to the horizon are gone');
  await store.close();
});
