// The group writer on a real LevelDB: what one batch holds, how batches are cut, what a failed
// batch leaves behind, and that every batch asks LevelDB to sync. (Whether the sync reaches the
// disk is storage-node-fsync.test.ts's job, with strace on a real storage node.)
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { GroupWriter, TIME_MARK_MS, type WriteOp } from '../../../storage-node/writer.js';
import { LAST_SEQ_KEY, changeKey, entityKey, timeMarkKey } from '../../../storage-node/layout.js';

const T = 'document.ns.c';
const u = (n: number): string => `${String(n).padStart(8, '0')}-0000-4000-8000-000000000000`;
const put = (n: number, blob = `{"n":${n}}`): WriteOp => ({ kind: 'put', table: T, uuid: u(n), blob });
const del = (n: number): WriteOp => ({ kind: 'delete', table: T, uuid: u(n) });

type Batch = { ops: { type: string; key: string; value?: string }[]; options: unknown };

async function open(t: Test, opts: { lastSeq?: number; limits?: { maxOps: number; maxBytes: number }; now?: () => number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'writer-unit-'));
  const db = new ClassicLevel<string, string>(dir);
  await db.open();
  const batches: Batch[] = [];
  let failNext: Error | undefined;
  const realBatch = db.batch.bind(db) as (ops: Batch['ops'], options: unknown) => Promise<void>;
  (db as unknown as { batch: unknown }).batch = async (ops: Batch['ops'], options: unknown) => {
    batches.push({ ops: ops.map((o) => ({ ...o })), options });
    if (failNext) {
      const e = failNext;
      failNext = undefined;
      throw e;
    }
    return realBatch(ops, options);
  };
  const commits: number[] = [];
  const w = new GroupWriter(db, opts.lastSeq ?? 0, (s) => commits.push(s), opts.limits, opts.now ?? (() => 5 * TIME_MARK_MS + 250));
  t.teardown(async () => {
    await w.close();
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { db, w, batches, commits, failWith: (e: Error) => (failNext = e) };
}

t.test('one batch holds each entity, its change record, the last sequence and the time mark, synced', async (t) => {
  const { db, w, batches, commits } = await open(t, { lastSeq: 41 });
  const [a, b] = await Promise.all([w.submit(put(1)), w.submit(put(1, '{"n":2}'))]);
  t.same(a, { applied: true, sequence: 42, oldVal: null });
  t.same(b, { applied: true, sequence: 43, oldVal: '{"n":1}' }, 'the second write sees the first through the batch');
  t.equal(batches.length, 1, 'both writes in one batch');
  t.same(batches[0]!.options, { sync: true }, 'every batch is written with sync: true');
  t.equal(w.lastSeq, 43);
  t.same(commits, [43], 'onCommit told the newest sequence once per batch');
  t.equal(await db.get(entityKey(T, u(1))), '{"n":2}');
  t.equal(await db.get(LAST_SEQ_KEY), '43');
  t.equal(await db.get(timeMarkKey(5 * TIME_MARK_MS)), '43', "the time mark is the second's start, holding the newest sequence");
  t.same(JSON.parse((await db.get(changeKey(43)))!), { operation: 'PUT', key: `${T}:${u(1)}`, sequence: 43, old_val: '{"n":1}', new_val: '{"n":2}', committed_at: '1970-01-01T00:00:05.250Z' });
  t.same(w.stats, { batches: 1, writes: 2 });
});

t.test('a delete: a change record with the old value; of a missing key, nothing at all', async (t) => {
  const { db, w, batches, commits } = await open(t);
  await w.submit(put(1));
  t.same(await w.submit(del(1)), { applied: true, sequence: 2, oldVal: '{"n":1}' });
  t.equal(await db.get(entityKey(T, u(1))), undefined, 'the entity is gone');
  t.same(JSON.parse((await db.get(changeKey(2)))!), { operation: 'DELETE', key: `${T}:${u(1)}`, sequence: 2, old_val: '{"n":1}', new_val: null, committed_at: '1970-01-01T00:00:05.250Z' });
  const before = batches.length;
  t.same(await w.submit(del(9)), { applied: false });
  t.equal(batches.length, before, 'no batch is written for a delete of nothing');
  t.same(commits, [1, 2], 'and no commit is announced');
  t.equal(w.lastSeq, 2);
  t.same(w.stats, { batches: 2, writes: 3 });
  const [x, y] = await Promise.all([w.submit(del(9)), w.submit(put(3))]);
  t.same(x, { applied: false });
  t.same(y, { applied: true, sequence: 3, oldVal: null }, 'a no-op delete takes no sequence number');
});

t.test('batches are cut at maxOps and maxBytes; a single larger write goes alone', async (t) => {
  const { w, batches } = await open(t, { limits: { maxOps: 3, maxBytes: 100 } });
  await Promise.all([1, 2, 3, 4, 5, 6, 7].map((n) => w.submit(put(n))));
  t.same(batches.map((b) => b.ops.filter((o) => o.key.startsWith('e!')).length), [3, 3, 1], 'at most 3 writes a batch');
  batches.length = 0;
  const big = 'x'.repeat(150);
  const r = await Promise.all([w.submit(put(10, 'a'.repeat(60))), w.submit(put(11, 'b'.repeat(40))), w.submit(put(12, 'c'.repeat(1))), w.submit(put(13, big))]);
  t.same(r.map((x) => (x.applied ? x.sequence : 0)), [8, 9, 10, 11]);
  t.same(batches.map((b) => b.ops.filter((o) => o.key.startsWith('e!')).length), [2, 1, 1], '60+40 fit in 100 bytes, then 1, then the 150-byte write alone');
});

t.test('a failed batch rejects every write in it, writes nothing and takes no sequence number', async (t) => {
  const { db, w, commits, failWith } = await open(t);
  await w.submit(put(1));
  failWith(new Error('disk full'));
  const failed = await Promise.allSettled([w.submit(put(2)), w.submit(put(3))]);
  t.same(failed.map((f) => f.status), ['rejected', 'rejected']);
  t.equal((failed[0] as PromiseRejectedResult).reason.message, 'disk full');
  t.equal(await db.get(entityKey(T, u(2))), undefined);
  t.equal(w.lastSeq, 1);
  t.same(commits, [1]);
  t.same(await w.submit(put(4)), { applied: true, sequence: 2, oldVal: null }, 'the next write goes on from the last durable sequence');
  t.equal(await db.get(LAST_SEQ_KEY), '2');
});

t.test('commit times: the clock at the batch, the same for all its records, never lower than the record before (a clock stepped back)', async (t) => {
  let clock = 7 * TIME_MARK_MS + 120;
  const { db, w } = await open(t, { now: () => clock });
  await Promise.all([w.submit(put(1)), w.submit(put(2))]);
  clock = 3 * TIME_MARK_MS; // NTP stepped the clock back
  await w.submit(put(3));
  clock = 9 * TIME_MARK_MS + 1;
  await w.submit(put(4));
  const at = async (seq: number) => JSON.parse((await db.get(changeKey(seq)))!).committed_at;
  t.same([await at(1), await at(2), await at(3), await at(4)], ['1970-01-01T00:00:07.120Z', '1970-01-01T00:00:07.120Z', '1970-01-01T00:00:07.120Z', '1970-01-01T00:00:09.001Z']);
});

t.test('commit times carry on from the newest record given at start', async (t) => {
  const { db, w } = await open(t, { now: () => 1000 });
  const dir = mkdtempSync(join(tmpdir(), 'writer-unit-'));
  const db2 = new ClassicLevel<string, string>(dir);
  await db2.open();
  t.teardown(async () => {
    await db2.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const w2 = new GroupWriter(db2, 10, () => undefined, undefined, () => 1000, 60_000);
  await w2.submit(put(1));
  t.equal(JSON.parse((await db2.get(changeKey(11)))!).committed_at, '1970-01-01T00:01:00.000Z', 'not below the floor the store read from its last record');
  await w.submit(put(1));
  t.equal(JSON.parse((await db.get(changeKey(1)))!).committed_at, '1970-01-01T00:00:01.000Z', 'control: without a floor, the clock');
});

t.test('an onCommit that throws leaves the batch acknowledged', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'writer-unit-'));
  const db = new ClassicLevel<string, string>(dir);
  await db.open();
  const w = new GroupWriter(db, 0, () => {
    throw new Error('listener broke');
  });
  t.teardown(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  t.same(await w.submit(put(1)), { applied: true, sequence: 1, oldVal: null });
  t.same(await w.submit(put(2)), { applied: true, sequence: 2, oldVal: null }, 'and the writer goes on');
});

t.test('close: refuses new writes and waits for the queued ones', async (t) => {
  const { db, w } = await open(t);
  const queued = [w.submit(put(1)), w.submit(put(2))];
  const closing = w.close();
  await t.rejects(w.submit(put(3)), { code: 'STORAGE_UNAVAILABLE', message: 'the storage node is shutting down; retry elsewhere or later' });
  await closing;
  t.same((await Promise.all(queued)).map((r) => r.applied), [true, true]);
  t.equal(await db.get(entityKey(T, u(2))), '{"n":2}', 'written before close returned');
  t.equal(await db.get(entityKey(T, u(3))), undefined);
});

t.test('the default limits: a thousand writes of 64 KiB each fit one batch by count, 64 MiB by size', async (t) => {
  const { w, batches } = await open(t);
  const blob = 'x'.repeat(64 * 1024);
  await Promise.all(Array.from({ length: 1001 }, (_, i) => w.submit(put(i, blob))));
  t.same(batches.map((b) => b.ops.filter((o) => o.key.startsWith('e!')).length), [1000, 1], 'cut at 1000 writes, not earlier by size (62.5 MiB < 64 MiB)');
});
