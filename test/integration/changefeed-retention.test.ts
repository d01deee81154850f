// Change-log retention on a real storage node under a steady write loop: the record count levels
// off, the age and size windows are always kept, trimming really deletes, and reads from below
// the horizon answer 410 CHANGEFEED_TRIMMED with oldest_seq.
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { History, writeLoop } from '../support/history.js';
import { call, removeDir, runStorage, startStorage, type StorageProcess } from '../support/storage-process.js';

const RETAIN_MS = 1500;
const RETAIN_RECORDS = 300;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let node: StorageProcess;
t.before(async () => {
  node = await startStorage({ args: ['--feed-retain-ms', String(RETAIN_MS), '--feed-retain-records', String(RETAIN_RECORDS), '--feed-max-records', '1000000', '--feed-trim-interval-ms', '100'] });
});
t.teardown(async () => {
  await node.stop();
  removeDir(node.dataDir);
});

interface Sample {
  start: number;
  end: number;
  last: number;
  oldest: number;
  records: number;
}

t.test('under a steady write loop the log levels off, keeping the age and size windows', async (t) => {
  const keys = Array.from({ length: 64 }, () => `document.ret.items:${randomUUID()}`);
  const history = new History();
  let stop!: () => void;
  const until = new Promise<void>((r) => (stop = r));
  const loop = writeLoop(history, keys, async (k, blob) => {
    const r = await call(node.url, 'PUT', `/entities/${k}`, { blob });
    return { status: r.status, code: r.body?.code };
  }, { until, concurrency: 8 });
  const samples: Sample[] = [];
  const began = Date.now();
  while (Date.now() - began < 7000) {
    const start = Date.now();
    const h = (await call(node.url, 'GET', '/health')).body.changefeed;
    samples.push({ start, end: Date.now(), last: h.last_seq, oldest: h.oldest_seq, records: h.records });
    await sleep(200);
  }
  stop();
  const stats = await loop;
  t.equal(stats.failed, 0, `${stats.acknowledged} writes, none failed`);
  const rate = stats.acknowledged / 7;
  // Levelling off, whatever the write rate does meanwhile (on a loaded machine it changes a lot):
  // once the run is past the age window, a sample holds no more than the changes written in the
  // last HELD_MS before it — the age window, plus the age's one-second marks, the trim interval
  // and a second for a trim delayed by load — and the size window.
  const HELD_MS = RETAIN_MS + 1000 + 100 + 1000;
  const late = samples.filter((s) => s.start - began > 4500);
  const peak = (xs: Sample[]) => Math.max(...xs.map((s) => s.records));
  for (const s of late) {
    const before = [...samples].reverse().find((e) => e.end <= s.start - HELD_MS);
    if (before && s.records > s.last - before.last + RETAIN_RECORDS) t.fail(`${s.records} records held at ${s.last}, but only ${s.last - before.last} were written in the ${HELD_MS} ms before`);
  }
  t.pass(`levelled off: late samples hold at most the last ${HELD_MS} ms of writes (peak ${peak(late)} records, ≈${rate.toFixed(0)} writes/s)`);
  // A record may stay up to RETAIN_MS + 1 s (age is marked per second) + a trim interval, about
  // 2.6 s of a 7 s run: a log that is trimmed at all holds well under three quarters of it.
  t.ok(peak(late) < 0.75 * samples[samples.length - 1]!.last, `the log is trimmed: ${peak(late)} records held of ${samples[samples.length - 1]!.last} written`);
  // The windows: never fewer than RETAIN_RECORDS records, never a record younger than RETAIN_MS.
  for (const s of samples) {
    if (s.records < Math.min(RETAIN_RECORDS, s.last)) t.fail(`only ${s.records} records at ${s.last}`);
    for (const earlier of samples) {
      // Every change after `earlier.last` was committed after `earlier.start`, so it is younger
      // than RETAIN_MS while s.end - earlier.start < RETAIN_MS and must still be held.
      if (s.end - earlier.start < RETAIN_MS && s.oldest - 1 > earlier.last) t.fail(`trimmed through ${s.oldest - 1}, past ${earlier.last} seen ${s.end - earlier.start} ms before`);
    }
  }
  t.pass(`${samples.length} samples checked against both windows`);
  // Idle: the age window empties, the size window stays.
  await sleep(RETAIN_MS + 1500);
  const h = (await call(node.url, 'GET', '/health')).body.changefeed;
  t.equal(h.records, RETAIN_RECORDS, 'idle: exactly the size window is left');
  t.ok(h.trims > 0 && h.trimmed_records === h.oldest_seq - 1, `${h.trims} trims deleted ${h.trimmed_records} records`);
});

t.test('reads from below the horizon: 410 CHANGEFEED_TRIMMED with oldest_seq; at the horizon they are served', async (t) => {
  const h = (await call(node.url, 'GET', '/health')).body.changefeed;
  const r = await call(node.url, 'GET', `/changefeed?from_seq=${h.oldest_seq - 2}`);
  t.same([r.status, r.body.code, r.body.error, r.body.oldest_seq, r.body.trimmed_through], [410, 'CHANGEFEED_TRIMMED', true, h.oldest_seq, h.oldest_seq - 1]);
  t.match(r.body.message, /full copy/);
  const ok = await call(node.url, 'GET', `/changefeed?from_seq=${h.oldest_seq - 1}&limit=1`);
  t.equal(ok.status, 200);
  t.equal(ok.body.changes[0].sequence, h.oldest_seq, 'from trimmed_through: the oldest record first');
  t.equal((await call(node.url, 'GET', '/changefeed?from_seq=9999999')).status, 200, 'a client ahead of the node is not below the horizon');
});

t.test('follower registrations: bad bodies are INVALID_BODY naming the field; registered followers are listed with their lag', async (t) => {
  for (const [body, field] of [[{ seq: 1 }, 'id'], [{ id: 'a b', seq: 1 }, 'id'], [{ id: 'a', seq: -1 }, 'seq'], [{ id: 'a', seq: 1.5 }, 'seq'], [{ id: 'a' }, 'seq'], [{ id: 'a', seq: 1, ttl: 3 }, 'ttl']] as const) {
    const r = await call(node.url, 'POST', '/changefeed/followers', body);
    t.same([r.status, r.body.code], [400, 'INVALID_BODY'], JSON.stringify(body));
    t.match(r.body.message, field);
  }
  const last = (await call(node.url, 'GET', '/health')).body.last_seq;
  t.equal((await call(node.url, 'POST', '/changefeed/followers', { id: 'backup-1', seq: last - 5 })).status, 200);
  const list = (await call(node.url, 'GET', '/changefeed/followers')).body;
  t.match(list.followers, [{ id: 'backup-1', seq: last - 5, lag: 5, behind_horizon: false }]);
  t.same((await call(node.url, 'POST', '/changefeed/followers', { id: 'backup-1', seq: null })).body, { id: 'backup-1', removed: true });
  t.same((await call(node.url, 'GET', '/changefeed/followers')).body.followers, []);
});

t.test('a bad retention setting stops the node at start-up, naming the field', async (t) => {
  const r = await runStorage(['--port', '0', '--data-dir', '/tmp/unused-themis', '--feed-retain-records', '100', '--feed-max-records', '10']);
  t.equal(r.code, 2);
  t.match(r.stderr, /feedMaxRecords/);
});
