// Regression for "sync: false in storage-node/writer.ts goes unnoticed" (issue 25). kill -9
// cannot see it: the kernel keeps a dead process's written pages, only a machine crash loses
// them. So this test watches the storage node's syscalls with strace while writes run: every
// acknowledged write must have been preceded, after it was sent, by an fsync/fdatasync of
// LevelDB's write-ahead log (NNNNNN.log in the data directory) — the batch it went in was made
// durable before the answer. Sequential writes are one batch each: at least one log sync per
// write; concurrent writes share batches (group commit): each one's window holds a log sync.
import t, { type Test } from 'tap';
import { rmSync } from 'node:fs';
import { call, removeDir, startStorage, type StorageProcess } from '../support/storage-process.js';
import { findStrace, traceProcess, type Syscall } from '../support/strace.js';

const TABLE = 'document.durable.synced';
const u = (n: number): string => `${String(n).padStart(8, '0')}-0000-4000-8000-${String(n).padStart(12, '0')}`;
/** Wall clock in microseconds, as strace -ttt prints it (both read CLOCK_REALTIME). */
const nowUs = () => Math.floor((performance.timeOrigin + performance.now()) * 1000);

const strace = findStrace();
if ('missing' in strace) {
  // Loud on purpose: a skipped durability guard must not pass unseen in a green run.
  process.stderr.write(`\n*** storage-node-fsync: SKIPPED, the durability guard did not run: ${strace.missing} ***\n\n`);
}
const skip = 'missing' in strace ? `durability guard not run: ${strace.missing}` : false;

interface Window {
  i: number;
  from: number;
  to: number;
  status: number;
}

async function tracedWrites(t: Test, storage: StorageProcess, run: () => Promise<Window[]>): Promise<{ windows: Window[]; syncs: Syscall[]; all: Syscall[] }> {
  if ('missing' in strace) throw new Error(strace.missing);
  const outFile = `${storage.dataDir}.strace`;
  t.teardown(() => rmSync(outFile, { force: true }));
  const tracer = await traceProcess(strace, storage.child.pid!, ['fsync', 'fdatasync'], outFile);
  let windows: Window[];
  try {
    windows = await run();
  } catch (e) {
    await tracer.stop(); // detach before the test fails
    throw e;
  }
  const all = await tracer.stop();
  // LevelDB's write-ahead log: NNNNNN.log in the data directory (not the MANIFEST, not LOG).
  const syncs = all.filter((s) => s.path?.startsWith(`${storage.dataDir}/`) && /\/\d+\.log$/.test(s.path));
  t.comment(`${windows.length} writes; ${all.length} fsync/fdatasync calls, ${syncs.length} of them on the LevelDB log`);
  return { windows, syncs, all };
}

t.test('every sequential acknowledged write is one batch with its own fdatasync/fsync of the LevelDB log', { skip }, async (t) => {
  const storage = await startStorage();
  t.teardown(async () => {
    await storage.kill('SIGKILL');
    removeDir(storage.dataDir);
  });
  // One write before tracing: the node has opened its log and settled.
  t.equal((await call(storage.url, 'PUT', `/entities/${TABLE}:${u(0)}`, { blob: '0' })).status, 201);
  const n = 40;
  const { windows, syncs, all } = await tracedWrites(t, storage, async () => {
    const out: Window[] = [];
    for (let i = 1; i <= n; i++) {
      const from = nowUs();
      const r = await call(storage.url, 'PUT', `/entities/${TABLE}:${u(i)}`, { blob: JSON.stringify({ i }) });
      out.push({ i, from, to: nowUs(), status: r.status });
    }
    return out;
  });
  t.equal(windows.filter((w) => w.status === 201).length, n, `all ${n} writes acknowledged`);
  t.ok(syncs.length >= n, `at least one log sync per acknowledged batch: ${syncs.length} for ${n} batches (${all.length} syncs in all: ${[...new Set(all.map((s) => `${s.name} ${s.path}`))].slice(0, 4).join('; ')})`);
  const unsynced = windows.filter((w) => !syncs.some((s) => s.atUs >= w.from && s.atUs <= w.to));
  t.same(unsynced.map((w) => w.i), [], 'no write was acknowledged without a log sync between its request and its answer');
});

t.test('concurrent writes (group commit): each acknowledged write had a log sync between its request and its answer', { skip }, async (t) => {
  const storage = await startStorage();
  t.teardown(async () => {
    await storage.kill('SIGKILL');
    removeDir(storage.dataDir);
  });
  t.equal((await call(storage.url, 'PUT', `/entities/${TABLE}:${u(0)}`, { blob: '0' })).status, 201);
  const n = 200;
  const { windows, syncs } = await tracedWrites(t, storage, () =>
    Promise.all(
      Array.from({ length: n }, async (_, k) => {
        const i = 1000 + k;
        const from = nowUs();
        const r = await call(storage.url, 'PUT', `/entities/${TABLE}:${u(i)}`, { blob: JSON.stringify({ i }) });
        return { i, from, to: nowUs(), status: r.status };
      }),
    ),
  );
  t.equal(windows.filter((w) => w.status === 201).length, n, `all ${n} writes acknowledged`);
  t.ok(syncs.length >= 1 && syncs.length <= n, `${syncs.length} log syncs for ${n} writes: batched, and never none`);
  const unsynced = windows.filter((w) => !syncs.some((s) => s.atUs >= w.from && s.atUs <= w.to));
  t.same(unsynced.map((w) => w.i), [], 'no write was acknowledged without a log sync between its request and its answer');
});
