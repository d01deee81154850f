// The change-feed follower on real storage nodes: a full copy of half the token space while a
// write loop runs, catch-up, convergence (the history checker and a range diff find nothing),
// resume from a checkpoint without a new copy, and a source that lost its data (the follower
// starts over and the target converges to it, dropping what the source no longer has).
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { TOKEN_MAX, tokenHex } from '../../src/hash.js';
import { silentLogger as log } from '../../src/log.js';
import { systemClock } from '../../src/runtime.js';
import { parseKey, tokenOf } from '../../src/urn/urn.js';
import { FileCheckpoints } from '../../proxy/feed/checkpoints.js';
import { FeedFollower } from '../../proxy/feed/follower.js';
import { NodeClient } from '../../proxy/feed/node-client.js';
import { diffRanges } from '../../proxy/feed/range-diff.js';
import { TokenRanges } from '../../proxy/feed/token-ranges.js';
import { followerRig } from '../support/node-clients.js';
import { History, writeLoop } from '../support/history.js';
import { call, removeDir, startStorage } from '../support/storage-process.js';

const HALF = new TokenRanges([{ start: 0n, end: TOKEN_MAX / 2n }]);
const inHalf = (key: string) => tokenOf(parseKey(key)) <= TOKEN_MAX / 2n;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const rig = followerRig(t);
const { client } = rig;

const keys = Array.from({ length: 300 }, () => `document.shop.orders:${randomUUID()}`);
const history = new History('loop');
const put = (base: string) => async (key: string, blob: string) => {
  const r = await call(base, 'PUT', `/entities/${encodeURIComponent(key)}`, { blob });
  return { status: r.status, code: r.body?.code };
};
const read = (base: string) => async (key: string) => {
  const r = await call(base, 'GET', `/entities/${encodeURIComponent(key)}`);
  return r.status === 200 ? (r.body.blob as string) : undefined;
};

async function caughtUp(f: FeedFollower, src: NodeClient): Promise<void> {
  const head = await src.head();
  for (let i = 0; i < 400 && f.position < head; i++) await sleep(25);
}

t.test('full copy under writes, then the feed: the target holds exactly the source’s half', async (t) => {
  // Junk the source never had, and a stale value, both in range: the copy must repair them.
  let junk = '';
  do junk = `document.shop.orders:${randomUUID()}`;
  while (!inHalf(junk));
  await call(rig.target.url, 'PUT', `/entities/${encodeURIComponent(junk)}`, { blob: '{"junk":true}' });
  const src = client(rig.source);
  const tgt = client(rig.target);
  let stopLoop!: () => void;
  const loop = writeLoop(history, keys, put(rig.source.url), { until: new Promise<void>((r) => (stopLoop = r)), concurrency: 8 });
  await sleep(300);
  const copies: string[] = [];
  const f = new FeedFollower({
    id: 'test-half', sourceShard: 'shard-001', source: src, target: tgt, ranges: HALF,
    checkpoints: new FileCheckpoints(rig.dir), clock: systemClock, log, longPollMs: 200,
    onFullCopy: (why) => copies.push(why),
  });
  f.start();
  await sleep(1500);
  stopLoop();
  const stats = await loop;
  t.ok(stats.acknowledged > 200, `${stats.acknowledged} writes acknowledged during the copy and after`);
  await caughtUp(f, src);
  await f.stop();
  t.same(copies, ['no checkpoint'], 'one full copy');
  const diff = await diffRanges(src, tgt, HALF, async () => undefined);
  t.equal(diff.different, 0, `no difference in range (${diff.same} keys alike)`);
  const inRange = history.ackedKeys().filter(inHalf);
  const v = await history.check(read(rig.target.url), inRange);
  t.same({ lost: v.lost, reverted: v.reverted, invented: v.invented }, { lost: [], reverted: [], invented: [] }, `history: ${v.checked} keys checked`);
  t.equal((await call(rig.target.url, 'GET', `/entities/${encodeURIComponent(junk)}`)).status, 404, 'junk the source never had is gone');
  const outside = history.ackedKeys().filter((k) => !inHalf(k));
  t.ok(outside.length > 0, 'control: some keys are outside the range');
  t.equal((await Promise.all(outside.map(read(rig.target.url)))).filter((b) => b !== undefined).length, 0, 'nothing outside the range was copied');
});

t.test('a restart resumes from the checkpoint: no second copy, new writes arrive', async (t) => {
  const src = client(rig.source);
  const copies: string[] = [];
  const f = new FeedFollower({
    id: 'test-half', sourceShard: 'shard-001', source: src, target: client(rig.target), ranges: HALF,
    checkpoints: new FileCheckpoints(rig.dir), clock: systemClock, log, longPollMs: 200,
    onFullCopy: (why) => copies.push(why),
  });
  f.start();
  const stats = await writeLoop(history, keys, put(rig.source.url), { until: sleep(800), concurrency: 4 });
  await caughtUp(f, src);
  await f.stop();
  t.same(copies, [], 'resumed, not copied');
  const v = await history.check(read(rig.target.url), history.ackedKeys().filter(inHalf));
  t.same({ lost: v.lost, reverted: v.reverted, invented: v.invented }, { lost: [], reverted: [], invented: [] }, `history after ${stats.acknowledged} more writes`);
});

