// Retention and a follower on real storage nodes: a stopped follower's registered checkpoint
// holds the source's log exactly there while writes go on, until the hard cap; past it the log is
// trimmed, the returning follower gets 410, makes a full copy (reason logged and counted), and
// the history checker finds nothing acknowledged lost on the target.
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { TOKEN_MAX } from '../../src/hash.js';
import { silentLogger as log } from '../../src/log.js';
import { systemClock } from '../../src/runtime.js';
import { FileCheckpoints } from '../../proxy/feed/checkpoints.js';
import { FeedFollower } from '../../proxy/feed/follower.js';
import { diffRanges } from '../../proxy/feed/range-diff.js';
import { TokenRanges } from '../../proxy/feed/token-ranges.js';
import { followerRig } from '../support/node-clients.js';
import { History, writeLoop } from '../support/history.js';
import { call } from '../support/storage-process.js';

const ALL = new TokenRanges([{ start: 0n, end: TOKEN_MAX }]);
const CAP = 2000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const rig = followerRig(t, ['--feed-retain-ms', '0', '--feed-retain-records', '100', '--feed-max-records', String(CAP), '--feed-trim-interval-ms', '100']);
const { client } = rig;

const keys = Array.from({ length: 200 }, () => `document.shop.orders:${randomUUID()}`);
const history = new History('loop');
const put = async (key: string, blob: string) => {
  const r = await call(rig.source.url, 'PUT', `/entities/${encodeURIComponent(key)}`, { blob });
  return { status: r.status, code: r.body?.code };
};
const read = async (key: string) => {
  const r = await call(rig.target.url, 'GET', `/entities/${encodeURIComponent(key)}`);
  return r.status === 200 ? (r.body.blob as string) : undefined;
};
const feedHealth = async () => (await call(rig.source.url, 'GET', '/health')).body.changefeed;
const follower = (copies: string[]) =>
  new FeedFollower({
    id: 'backup-a', sourceShard: 'shard-001', source: client(rig.source), target: client(rig.target), ranges: ALL,
    checkpoints: new FileCheckpoints(rig.dir), clock: systemClock, log, longPollMs: 200, backoffInitialMs: 20,
    onFullCopy: (why) => copies.push(why),
  });
async function caughtUp(f: FeedFollower): Promise<void> {
  const head = (await feedHealth()).last_seq;
  for (let i = 0; i < 400 && f.position < head; i++) await sleep(25);
}

t.test('a registered checkpoint holds the log until the hard cap; then the follower falls back to a full copy', async (t) => {
  const copies: string[] = [];
  let f = follower(copies);
  f.start();
  await writeLoop(history, keys, put, { until: sleep(600), concurrency: 8 });
  await caughtUp(f);
  await sleep(1100); // one more page registers the final position
  await f.stop();
  t.same(copies, ['no checkpoint']);
  const reg = (await call(rig.source.url, 'GET', '/changefeed/followers')).body.followers.find((x: { id: string }) => x.id === 'backup-a');
  t.ok(reg, 'the follower registered its checkpoint at the source');
  const held = reg.seq as number;

  // Writes go on while it is away, staying under the cap: the log is kept from its checkpoint.
  let h = await feedHealth();
  await writeLoop(history, keys, put, { until: new Promise(() => undefined), maxWrites: CAP - (h.last_seq - held) - 300, concurrency: 8 });
  await sleep(400);
  h = await feedHealth();
  t.ok(h.last_seq - held > 1000, `${h.last_seq - held} changes since the checkpoint (retain_records is 100)`);
  t.equal(h.oldest_seq - 1, held, 'trimmed exactly up to the registered checkpoint, not past it');
  t.match(h.followers, [{ id: 'backup-a', seq: held, lag: h.last_seq - held, behind_horizon: false }]);

  // Past the hard cap: trimmed past the checkpoint.
  await writeLoop(history, keys, put, { until: new Promise(() => undefined), maxWrites: 800, concurrency: 8 });
  await sleep(400);
  h = await feedHealth();
  t.equal(h.oldest_seq - 1, h.last_seq - CAP, `at the hard cap: ${CAP} records kept`);
  t.ok(h.oldest_seq - 1 > held, 'the log is trimmed past the checkpoint');
  t.equal(h.followers_cut_off, 1, 'counted once');
  t.match(h.followers, [{ id: 'backup-a', behind_horizon: true }]);

  // The follower comes back while writes continue: 410 → full copy → follow.
  f = follower(copies);
  f.start();
  const stats = await writeLoop(history, keys, put, { until: sleep(1000), concurrency: 8 });
  await caughtUp(f);
  await f.stop();
  t.equal(copies.length, 2, 'one more full copy');
  t.match(copies[1], /^change feed trimmed: the source holds changes from \d+ on, we were at \d+/, 'with the reason');
  const v = await history.check(read, history.ackedKeys());
  t.same({ lost: v.lost, reverted: v.reverted, invented: v.invented }, { lost: [], reverted: [], invented: [] }, `history: ${v.checked} keys, ${history.acknowledged} writes (${stats.acknowledged} during the copy)`);
  const diff = await diffRanges(client(rig.source), client(rig.target), ALL, async () => undefined);
  t.equal(diff.different, 0, `source and target alike (${diff.same} keys)`);
  const after = (await call(rig.source.url, 'GET', '/changefeed/followers')).body.followers;
  t.match(after, [{ id: 'backup-a', behind_horizon: false }], 'registered again at its new position');
});
