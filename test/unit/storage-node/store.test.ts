import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../../storage-node/store.js';

const T = 'document.ns.c';
const U = 'document.ns.c2'; // T's name plus a character: every row of T must still come first
const u = (n: number): string => `${String(n).padStart(8, '0')}-0000-4000-8000-000000000000`;

async function openTemp(t: Test): Promise<{ store: Store; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'storage-unit-'));
  const store = await Store.open(dir);
  t.teardown(async () => {
    await store.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });
  return { store, dir };
}

type Change = { operation: string; key: string; sequence: number; old_val: string | null; new_val: string | null };
async function feed(store: Store): Promise<Change[]> {
  return (await store.changes(0, 1000, 1 << 30)).map((r) => JSON.parse(r.json) as Change);
}

t.test('concurrent writes share batches, and old_val follows each key through a batch', async (t) => {
  const { store } = await openTemp(t);
  // Submitted in the same tick: one group commit should take them all.
  const acks = await Promise.all([
    store.put(T, u(1), '{"v":1}'),
    store.put(T, u(1), '{"v":2}'),
    store.delete(T, u(1)),
    store.delete(T, u(1)),
    store.put(T, u(1), '{"v":3}'),
    store.put(T, u(2), '{"w":1}'),
  ]);
  t.same(acks, [
    { applied: true, sequence: 1, oldVal: null },
    { applied: true, sequence: 2, oldVal: '{"v":1}' },
    { applied: true, sequence: 3, oldVal: '{"v":2}' },
    { applied: false },
    { applied: true, sequence: 4, oldVal: null },
    { applied: true, sequence: 5, oldVal: null },
  ]);
  t.equal(store.writerStats.batches, 1, 'one LevelDB batch for six writes');
  const records = await feed(store) as (Change & { committed_at?: string })[];
  t.equal(new Set(records.map((r) => r.committed_at)).size, 1, 'one commit time for the batch');
  for (const r of records) delete r.committed_at;
  t.same(records, [
    { operation: 'PUT', key: `${T}:${u(1)}`, sequence: 1, old_val: null, new_val: '{"v":1}' },
    { operation: 'PUT', key: `${T}:${u(1)}`, sequence: 2, old_val: '{"v":1}', new_val: '{"v":2}' },
    { operation: 'DELETE', key: `${T}:${u(1)}`, sequence: 3, old_val: '{"v":2}', new_val: null },
    { operation: 'PUT', key: `${T}:${u(1)}`, sequence: 4, old_val: null, new_val: '{"v":3}' },
    { operation: 'PUT', key: `${T}:${u(2)}`, sequence: 5, old_val: null, new_val: '{"w":1}' },
  ]);
  t.equal(await store.get(T, u(1)), '{"v":3}');
});

t.test('a write that arrives during a batch goes into the next one, with the right old_val', async (t) => {
  const { store } = await openTemp(t);
  const first = store.put(T, u(1), '"a"');
  await new Promise((r) => setImmediate(r)); // the first batch is now being written
  const second = store.put(T, u(1), '"b"');
  t.same(await first, { sequence: 1, oldVal: null, applied: true });
  t.same(await second, { sequence: 2, oldVal: '"a"', applied: true });
  t.equal(store.writerStats.batches, 2);
});

t.test('many concurrent writes: fewer batches than writes, sequences 1..N without gaps', async (t) => {
  const { store } = await openTemp(t);
  const n = 200;
  const acks = await Promise.all(Array.from({ length: n }, (_, i) => store.put(T, u(i), `{"i":${i}}`)));
  t.same(acks.map((a) => a.sequence).sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i + 1));
  t.ok(store.writerStats.batches < n, `batches ${store.writerStats.batches} < ${n}`);
  t.same((await feed(store)).map((c) => c.sequence), Array.from({ length: n }, (_, i) => i + 1));
});

t.test('sequence numbers and data persist across reopen', async (t) => {
  const { store, dir } = await openTemp(t);
  await store.put(T, u(1), '1');
  await store.put(T, u(2), '2');
  await store.close();
  const again = await Store.open(dir);
  t.teardown(() => again.close().catch(() => undefined));
  t.equal(again.lastSeq, 2);
  t.same(await again.put(T, u(3), '3'), { applied: true, sequence: 3, oldVal: null });
  t.equal(await again.get(T, u(1)), '1');
});

t.test('scan pages in (table, uuid) order with limit, byte budget and continuation', async (t) => {
  const { store } = await openTemp(t);
  await Promise.all([store.put(U, u(1), '"u1"'), store.put(T, u(2), '"t2"'), store.put(T, u(1), '"t1"'), store.put(T, u(3), '"t3"')]);
  const all = await store.scan({ limit: 10, budgetBytes: 1 << 20 });
  t.same(all.items.map((e) => `${e.table}:${e.uuid}`), [`${T}:${u(1)}`, `${T}:${u(2)}`, `${T}:${u(3)}`, `${U}:${u(1)}`]);
  t.equal(all.more, false);
  const p1 = await store.scan({ table: T, limit: 2, budgetBytes: 1 << 20 });
  t.same(p1.items.map((e) => e.uuid), [u(1), u(2)]);
  t.equal(p1.more, true);
  const p2 = await store.scan({ table: T, after: { table: T, uuid: u(2) }, limit: 2, budgetBytes: 1 << 20 });
  t.same(p2.items.map((e) => e.uuid), [u(3)]);
  t.equal(p2.more, false, 'exactly at the end: no further page');
  const tight = await store.scan({ limit: 10, budgetBytes: 5 });
  t.same(tight.items.map((e) => e.blob), ['"t1"'], 'budget: one item always, then stop');
  t.equal(tight.more, true);
  const rows = [];
  for await (const e of store.entities(T)) rows.push(e.uuid);
  t.same(rows, [u(1), u(2), u(3)], 'entities(table) stays inside the table');
});

t.test('change pages honour from_seq, limit and the byte budget', async (t) => {
  const { store } = await openTemp(t);
  for (let i = 1; i <= 5; i++) await store.put(T, u(i), `"${i}"`);
  t.same((await store.changes(2, 2, 1 << 20)).map((c) => c.seq), [3, 4]);
  t.same((await store.changes(5, 10, 1 << 20)).map((c) => c.seq), []);
  t.same((await store.changes(0, 10, 1)).map((c) => c.seq), [1], 'tiny budget still returns one');
});

t.test('a closed store refuses writes instead of losing them', async (t) => {
  const { store } = await openTemp(t);
  await store.close();
  await t.rejects(store.put(T, u(1), '1'), { code: 'STORAGE_UNAVAILABLE' });
});

t.test('commit times stay non-decreasing across a restart with a clock that went back; the snapshot names its seq’s time', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'storage-unit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = await Store.open(dir, undefined, () => 60_000);
  await first.put(T, u(1), '"a"');
  await first.close();
  const again = await Store.open(dir, undefined, () => 1000);
  await again.put(T, u(2), '"b"');
  const times = (await feed(again)).map((r) => (r as Change & { committed_at: string }).committed_at);
  t.same(times, ['1970-01-01T00:01:00.000Z', '1970-01-01T00:01:00.000Z'], 'the record after the restart is not dated before the one before it');
  const snap = await again.openSnapshot();
  t.same([snap.seq, snap.committedAt], [2, 60_000]);
  await snap.close();
  await again.close();
});
