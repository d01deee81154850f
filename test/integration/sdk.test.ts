// The client SDK (themis-mesh/client, imported by its package name as an app would) against a
// real 3-shard mesh: every call, paging across shards, the change feed resuming, typed errors,
// and, last (it kills a shard), retries within the budget and no blind retry of a create.
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { ThemisClient, ThemisClientError, RetryBudget, urn, type Change } from 'themis-mesh/client';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { call } from '../support/storage-process.js';

const T = 'document.shop.sdk';
let mesh: Mesh;
let db: ThemisClient;

t.before(async () => {
  mesh = await startMesh({ shards: 3, sidecarConfig: { scatter: { shardTimeoutMs: 1500, pageSize: 5 } } });
  db = new ThemisClient({ url: mesh.nodes[0]!.appUrl, timeoutMs: 8000, random: () => 0.5 });
});
t.teardown(async () => {
  await db?.close();
  await mesh?.close();
});

/** The typed error a call fails with; anything else (or success) fails the test. */
async function failure(p: Promise<unknown> | (() => unknown)): Promise<ThemisClientError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    if (e instanceof ThemisClientError) return e;
    throw e;
  }
  throw new Error('the call succeeded; a ThemisClientError was expected');
}

const owned = (shard: number) => uuidOwnedBy(mesh.nodes[shard]!.shard.tokenRange);

t.test('entities: put, get, delete and create, both key forms, on every shard', async (t) => {
  for (let shard = 0; shard < 3; shard++) {
    const uuid = owned(shard);
    const asUrn = urn(T, uuid);
    t.equal(asUrn, `urn:themis:document:shop:sdk:${uuid}`);
    const w = await db.put(asUrn, { n: shard, name: 'ä' });
    t.same(w, { key: asUrn, blobSize: Buffer.byteLength(JSON.stringify({ n: shard, name: 'ä' })) });
    const got = await db.get<{ n: number }>(`${T}:${uuid}`);
    t.equal(got.value.n, shard, `read back through the other key form (${mesh.nodes[shard]!.shard.id})`);
    t.equal(got.blob, '{"n":' + shard + ',"name":"ä"}');
    // The entity is on its owner's storage node, and only there.
    for (let i = 0; i < 3; i++) t.equal((await call(mesh.nodes[i]!.storage.url, 'GET', `/entities/${T}:${uuid}`)).status, i === shard ? 200 : 404);
    t.same(await db.delete(asUrn), { key: asUrn });
    const gone = await failure(db.get(asUrn));
    t.match(gone, { code: 'ENTITY_NOT_FOUND', status: 404, retryable: false, attempts: 1 });
  }
  const created = await db.create(T, { made: 'client uuid' });
  t.match(created.key, new RegExp(`^${T.replace(/\./g, '\\.')}:[0-9a-f-]{36}$`));
  t.same((await db.get(created.key)).value, { made: 'client uuid' });
  const fixed = randomUUID();
  t.equal((await db.create(T, 1, { uuid: fixed })).key, `${T}:${fixed}`);
  const byServer = await db.create(T, { made: 'server uuid' }, { serverUuid: true });
  t.same((await db.get(byServer.key)).value, { made: 'server uuid' });
});

