import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAccessLog, type AccessEntry } from '../../../../proxy/observability/access-log.js';

const entry = (status: number): AccessEntry => ({
  time: '2026-01-01T00:00:00.000Z', sidecar: 'shard-001', worker: null, listener: 'app', method: 'GET', path: '/entities/x', status, code: null,
  duration_ms: 1, upstream_ms: 0.5, bytes_in: null, bytes_out: 2, shard: 'shard-002', epoch: 3, peer: null, retries: 0, trace_id: 'a'.repeat(32), span_id: 'b'.repeat(16),
});

async function lines(file: string, n: number): Promise<Record<string, unknown>[]> {
  for (let i = 0; i < 100; i++) {
    const got = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
    if (got.length >= n) return got.map((l) => JSON.parse(l) as Record<string, unknown>);
    await sleep(20);
  }
  throw new Error(`fewer than ${n} lines in ${file}`);
}

t.test('mode off wants nothing; on wants everything', async (t) => {
  const off = createAccessLog({ mode: 'off', rate: 0, file: undefined }, () => 0);
  const ignore = () => undefined;
  t.equal(off.wants(200) || off.wants(500) || off.wants(0), false);
  const dir = mkdtempSync(join(tmpdir(), 'access-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const on = createAccessLog({ mode: 'on', rate: 1, file: join(dir, 'a.log') }, () => 0.99, ignore);
  await on.close();
  t.equal(on.wants(200) && on.wants(404), true);
});

t.test('sampled: a rate of requests by the draw, and every server failure or abandoned request', async (t) => {
  let next = 0;
  const dir = mkdtempSync(join(tmpdir(), 'access-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const log = createAccessLog({ mode: 'sampled', rate: 0.25, file: join(dir, 'a.log') }, () => next, () => undefined);
  t.teardown(() => log.close());
  next = 0.2;
  t.equal(log.wants(200), true, 'drawn below the rate');
  next = 0.3;
  t.equal(log.wants(200), false, 'drawn above it');
  t.equal(log.wants(404), false, 'a client error is sampled like a success');
  t.equal(log.wants(503), true, 'a server failure always');
  t.equal(log.wants(0), true, 'an abandoned request always');
});

t.test('a line is the entry as JSON, and a moved file is reopened by name (logrotate)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'access-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'sub', 'access.log');
  const log = createAccessLog({ mode: 'on', rate: 1, file }, () => 0);
  log.write(entry(200));
  const [first] = await lines(file, 1);
  t.same(first, { type: 'access', ...entry(200) });
  renameSync(file, `${file}.1`);
  log.reopen();
  log.write(entry(201));
  const [second] = await lines(file, 1);
  t.equal(second!.status, 201, 'the new line went to a new file of the same name');
  t.equal(readFileSync(`${file}.1`, 'utf8').split('\n').filter(Boolean).length, 1, 'the rotated file kept its line');
  await log.close();
});

t.test('a file that cannot be opened is a start-up error naming accessLog.file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'access-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.throws(() => createAccessLog({ mode: 'on', rate: 1, file: dir }, () => 0), { name: 'ConfigError', field: 'accessLog.file' }, 'a folder, not a file');
});

t.test('a write that fails after start is reported, never thrown (the disk is full: /dev/full)', async (t) => {
  const errors: Error[] = [];
  const log = createAccessLog({ mode: 'on', rate: 1, file: '/dev/full' }, () => 0, (e) => errors.push(e));
  log.write(entry(200));
  for (let i = 0; i < 100 && errors.length === 0; i++) await sleep(20);
  t.match(errors[0]?.message, /ENOSPC/, `reported: ${errors[0]?.message}`);
  await log.close();
});

t.test('a reopen that fails is reported, and lines keep going to the file already open', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'access-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const errors: Error[] = [];
  const file = join(dir, 'logs', 'access.log');
  const log = createAccessLog({ mode: 'on', rate: 1, file }, () => 0, (e) => errors.push(e));
  renameSync(join(dir, 'logs'), join(dir, 'rotated'));
  writeFileSync(join(dir, 'logs'), 'a file where the folder was');
  log.reopen();
  t.match(errors[0]?.message, /EEXIST|ENOTDIR/, `reported: ${errors[0]?.message}`);
  log.write(entry(202));
  const [line] = await lines(join(dir, 'rotated', 'access.log'), 1);
  t.equal(line!.status, 202, 'the line went to the file still open');
  await log.close();
});
