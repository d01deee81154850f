// Durability with real processes: every write acknowledged with 2xx survives kill -9 of the
// storage node, and the change feed after the restart is gap-free and agrees with the data.
import t from 'tap';
import { call, removeDir, startStorage } from '../support/storage-process.js';

const TABLE = 'document.durable.items';
const u = (n: number): string => `${String(n).padStart(8, '0')}-0000-4000-8000-${String(n).padStart(12, '0')}`;

type Change = { operation: string; key: string; sequence: number; old_val: string | null; new_val: string | null };

async function readFeed(url: string): Promise<Change[]> {
  const all: Change[] = [];
  let from = 0;
  for (;;) {
    const r = await call(url, 'GET', `/changefeed?from_seq=${from}&limit=1000`);
    if (r.status !== 200) throw new Error(`changefeed answered ${r.status}`);
    all.push(...r.body.changes);
    if (r.body.changes.length === 0) return all;
    from = r.body.last_seq;
  }
}

t.test('N concurrent acknowledged writes survive kill -9; the feed is 1..N without gaps', async (t) => {
  const n = 300;
  const first = await startStorage();
  t.teardown(() => removeDir(first.dataDir));
  const acks = await Promise.all(
    Array.from({ length: n }, (_, i) => call(first.url, 'PUT', `/entities/${TABLE}:${u(i)}`, { blob: JSON.stringify({ i }) })),
  );
  t.equal(acks.filter((a) => a.status === 201).length, n, 'all acknowledged');
  t.same(await first.kill('SIGKILL'), { code: null, signal: 'SIGKILL' }, 'killed right after the last ack');

  const second = await startStorage({ dataDir: first.dataDir });
  t.teardown(() => second.kill('SIGKILL'));
  const gets = await Promise.all(Array.from({ length: n }, (_, i) => call(second.url, 'GET', `/entities/${TABLE}:${u(i)}`)));
  t.same(
    gets.map((g) => g.body?.blob),
    Array.from({ length: n }, (_, i) => `{"i":${i}}`),
    'every entity is back with its value',
  );
  const changes = await readFeed(second.url);
  t.same(changes.map((c) => c.sequence), Array.from({ length: n }, (_, i) => i + 1), 'sequences 1..N');
  t.same(
    changes.map((c) => c.key).sort(),
    Array.from({ length: n }, (_, i) => `${TABLE}:${u(i)}`).sort(),
    'one PUT record per entity',
  );
  // The restarted node continues the sequence.
  await call(second.url, 'PUT', `/entities/${TABLE}:${u(n)}`, { blob: '1' });
  t.equal((await call(second.url, 'GET', '/health')).body.last_seq, n + 1);
});

t.test('kill -9 in the middle of a write storm: acknowledged writes are all there, the feed matches the data', async (t) => {
  const workers = 16;
  const killAfter = 150;
  const first = await startStorage();
  t.teardown(() => removeDir(first.dataDir));
  const acked = new Set<number>();
  let next = 0;
  let failed = 0;
  let killing: Promise<unknown> | undefined;
  // Each worker writes one new key after another until the process is gone.
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      try {
        const r = await call(first.url, 'PUT', `/entities/${TABLE}:${u(i)}`, { blob: JSON.stringify({ i }) });
        if (r.status === 201) acked.add(i);
      } catch {
        failed++; // the connection died with the process: not acknowledged
        return;
      }
      if (acked.size >= killAfter) killing ??= first.kill('SIGKILL');
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  await killing;
  const attempted = next;
  t.ok(acked.size >= killAfter, `${acked.size} writes acknowledged before the kill`);
  t.ok(failed > 0, `${failed} writes were cut off by the kill (it landed mid-storm)`);

  const second = await startStorage({ dataDir: first.dataDir });
  t.teardown(() => second.kill('SIGKILL'));
  const gets = await Promise.all(Array.from({ length: attempted }, (_, i) => call(second.url, 'GET', `/entities/${TABLE}:${u(i)}`)));
  const present = new Set(gets.flatMap((g, i) => (g.status === 200 ? [i] : [])));
  t.same([...acked].filter((i) => !present.has(i)), [], 'no acknowledged write is missing');
  const changes = await readFeed(second.url);
  t.same(changes.map((c) => c.sequence), Array.from({ length: changes.length }, (_, i) => i + 1), 'gap-free');
  t.same(
    changes.map((c) => c.key).sort(),
    [...present].map((i) => `${TABLE}:${u(i)}`).sort(),
    'a change record for exactly the entities that are present (same batch)',
  );
});