t.test('bad input is refused before any request, with the server\'s codes', async (t) => {
  const before = JSON.stringify(db.sent);
  const cases: [string, () => unknown, string][] = [
    ['a key with an unknown model', () => db.get(`nosuch.shop.x:${randomUUID()}`), 'INVALID_KEY'],
    ['a uuid too short', () => db.put(`${T}:1234`, {}), 'INVALID_KEY'],
    ['a URN with a bad namespace', () => db.delete(`urn:themis:document:sh op:x:${randomUUID()}`), 'INVALID_KEY'],
    ['urn() itself', () => urn('document.shop', randomUUID()), 'INVALID_KEY'],
    ['a create in a bad table', () => db.create('document:shop', {}), 'INVALID_KEY'],
    ['a value that is no JSON', () => db.put(`${T}:${randomUUID()}`, undefined), 'INVALID_BLOB'],
    ['a value JSON cannot hold', () => db.put(`${T}:${randomUUID()}`, { n: 1n }), 'INVALID_BLOB'],
    ['a vector with NaN', () => db.vectorSearch({ vector: [1, NaN] }), 'INVALID_QUERY'],
    ['k out of range', () => db.vectorSearch({ vector: [1], k: 0 }), 'INVALID_QUERY'],
    ['a page size of 0', () => db.query(T).pageSize(0), 'INVALID_QUERY'],
    ['a query on a bad table', () => db.query('relational.x'), 'INVALID_KEY'],
    ['a negative fromSeq', () => db.changes({ fromSeq: -1 }), 'INVALID_PARAMETER'],
    ['a scan limit of 5000', () => db.scan({ limit: 5000 }), 'INVALID_PARAMETER'],
    ['a bad follower id', () => db.registerFollower('a b', 1), 'INVALID_BODY'],
    ['a timeout of 0', () => db.health({ timeoutMs: 0 }), 'INVALID_ARGUMENT'],
  ];
  for (const [what, f, code] of cases) {
    const e = await failure(f);
    t.equal(e.code, code, `${what}: ${e.message}`);
    t.equal(e.attempts, 0, `${what}: nothing sent`);
  }
  t.equal(JSON.stringify(db.sent), before, 'no request left the client');
});

t.test('queries: the builder pages across all three shards in order', async (t) => {
  const table = 'document.shop.paged';
  const docs = Array.from({ length: 45 }, (_, i) => ({ i, price: (i * 7) % 45, city: i % 3 === 0 ? 'Bonn' : 'Trier' }));
  const keys = new Map<number, string>();
  await Promise.all(
    docs.map(async (d) => {
      // 15 keys on each shard (random uuids left one shard with 5 or fewer about once in 200 runs).
      const k = `${table}:${uuidOwnedBy(mesh.nodes[d.i % 3]!.shard.tokenRange)}`;
      keys.set(d.i, k);
      await db.put(k, d);
    }),
  );
  for (const n of mesh.nodes) t.ok((await call(n.storage.url, 'POST', '/query', { table, return: 'count' })).body.count > 5, `${n.shard.id} holds some`);
  const q = db.query(table).orderBy('price', { desc: true }).pageSize(4);
  const pagesBefore = db.sent.query ?? 0;
  const got: string[] = [];
  for await (const k of q.keys()) got.push(k);
  const want = [...docs].sort((a, b) => b.price - a.price).map((d) => keys.get(d.i));
  t.same(got, want, 'every key once, by price descending');
  t.equal((db.sent.query ?? 0) - pagesBefore, 12, '45 keys in pages of 4: 12 requests, following 11 continuation tokens');

  const bonn = db.query(table).where('city', 'Bonn').range('price', { gte: 10, lte: 30, includeUpper: false }).orderBy('price', { limit: 5 }).pageSize(2);
  const rows: number[] = [];
  for await (const e of bonn.entities<{ price: number }>()) rows.push(e.value.price);
  const wantBonn = docs.filter((d) => d.city === 'Bonn' && d.price >= 10 && d.price < 30).map((d) => d.price).sort((a, b) => a - b).slice(0, 5);
  t.same(rows, wantBonn, 'where + range + orderBy limit, across pages');
  t.equal(await db.query(table).where('city', 'Bonn').count(), 15);
  const first = await db.query(table).pageSize(10).keysPage();
  t.equal(first.items.length, 10);
  t.type(first.continuation, 'string');
  const other = await failure(db.query(table).where('city', 'Trier').pageSize(10).keysPage(first.continuation));
  t.match(other, { code: 'INVALID_CONTINUATION', status: 400, retryable: false, attempts: 1 }, 'a token from another query: the server\'s typed error');
});

