// GET /changefeed/stream on a real storage node: events carry the sequence as id, a client that
// reconnects with Last-Event-ID gets every later change once (no gap, no duplicate), heartbeats
// while idle, 400 for a malformed Last-Event-ID, 410 below the horizon, and a reader that stops
// reading holds only a bounded amount of the node's memory.
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { call, removeDir, startStorage, type StorageProcess } from '../support/storage-process.js';
import { openSse, type SseEvent } from '../support/sse.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const key = () => `document.sse.items:${randomUUID()}`;
const ids = (events: SseEvent[]) => events.filter((e) => e.id !== undefined).map((e) => Number(e.id));

let node: StorageProcess;
t.before(async () => {
  node = await startStorage({ args: ['--sse-heartbeat-ms', '200', '--feed-retain-ms', '0', '--feed-retain-records', '400', '--feed-max-records', '400', '--feed-trim-interval-ms', '100'] });
});
t.teardown(async () => {
  await node.stop();
  removeDir(node.dataDir);
});

async function write(base: string, n: number, blob = '{"v":1}'): Promise<void> {
  for (let i = 0; i < n; i += 20) {
    await Promise.all(Array.from({ length: Math.min(20, n - i) }, () => call(base, 'PUT', `/entities/${key()}`, { blob })));
  }
}

t.test('resume after a disconnect with Last-Event-ID: every change once, in order; heartbeats while idle', async (t) => {
  await write(node.url, 300);
  const first = await openSse(`${node.url}/changefeed/stream?from_seq=0`);
  t.equal(first.status, 200);
  t.match(first.headers.get('cache-control'), /no-store/);
  const seen = ids(await first.read((ev) => ids(ev).length >= 150));
  first.close();
  t.ok(seen.length >= 150, `read ${seen.length} events before disconnecting`);
  const lastId = seen[seen.length - 1]!;
  await write(node.url, 200); // written while disconnected
  const head = (await call(node.url, 'GET', '/health')).body.last_seq as number;
  t.equal(head, 500);
  const second = await openSse(`${node.url}/changefeed/stream?from_seq=0`, { 'last-event-id': String(lastId) });
  const events = await second.read((ev) => ids(ev).includes(head) && ev.some((e) => e.comment === 'heartbeat'));
  second.close();
  const all = [...seen, ...ids(events)];
  t.same(all, Array.from({ length: head }, (_, i) => i + 1), 'sequence 1…500 exactly once each, in order');
  t.ok(events.some((e) => e.comment === 'heartbeat'), 'a heartbeat comment once caught up');
  const one = events.find((e) => e.id === String(head))!;
  t.match(JSON.parse(one.data!), { operation: 'PUT', sequence: head, old_val: null });
});

t.test('a malformed Last-Event-ID is 400 INVALID_PARAMETER naming it', async (t) => {
  for (const bad of ['x', '-1', '1.5', '1e3', '99999999999999999', ' ']) {
    const s = await openSse(`${node.url}/changefeed/stream`, { 'last-event-id': bad });
    const body = JSON.parse(s.text!);
    t.same([s.status, body.code], [400, 'INVALID_PARAMETER'], JSON.stringify(bad));
    t.match(body.message, /Last-Event-ID/);
  }
  const s = await openSse(`${node.url}/changefeed/stream?from_seq=1&since=2`);
  t.same([s.status, JSON.parse(s.text!).code], [400, 'INVALID_PARAMETER'], 'unknown parameter');
});

t.test('from below the retention horizon: 410 CHANGEFEED_TRIMMED with oldest_seq, on the stream and the poll', async (t) => {
  await write(node.url, 100);
  let oldest = 1;
  for (let i = 0; i < 50 && oldest === 1; i++, await sleep(100)) oldest = (await call(node.url, 'GET', '/health')).body.changefeed.oldest_seq;
  t.ok(oldest > 1, `trimmed: oldest_seq ${oldest}`);
  const s = await openSse(`${node.url}/changefeed/stream?from_seq=0`);
  const body = JSON.parse(s.text!);
  t.same([s.status, body.code, body.error], [410, 'CHANGEFEED_TRIMMED', true]);
  t.ok(body.oldest_seq >= oldest, 'oldest_seq says where the log starts');
  const poll = await call(node.url, 'GET', '/changefeed?from_seq=0');
  t.same([poll.status, poll.body.code], [410, 'CHANGEFEED_TRIMMED']);
  const again = await openSse(`${node.url}/changefeed/stream`, { 'last-event-id': String(body.trimmed_through) });
  t.equal(again.status, 200, 'from trimmed_through on, the stream is served');
  const evs = await again.read((ev) => ids(ev).length > 0);
  again.close();
  t.equal(ids(evs)[0], body.trimmed_through + 1, 'first event is the oldest record');
});

t.test('a reader that stops reading holds a bounded amount of memory', async (t) => {
  const other = await startStorage({ args: ['--sse-heartbeat-ms', '200'] });
  t.teardown(async () => {
    await other.stop();
    removeDir(other.dataDir);
  });
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${other.child.pid}/status`, 'utf8'))![1]) * 1024;
  const sock = connect(other.port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  sock.write('GET /changefeed/stream?from_seq=0 HTTP/1.1\r\nhost: x\r\n\r\n');
  sock.pause(); // never reads
  t.teardown(() => sock.destroy());
  await sleep(200);
  const before = rss();
  const blob = JSON.stringify({ pad: 'x'.repeat(100_000) });
  await write(other.url, 2000, blob); // ~200 MB of change records the stream would carry
  await sleep(500);
  const h = (await call(other.url, 'GET', '/health')).body.changefeed;
  const grown = rss() - before;
  t.equal(h.streams, 1, 'the stalled stream is open');
  t.ok(h.stream_buffered_bytes <= 4 * 1024 * 1024, `buffered in the node for it: ${h.stream_buffered_bytes} bytes (≤ 4 MiB)`);
  t.ok(grown < 150 * 1024 * 1024, `node RSS grew ${(grown / 1048576).toFixed(1)} MiB while 200 MB were written behind the stalled reader`);
});
