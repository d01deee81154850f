// A follower told to stop writes nothing more: a page that arrives after stop() is not applied,
// the rest of a page (or of a copy) it was writing does not start, and its position stays where
// what it wrote is whole. Before, a late page from an old primary landed after its successor's
// copy, over writes the new primary had acknowledged.
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { TOKEN_MAX } from '../../../../src/hash.js';
import { silentLogger } from '../../../../src/log.js';
import { FakeClock } from '../../../../src/runtime.js';
import { MemoryCheckpoints } from '../../../../proxy/feed/checkpoints.js';
import { FeedFollower } from '../../../../proxy/feed/follower.js';
import { NodeClient } from '../../../../proxy/feed/node-client.js';
import { TokenRanges } from '../../../../proxy/feed/token-ranges.js';
import { gate, MemoryNode } from '../../../support/memory-node.js';

const key = () => `document.shop.orders:${randomUUID()}`;
const tick = (ms = 10) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  for (const end = performance.now() + ms; !cond(); await tick()) if (performance.now() > end) throw new Error(`timed out waiting until ${what}`);
}

function rig(concurrency?: number) {
  const source = new MemoryNode('source');
  const target = new MemoryNode('target');
  const checkpoints = new MemoryCheckpoints();
  const follower = new FeedFollower({
    id: 'f', sourceShard: 'source', source: new NodeClient(source), target: new NodeClient(target),
    ranges: new TokenRanges([{ start: 0n, end: TOKEN_MAX }]), checkpoints, clock: new FakeClock(), log: silentLogger, longPollMs: 50,
    ...(concurrency !== undefined ? { concurrency } : {}),
  });
  return { source, target, checkpoints, follower };
}

t.test('a page that arrives after stop() is not applied; the position stays', async (t) => {
  const { source, target, checkpoints, follower } = rig();
  const k = key();
  source.write(k, 'v1');
  follower.start();
  await until('the copy is done', () => follower.state === 'following' && target.entities.get(k) === 'v1');
  const page = gate();
  source.holdFeed = () => page.wait;
  source.write(k, 'v2'); // the page with it is on its way
  await tick(50);
  const stopped = follower.stop();
  page.open();
  await stopped;
  t.equal(target.entities.get(k), 'v1', 'the late page wrote nothing');
  t.equal(follower.position, 1, 'the position is before the page');
  t.equal(checkpoints.get('f')?.seq, 1, 'and so is the checkpoint');
});

t.test('stopped part way through a page: no further write of it starts, and the position stays before it', async (t) => {
  const { source, target, checkpoints, follower } = rig(1);
  follower.start();
  await until('following', () => follower.state === 'following');
  const held = gate();
  let writes = 0;
  target.holdWrite = () => (++writes === 1 ? held.wait : Promise.resolve());
  const keys = [key(), key(), key()];
  for (const k of keys) source.write(k, 'v');
  await until('the first write of the page is in flight', () => writes === 1);
  const stopped = follower.stop();
  held.open();
  await stopped;
  t.equal(target.entities.size, 1, 'the write in flight landed; the other two never started');
  t.equal(writes, 1);
  t.equal(follower.position, 0, 'the page is applied again by whoever follows on');
  t.equal(checkpoints.get('f')?.seq, 0);
});

t.test('stopped during a full copy: the copy writes nothing more and is not checkpointed', async (t) => {
  const { source, target, checkpoints, follower } = rig();
  for (let i = 0; i < 40; i++) source.write(key(), `v${i}`);
  const held = gate();
  let writes = 0;
  target.holdWrite = () => (writes++, held.wait);
  follower.start();
  await until('the copy has writes in flight', () => writes > 0);
  await tick(20);
  const started = writes;
  t.ok(started < 40, `the copy writes a few keys at a time (${started} in flight)`);
  const stopped = follower.stop();
  held.open();
  await stopped;
  t.equal(writes, started, 'no copy write started after stop()');
  t.equal(target.entities.size, started);
  t.equal(checkpoints.get('f'), undefined, 'an unfinished copy leaves no checkpoint');
});

t.test('stopWriting resolves once the writes in flight settle, without waiting for the feed request out', async (t) => {
  const { source, target, follower } = rig();
  follower.start();
  await until('following', () => follower.state === 'following');
  const page = gate();
  source.holdFeed = () => page.wait; // a source that is gone: its answer does not come
  source.write(key(), 'v');
  await tick(50);
  let quiet = false;
  const stopped = follower.stop();
  await follower.stopWriting().then(() => (quiet = true));
  t.ok(quiet, 'it writes nothing more');
  let done = false;
  void stopped.then(() => (done = true));
  await tick(50);
  t.notOk(done, 'stop() still waits for the feed request');
  page.open();
  await stopped;
  t.equal(target.entities.size, 0, 'and the page it brought is not applied');
});