t.test('vector search: the global nearest k over every shard', async (t) => {
  const table = 'vector.ml.sdk';
  const points = Array.from({ length: 24 }, (_, i) => ({ key: `${table}:${randomUUID()}`, embedding: [i, i % 5] }));
  await Promise.all(points.map((p) => db.put(p.key, { embedding: p.embedding })));
  const q = [3.2, 1.1];
  const hits = await db.vectorSearch({ table, vector: q, k: 5 });
  const dist = (e: number[]) => Math.hypot(e[0]! - q[0]!, e[1]! - q[1]!);
  const want = [...points].sort((a, b) => dist(a.embedding) - dist(b.embedding)).slice(0, 5);
  t.same(hits.map((h) => h.key), want.map((p) => p.key));
  t.ok(Math.abs(hits[0]!.distance - dist(want[0]!.embedding)) < 1e-9);
  t.equal(hits[0]!.pk, want[0]!.key.split(':')[1]);
});

t.test('health, scan and followers (node-local calls)', async (t) => {
  t.equal((await db.health()).status, 'ok');
  const table = 'document.shop.scan';
  const mine = Array.from({ length: 7 }, () => `${table}:${owned(0)}`);
  await Promise.all(mine.map((k) => db.put(k, { k })));
  const seen: string[] = [];
  for await (const e of db.scan({ table, limit: 3 })) seen.push(e.key);
  t.same(seen, [...mine].sort(), "shard-001's own entities of the table, in uuid order, 3 per page");
  const reg = await db.registerFollower('sdk-test', 1);
  t.match(reg, { id: 'sdk-test', seq: 1 });
  t.match(await db.followers(), { followers: [{ id: 'sdk-test', seq: 1 }] });
  t.match(await db.registerFollower('sdk-test', null), { id: 'sdk-test', removed: true });
});

t.test('the change feed: follows, long-polls, and resumes from a sequence number', async (t) => {
  const head = db.changes({ untilCaughtUp: true });
  for await (const _ of head);
  const start = head.position;
  t.ok(start > 0, `shard-001's feed is at ${start}`);
  const table = 'document.shop.feed';
  const keys = Array.from({ length: 6 }, () => `${table}:${owned(0)}`);
  for (const [i, k] of keys.entries()) await db.put(k, { i });

  const firstThree: Change[] = [];
  const feed = db.changes({ fromSeq: start, limit: 2 });
  for await (const c of feed) {
    firstThree.push(c);
    if (firstThree.length === 3) break;
  }
  t.same(firstThree.map((c) => c.key), keys.slice(0, 3));
  t.equal(feed.position, firstThree[2]!.sequence, 'position: the last change handed out');

  // A new iterator from that position: the rest, no gap, no repeat; then it waits (long poll).
  const rest: Change[] = [];
  const resumed = db.changes({ fromSeq: feed.position, longPollMs: 5000 });
  const later = `${table}:${owned(0)}`;
  setTimeout(() => void db.put(later, { late: true }), 300);
  for await (const c of resumed) {
    rest.push(c);
    if (rest.length === 4) break;
  }
  t.same(rest.map((c) => c.key), [...keys.slice(3), later], 'resumed after the 3rd, then the write made while it waited');
  t.same(rest.map((c) => c.sequence), [0, 1, 2, 3].map((i) => feed.position + 1 + i), 'consecutive sequences');
  t.match(rest[3], { operation: 'PUT', old_val: null, new_val: '{"late":true}' });

  // The same over Server-Sent Events, from the same position.
  const stream = db.changeStream({ fromSeq: feed.position });
  const streamed: Change[] = [];
  for await (const c of stream) {
    streamed.push(c);
    if (streamed.length === 4) break;
  }
  t.same(streamed, rest, 'the SSE stream hands out the same changes');
  t.equal(stream.position, rest[3]!.sequence);
  t.ok((db.sent['changefeed-stream'] ?? 0) >= 1);

  const ac = new AbortController();
  setTimeout(() => ac.abort(), 200);
  const waiting = db.changes({ fromSeq: rest[3]!.sequence, longPollMs: 5000, signal: ac.signal });
  const aborted = await failure((async () => {
    for await (const _ of waiting);
  })());
  t.match(aborted, { code: 'ABORTED', retryable: false });
});

