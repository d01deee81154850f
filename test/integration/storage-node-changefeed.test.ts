// GET /changefeed on a real storage node child process: record shape, paging by sequence,
// long polls woken by a write or ended by their timeout, the cap, and shutdown during a poll.
import t from 'tap';
import { call, removeDir, startStorage, type StorageProcess } from '../support/storage-process.js';

const K1 = 'document.feed.items:00000000-0000-4000-8000-000000000001';
const K2 = 'urn:themis:document:feed:items:00000000-0000-4000-8000-000000000002';
const K2_THEMIS = 'document.feed.items:00000000-0000-4000-8000-000000000002';

let node: StorageProcess;
t.before(async () => {
  node = await startStorage({ args: ['--max-long-poll-ms', '2000'] });
});
t.teardown(async () => {
  await node.stop();
  removeDir(node.dataDir);
});

const feed = (query: string) => call(node.url, 'GET', `/changefeed?${query}`);

t.test('records: PUT, overwrite, DELETE, with old and new values; missing deletes leave no trace', async (t) => {
  t.same((await feed('')).body, { changes: [], last_seq: 0, latest_seq: 0 }, 'empty node');
  const before = Date.now();
  await call(node.url, 'PUT', `/entities/${K1}`, { blob: '{"v":1}' });
  await call(node.url, 'PUT', `/entities/${K2}`, { blob: '"two"' });
  await call(node.url, 'PUT', `/entities/${K1}`, { blob: '{"v":2}' });
  await call(node.url, 'DELETE', `/entities/${K1}`);
  t.equal((await call(node.url, 'DELETE', `/entities/${K1}`)).status, 404);
  const after = Date.now();
  const r = await feed('from_seq=0');
  t.equal(r.status, 200);
  // committed_at (ours): the node's clock at each commit, ISO 8601 with ms, non-decreasing.
  const stamps = (r.body.changes as { committed_at: string }[]).map((c) => c.committed_at);
  t.ok(stamps.every((s) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(s)), `every record carries its commit time: ${stamps.join(', ')}`);
  const ms = stamps.map((s) => Date.parse(s));
  t.ok(ms.every((m, i) => m >= before && m <= after && (i === 0 || m >= ms[i - 1]!)), 'within the writes’ time, in order');
  for (const c of r.body.changes) delete c.committed_at;
  t.same(r.body, {
    changes: [
      { operation: 'PUT', key: K1, sequence: 1, old_val: null, new_val: '{"v":1}' },
      { operation: 'PUT', key: K2_THEMIS, sequence: 2, old_val: null, new_val: '"two"' },
      { operation: 'PUT', key: K1, sequence: 3, old_val: '{"v":1}', new_val: '{"v":2}' },
      { operation: 'DELETE', key: K1, sequence: 4, old_val: '{"v":2}', new_val: null },
    ],
    last_seq: 4,
    latest_seq: 4,
  });
});

t.test('from_seq and limit page through the log', async (t) => {
  const page = await feed('from_seq=1&limit=2');
  t.same(page.body.changes.map((c: { sequence: number }) => c.sequence), [2, 3]);
  t.equal(page.body.last_seq, 3, 'pass last_seq as the next from_seq');
  t.equal(page.body.latest_seq, 4);
  t.same((await feed('from_seq=4')).body, { changes: [], last_seq: 4, latest_seq: 4 }, 'caught up');
  t.same((await feed('from_seq=90')).body, { changes: [], last_seq: 4, latest_seq: 4 }, 'a client ahead of the node sees last_seq < from_seq');
});

t.test('a long poll returns as soon as a write lands', async (t) => {
  const started = Date.now();
  const poll = feed('from_seq=4&long_poll_ms=2000');
  await new Promise((r) => setTimeout(r, 150));
  await call(node.url, 'PUT', `/entities/${K1}`, { blob: '"back"' });
  const r = await poll;
  const elapsed = Date.now() - started;
  t.match(r.body.changes, [{ operation: 'PUT', key: K1, sequence: 5, old_val: null, new_val: '"back"', committed_at: String }]);
  t.equal(r.body.changes.length, 1);
  t.ok(elapsed < 1500, `answered after ${elapsed} ms, well before the 2000 ms timeout`);
});

t.test('a long poll with nothing new ends after its timeout; larger timeouts are capped', async (t) => {
  let started = Date.now();
  const r = await feed('from_seq=5&long_poll_ms=300');
  let elapsed = Date.now() - started;
  t.same(r.body, { changes: [], last_seq: 5, latest_seq: 5 });
  t.ok(elapsed >= 280 && elapsed < 1500, `waited ${elapsed} ms for a 300 ms poll`);
  started = Date.now();
  await feed('from_seq=5&long_poll_ms=600000');
  elapsed = Date.now() - started;
  t.ok(elapsed >= 1900 && elapsed < 4000, `waited ${elapsed} ms: capped at --max-long-poll-ms 2000`);
});

t.test('bad parameters are INVALID_PARAMETER', async (t) => {
  for (const q of ['from_seq=-1', 'from_seq=x', 'limit=0', 'limit=1001', 'long_poll_ms=1.5', 'since=3', 'limit=5&limit=6']) {
    const r = await feed(q);
    t.same([r.status, r.body.code, r.body.error], [400, 'INVALID_PARAMETER', true], q);
  }
});

t.test('SIGTERM during a long poll: the poll is answered, the process exits 0', async (t) => {
  const other = await startStorage();
  t.teardown(() => removeDir(other.dataDir));
  const poll = call(other.url, 'GET', '/changefeed?from_seq=0&long_poll_ms=20000');
  await new Promise((r) => setTimeout(r, 150));
  const started = Date.now();
  const exit = other.stop();
  const r = await poll;
  t.same([r.status, r.body], [200, { changes: [], last_seq: 0, latest_seq: 0 }]);
  t.equal(r.headers.get('connection'), 'close');
  t.same(await exit, { code: 0, signal: null });
  t.ok(Date.now() - started < 5000, 'did not wait for the poll to time out');
});