t.test('ranges that grew: the position carries over and only the new spans are copied', async (t) => {
  // As the replica manager does when a topology gives a replica more of its primary's ranges:
  // the successor's checkpoint is the predecessor's position, with the gained half to repair.
  const dir = new FileCheckpoints(rig.dir);
  const before = dir.get('test-half')!;
  t.ok(before && before.seq > 0, `the half's follower stopped at ${before?.seq}`);
  dir.put('test-all', { ...before, repair: [{ start: tokenHex(TOKEN_MAX / 2n + 1n), end: tokenHex(TOKEN_MAX) }] });
  const src = client(rig.source);
  const tgt = client(rig.target);
  const upper = history.ackedKeys().filter((k) => !inHalf(k));
  t.ok(upper.length > 0 && (await Promise.all(upper.map(read(rig.target.url)))).every((b) => b === undefined), `control: none of the ${upper.length} upper-half keys is on the target yet`);
  const copies: string[] = [];
  const copied: number[] = [];
  const all = new TokenRanges([{ start: 0n, end: TOKEN_MAX }]);
  const f = new FeedFollower({
    id: 'test-all', sourceShard: 'shard-001', source: src, target: tgt, ranges: all,
    checkpoints: dir, clock: systemClock, log, longPollMs: 200,
    onFullCopy: (why) => copies.push(why),
    onCopied: (_same, repaired) => copied.push(repaired),
  });
  f.start();
  // Writes to the lower half only: the upper half's keys reach the target through the repair alone.
  const stats = await writeLoop(history, keys.filter(inHalf), put(rig.source.url), { until: sleep(800), concurrency: 4 });
  await caughtUp(f, src);
  await f.stop();
  t.same(copies, [], 'no full copy');
  t.equal(copied.length, 1, 'one repair of the new spans');
  t.ok(copied[0]! >= upper.length, `it copied the upper half's keys (${copied[0]} repaired)`);
  t.notOk(dir.get('test-all')?.repair?.length, 'the checkpoint no longer names spans to repair');
  const diff = await diffRanges(src, tgt, all, async () => undefined);
  t.equal(diff.different, 0, `the target equals the source over the whole space (${diff.same} keys alike)`);
  const v = await history.check(read(rig.target.url));
  t.same({ lost: v.lost, reverted: v.reverted, invented: v.invented }, { lost: [], reverted: [], invented: [] }, `history over every key after ${stats.acknowledged} more writes`);
});

t.test('a source that lost its data: the follower starts over and the target converges to it', async (t) => {
  const fresh = await startStorage();
  t.teardown(async () => {
    await fresh.kill('SIGKILL');
    removeDir(fresh.dataDir);
  });
  const few = keys.filter(inHalf).slice(0, 5);
  for (const k of few) await call(fresh.url, 'PUT', `/entities/${encodeURIComponent(k)}`, { blob: '{"fresh":true}' });
  const src = client(fresh);
  const copies: string[] = [];
  const f = new FeedFollower({
    id: 'test-half', sourceShard: 'shard-001', source: src, target: client(rig.target), ranges: HALF,
    checkpoints: new FileCheckpoints(rig.dir), clock: systemClock, log, longPollMs: 200, backoffInitialMs: 20,
    onFullCopy: (why) => copies.push(why),
  });
  f.start();
  for (let i = 0; i < 200 && copies.length === 0; i++) await sleep(25);
  await caughtUp(f, src);
  await sleep(100);
  await f.stop();
  t.match(copies, [/^source behind: at 5, we were at \d+/], 'the checkpoint ahead of the source was dropped, then one full copy');
  const diff = await diffRanges(src, client(rig.target), HALF, async () => undefined);
  t.same(diff, { same: few.length, different: 0 }, 'the target holds exactly what the source holds in range');
});

