// GET /snapshot on a real storage node (our node-local extension): one LevelDB snapshot's
// entities with its sequence number, exactly the state the change feed gives at that number
// while a write loop runs; framing (header, end count), registration of a follower, its
// parameters refused when wrong, and no way to reach it through a sidecar.
import t from 'tap';
import { call, removeDir, startStorage, type StorageProcess } from '../support/storage-process.js';
import { differences, readFeed, stateAt } from '../support/feed-state.js';

let node: StorageProcess;
t.before(async () => {
  node = await startStorage();
});
t.teardown(async () => {
  await node.stop();
  removeDir(node.dataDir);
});

const uuid = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

function parse(text: string): { header: any; entities: { key: string; blob: string }[]; end: any } {
  const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l));
  return { header: lines[0], entities: lines.slice(1, -1), end: lines[lines.length - 1] };
}

t.test('an export taken under a write loop is the change feed’s state at its sequence number', async (t) => {
  let stop = false;
  let written = 0;
  const loop = (async () => {
    for (let i = 0; !stop; i++) {
      const k = `document.snap.items:${uuid(i % 300)}`;
      const r = i % 7 === 6 ? await call(node.url, 'DELETE', `/entities/${k}`) : await call(node.url, 'PUT', `/entities/${k}`, { blob: JSON.stringify({ i }) });
      if (r.status === 201) written++;
    }
  })();
  await new Promise((r) => setTimeout(r, 400));
  const exports = [];
  for (let n = 0; n < 3; n++) {
    const r = await fetch(`${node.url}/snapshot`);
    t.equal(r.status, 200);
    t.match(r.headers.get('content-type'), /application\/x-ndjson/);
    exports.push(parse(await r.text()));
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 200));
  stop = true;
  await loop;
  const feed = await readFeed(node.url);
  t.ok(feed[feed.length - 1]!.sequence > exports[2]!.header.seq, `writes went on after the last export (${written} writes in all)`);
  for (const e of exports) {
    t.match(e.header, { format: 'themis-snapshot/1', seq: Number, trimmed_through: 0 });
    t.same(e.end, { end: true, keys: e.entities.length }, 'the end line counts the entities');
    const got = new Map(e.entities.map((x) => [x.key, x.blob]));
    t.same(differences(got, stateAt(feed, e.header.seq)), [], `export at seq ${e.header.seq}: ${got.size} keys, exactly the feed's state there`);
    t.not(differences(got, stateAt(feed, e.header.seq + 1)).length + differences(got, stateAt(feed, e.header.seq - 1)).length, 0, 'and not the state one change later or earlier');
  }
});

t.test('register=ID registers a change-feed follower at the snapshot’s sequence number', async (t) => {
  const r = parse(await (await fetch(`${node.url}/snapshot?register=backup:shard-001`)).text());
  const f = await call(node.url, 'GET', '/changefeed/followers');
  t.match(f.body.followers, [{ id: 'backup:shard-001', seq: r.header.seq }]);
});

t.test('bad parameters and methods are refused with stable codes', async (t) => {
  const unknown = await call(node.url, 'GET', '/snapshot?table=x');
  t.match(unknown, { status: 400, body: { code: 'INVALID_PARAMETER' } });
  const twice = await call(node.url, 'GET', '/snapshot?register=a&register=b');
  t.match(twice, { status: 400, body: { code: 'INVALID_PARAMETER' } });
  const badId = await call(node.url, 'GET', `/snapshot?register=${encodeURIComponent('a b')}`);
  t.match(badId, { status: 400, body: { code: 'INVALID_PARAMETER' } });
  const post = await call(node.url, 'POST', '/snapshot', {});
  t.match(post, { status: 405, body: { code: 'METHOD_NOT_ALLOWED' } });
  t.equal(post.headers.get('allow'), 'GET');
});