t.test('deadlines: a per-call timeout ends a long poll as TIMEOUT', async (t) => {
  const head = db.changes({ untilCaughtUp: true });
  for await (const _ of head);
  const started = performance.now();
  const e = await failure((async () => {
    for await (const _ of db.changes({ fromSeq: head.position, longPollMs: 3000, timeoutMs: 400 }));
  })());
  t.equal(e.code, 'TIMEOUT', e.message);
  t.ok(performance.now() - started < 2000, 'ended at the deadline, not the long poll');
});

t.test('client-certificate mode: HTTP/2 + TLS straight to a mesh port', async (t) => {
  const node = mesh.nodes[1]!;
  const { readWrite, readOnly } = mesh.pki.clients;
  const url = `https://${node.shard.ip}:${node.meshPort}`;
  const rw = new ThemisClient({ mesh: { url, cert: readWrite.chain, key: readWrite.key, ca: mesh.pki.root.cert } });
  const ro = new ThemisClient({ mesh: { url, cert: readOnly.chain, key: readOnly.key, ca: mesh.pki.root.cert } });
  t.teardown(() => Promise.all([rw.close(), ro.close()]));
  for (let shard = 0; shard < 3; shard++) {
    const k = urn(T, owned(shard));
    await rw.put(k, { via: 'mesh', shard });
    t.same((await ro.get(k)).value, { via: 'mesh', shard }, `routed to shard ${shard + 1} and read back with the read-only certificate`);
    t.same((await db.get(k)).value, { via: 'mesh', shard }, 'the same entity through the app port');
    t.same(await rw.delete(k), { key: k });
  }
  const created = await rw.create(T, { c: 1 });
  t.same((await rw.get(created.key)).value, { c: 1 });
  t.ok((await rw.query(T).pageSize(2).keysPage()).items.length === 2, 'queries fan out from the mesh port too');
  t.ok((await rw.vectorSearch({ vector: [0, 0], k: 1 })).length === 1);
  t.equal((await rw.health()).status, 'ok');
  const denied = await failure(ro.put(urn(T, randomUUID()), {}));
  t.match(denied, { code: 'CAPABILITY_DENIED', status: 403, retryable: false, attempts: 1 }, 'a read-only certificate may not write');
  const feed = await failure((async () => {
    for await (const _ of rw.changes({ untilCaughtUp: true }));
  })());
  t.match(feed, { code: 'CAPABILITY_DENIED', status: 403 }, 'the change feed needs replicate, which client certificates never get');
  const wrongCa = new ThemisClient({ mesh: { url, cert: readWrite.chain, key: readWrite.key, ca: readWrite.cert }, retry: { maxAttempts: 1 } });
  t.teardown(() => wrongCa.close());
  t.match(await failure(wrongCa.health()), { code: 'CONNECTION_FAILED' }, 'a sidecar not signed by the given CA is refused');
});

t.test('every route of the API table was exercised by the SDK against the mesh', async (t) => {
  const { ROUTES } = await import('../../src/api/routes.js');
  t.same(ROUTES.map((r) => r.id).filter((id) => !db.sent[id]), [], `sent: ${JSON.stringify(db.sent)}`);
});