t.test('a target restored from an older backup: the follower notices its head went back, copies again and converges (live, and after a restart)', async (t) => {
  const { mkdtempSync, createReadStream, rmSync } = await import('node:fs');
  const { createInterface } = await import('node:readline');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const { downloadSnapshot } = await import('../../src/backup/snapshot-download.js');
  const { importStore } = await import('../../storage-node/restore-import.js');
  const { LocalUpstream } = await import('../../proxy/local-upstream.js');
  const work = mkdtempSync(join(tmpdir(), 'themis-restored-target-'));
  const source = await startStorage();
  let target = await startStorage();
  const dataDir = target.dataDir;
  let upstream = new LocalUpstream({ url: target.url, requestTimeoutMs: 5000 });
  t.teardown(async () => {
    upstream.close();
    for (const p of [source, target]) await p.kill('SIGKILL');
    for (const d of [source.dataDir, dataDir, work]) rmSync(d, { recursive: true, force: true });
  });
  const src = client(source);
  const tgt = new NodeClient(() => upstream); // the target's address changes with each start
  const all = new TokenRanges([{ start: 0n, end: TOKEN_MAX }]);
  const h = new History('restore');
  const ks = Array.from({ length: 80 }, () => `document.shop.carts:${randomUUID()}`);
  const cps = new FileCheckpoints(join(work, 'checkpoints'));
  const copies: string[] = [];
  const copiedAt: number[] = [];
  const follower = (backoffInitialMs = 20) => new FeedFollower({
    id: 'restored-target', sourceShard: 'shard-001', source: src, target: tgt, ranges: all, checkpoints: cps,
    clock: systemClock, log, longPollMs: 200, backoffInitialMs, backoffMaxMs: Math.max(200, backoffInitialMs), onFullCopy: (why) => (copies.push(why), copiedAt.push(Date.now())),
  });
  /** The target's data replaced by the backup's, as `themis-admin restore` builds it (storage-node/restore-import.ts). */
  const restoreTarget = async (backup: string, seq: number) => {
    await target.stop();
    rmSync(dataDir, { recursive: true, force: true });
    const entities = async function* () {
      for await (const line of createInterface({ input: createReadStream(backup), crlfDelay: Infinity })) yield JSON.parse(line) as { key: string; blob: string };
    };
    await importStore(dataDir, { seq, entities: entities() });
    target = await startStorage({ dataDir });
    upstream.close();
    upstream = new LocalUpstream({ url: target.url, requestTimeoutMs: 5000 });
  };
  const converged = async (what: string) => {
    let v = await h.check(read(target.url), h.ackedKeys());
    for (let i = 0; i < 200 && v.lost.length + v.reverted.length > 0; i++) {
      await sleep(50);
      v = await h.check(read(target.url), h.ackedKeys());
    }
    t.same({ lost: v.lost, reverted: v.reverted, invented: v.invented }, { lost: [], reverted: [], invented: [] }, `${what}: the target holds every acknowledged write (${v.checked} keys)`);
    const diff = await diffRanges(src, tgt, all, async () => undefined);
    t.equal(diff.different, 0, `${what}: and equals the source (${diff.same} keys alike)`);
  };

  let f = follower();
  f.start();
  await writeLoop(h, ks, put(source.url), { until: sleep(600), concurrency: 4 });
  await caughtUp(f, src);
  const backup = join(work, 'data.ndjson');
  const snap = await downloadSnapshot(target.url, backup);
  const second = await writeLoop(h, ks, put(source.url), { until: sleep(600), concurrency: 4 });
  await caughtUp(f, src);
  t.ok(second.acknowledged > 0, `${second.acknowledged} writes acknowledged after the backup`);
  t.same(copies, ['no checkpoint'], 'one full copy so far, the first');

  // Its checkpoint file is written at most every 250 ms: one more write after that brings the
  // file to the head, so a follower resuming from it has nothing left to replay.
  await sleep(300);
  await writeLoop(h, [`document.shop.carts:${randomUUID()}`], put(source.url), { until: sleep(50), maxWrites: 1 });
  await caughtUp(f, src);
  await sleep(100);
  t.equal(cps.get('restored-target')?.seq, f.position, 'control: the checkpoint file is at the follower\'s position');

  // Live: the follower keeps running while the target's node is stopped, restored and started.
  await restoreTarget(backup, snap.seq);
  const during = writeLoop(h, ks.slice(0, 10), put(source.url), { until: sleep(400), concurrency: 2 });
  for (let i = 0; i < 200 && copies.length < 2; i++) await sleep(25);
  await during;
  await caughtUp(f, src);
  t.match(copies[1], /^target behind: its storage node is at seq \d+, it was at \d+/, `the follower saw the target go back and copied again (${copies[1]})`);
  await converged('live');
  await f.stop();
  const cp = cps.get('restored-target')!;
  t.ok(cp.target_seq !== undefined && cp.target_seq > snap.seq, `the checkpoint records the target's head (${cp.target_seq})`);

  // After a restart: only the checkpoint knows what the target held.
  await writeLoop(h, ks, put(source.url), { until: sleep(400), concurrency: 4 });
  await restoreTarget(backup, snap.seq);
  // A long back-off: the copy after finding the target behind does not wait for it.
  f = follower(10_000);
  const startedAt = Date.now();
  f.start();
  for (let i = 0; i < 200 && copies.length < 3; i++) await sleep(25);
  await caughtUp(f, src);
  t.match(copies[2], /^target behind: its storage node is at seq \d+, it was at \d+/, 'a restarted follower compares the target with its checkpoint');
  t.ok(copiedAt[2]! - startedAt < 2000, `and copies at once, not after its back-off of 10 s (${copiedAt[2]! - startedAt} ms)`);
  await converged('after a restart');
  await f.stop();
});