t.test('a shard killed mid-loop: retried within the budget, then a clear error; creates never retried blindly', async (t) => {
  const budget = new RetryBudget({ ratio: 0.1, reserve: 3 });
  const c = new ThemisClient({ url: mesh.nodes[0]!.appUrl, timeoutMs: 8000, retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100, budget }, random: () => 0.5 });
  t.teardown(() => c.close());
  const dead = mesh.nodes[2]!;
  const plan = Array.from({ length: 60 }, (_, i) => ({ shard: i % 3, key: urn(T, owned(i % 3)) }));
  const outcomes: { shard: number; i: number; error?: ThemisClientError }[] = [];
  for (const [i, p] of plan.entries()) {
    if (i === 15) await dead.storage.kill('SIGKILL');
    try {
      await c.put(p.key, { i });
      outcomes.push({ shard: p.shard, i });
    } catch (e) {
      outcomes.push({ shard: p.shard, i, error: e as ThemisClientError });
    }
  }
  const failed = outcomes.filter((o) => o.error);
  t.same(outcomes.filter((o) => !o.error).map((o) => o.i), outcomes.filter((o) => o.i < 15 || o.shard !== 2).map((o) => o.i), 'every write to a live shard succeeded');
  t.same(failed.map((o) => o.i), outcomes.filter((o) => o.i >= 15 && o.shard === 2).map((o) => o.i), 'every write to the dead shard failed');
  for (const { error } of failed) {
    t.equal(error!.code, 'UPSTREAM_UNAVAILABLE', error!.message);
    t.ok(error!.retryable);
    t.ok(error!.stoppedBy === 'attempts' || error!.stoppedBy === 'budget', `stopped by ${error!.stoppedBy}: ${error!.message}`);
  }
  t.equal(failed[0]!.error!.attempts, 3, 'the first failure used all its attempts');
  t.match(failed[0]!.error!.message, /3 attempts; no attempts left/);
  const byBudget = failed.filter((o) => o.error!.stoppedBy === 'budget');
  t.ok(byBudget.length > 0, `the budget stopped ${byBudget.length} of ${failed.length} failing calls`);
  t.match(byBudget[0]!.error!.message, /retry budget is spent/);
  const s = budget.stats;
  t.equal(s.requests, 60);
  t.ok(s.retries <= 3 + 0.1 * s.requests, `retries ${s.retries} ≤ reserve 3 + 10 % of ${s.requests} requests`);
  t.equal(c.sent['entity-put'], s.requests + s.retries, 'on the wire: each call once, plus the budgeted retries');

  // A create whose uuid the server picks is not idempotent: one attempt, whatever the error.
  const fresh = new ThemisClient({ url: mesh.nodes[0]!.appUrl, retry: { maxAttempts: 5, baseDelayMs: 10 } });
  t.teardown(() => fresh.close());
  let blind: ThemisClientError | undefined;
  let calls = 0;
  for (; calls < 40 && !blind; calls++) {
    try {
      await fresh.create(T, { calls }, { serverUuid: true });
    } catch (e) {
      blind = e as ThemisClientError;
    }
  }
  t.equal(fresh.sent['entity-post'], calls, 'no create was sent twice');
  t.ok(blind, `a server-uuid create landed on the dead shard within ${calls} calls`);
  t.match(blind, { code: 'UPSTREAM_UNAVAILABLE', retryable: true, attempts: 1, stoppedBy: 'not-idempotent' });
  t.match(blind?.message, /not retried: the call is not idempotent/);
  // With its uuid fixed by the client, the same create is retried.
  const again = await failure(fresh.create(T, {}, { uuid: owned(2) }));
  t.match(again, { code: 'UPSTREAM_UNAVAILABLE', attempts: 5, stoppedBy: 'attempts' });
  t.equal(fresh.sent['entity-post'], calls + 5);

  // Queries need every shard: SHARDS_UNAVAILABLE names the dead one; allowPartial gives the rest.
  const q = await failure(c.query(T).count());
  t.match(q, { code: 'SHARDS_UNAVAILABLE', status: 503, retryable: true });
  t.same(q.missingShards, [dead.shard.id]);
  const partial = await c.query(T).allowPartial().keysPage();
  t.same(partial.missingShards, [dead.shard.id]);
});
