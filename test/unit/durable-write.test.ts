// writeFileDurably, in process (so mutation testing sees it; issue 25): strace attached to this
// very process reads the order of the syscalls. The new contents are fsynced before the rename,
// the folder after it, all before the promise resolves; the old file is replaced whole, with the
// mode asked for. kill -9 cannot show a missing sync (the kernel keeps a dead process's pages),
// which is why the syscalls are read. Without strace (or ptrace) the order tests are skipped,
// loudly; the contents and mode tests always run.
import t from 'tap';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileDurably } from '../../src/durable-write.js';
import { findStrace, traceProcess, type StraceBinary } from '../support/strace.js';

const strace = findStrace();
if ('missing' in strace) process.stderr.write(`\n*** durable-write: order tests SKIPPED, the durability guard did not run: ${strace.missing} ***\n\n`);
const skip = 'missing' in strace ? `durability guard not run: ${strace.missing}` : false;

const work = mkdtempSync(join(tmpdir(), 'themis-durable-write-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

t.test('the contents replace the old file whole, with the mode asked for, and no temporary file is left', async (t) => {
  const dir = join(work, 'contents');
  mkdirSync(dir);
  const file = join(dir, 'state.json');
  writeFileSync(file, 'old contents, longer than the new ones\n', { mode: 0o644 });
  await writeFileDurably(file, '{"v":2}\n');
  t.equal(readFileSync(file, 'utf8'), '{"v":2}\n');
  t.equal(statSync(file).mode & 0o777, 0o600, 'the default mode is 0600 (a renewed key is written with it)');
  t.same(readdirSync(dir), ['state.json'], 'only the file');
});

t.test('a temporary file left by a crash with a wider mode does not pass it on (a renewed tls.key stays 0600)', async (t) => {
  const dir = join(work, 'leftover');
  mkdirSync(dir);
  const file = join(dir, 'key.pem');
  writeFileSync(`${file}.tmp`, 'half a key from before the crash', { mode: 0o644 });
  await writeFileDurably(file, 'the new key\n');
  t.equal(readFileSync(file, 'utf8'), 'the new key\n');
  t.equal(statSync(file).mode & 0o777, 0o600, 'the mode asked for, not the leftover\'s 0644');
});

t.test('a failed write leaves the old file as it was', async (t) => {
  const dir = join(work, 'failed');
  mkdirSync(dir);
  const file = join(dir, 'state.json');
  writeFileSync(file, 'old\n');
  mkdirSync(`${file}.tmp`); // the temporary name is taken by a folder: open fails
  await t.rejects(writeFileDurably(file, 'new\n'), { code: 'EISDIR' });
  t.equal(readFileSync(file, 'utf8'), 'old\n');
});

t.test('every descriptor it opens is closed (the replay state is written again and again)', async (t) => {
  const dir = join(work, 'descriptors');
  mkdirSync(dir);
  const open = () => readdirSync('/proc/self/fd').length;
  await writeFileDurably(join(dir, 'warm-up'), 'x'); // lazily opened descriptors of the runtime
  const before = open();
  for (let i = 0; i < 20; i++) await writeFileDurably(join(dir, 'state.json'), `{"n":${i}}\n`);
  t.equal(open(), before, 'as many open descriptors after 20 writes as before');
});

t.test('fsync of the contents before the rename, of the folder after it, both before it resolves (strace on this process)', { skip }, async (t) => {
  const dir = join(work, 'order');
  mkdirSync(dir);
  const file = join(dir, 'replay-state.json');
  const marker = join(work, 'resolved-marker');
  const out = join(work, 'trace');
  const tracer = await traceProcess(strace as StraceBinary, process.pid, ['fsync', 'fdatasync', 'rename', 'renameat', 'renameat2', 'access', 'faccessat', 'faccessat2'], out);
  try {
    await writeFileDurably(file, '{"floors":{}}\n');
    existsSync(marker); // its access() in the trace marks the moment the promise resolved
  } finally {
    await tracer.stop();
  }
  const lines = readFileSync(out, 'utf8').split('\n');
  const sync = (path: string) => (l: string) => /\b(fsync|fdatasync)\(\d+</.test(l) && l.includes(`<${path}>`) && / = 0$/.test(l);
  const find = (what: string, test: (l: string) => boolean) => {
    const i = lines.findIndex(test);
    t.ok(i >= 0, `${what} is in the trace`);
    return i < 0 ? Number.NaN : i;
  };
  const fileSync = find('the new file’s fsync', sync(`${file}.tmp`));
  const rename = find('the rename into place', (l) => /\brename(at2?)?\(/.test(l) && l.includes(`"${file}.tmp"`) && l.includes(`"${file}"`) && / = 0$/.test(l));
  const resolved = find('the moment the promise resolved', (l) => l.includes(`"${marker}"`));
  const dirSync = lines.findIndex((l, i) => i > rename && sync(dir)(l));
  t.ok(fileSync < rename, 'the contents are fsynced before the rename');
  t.ok(dirSync > rename, 'the folder is fsynced after the rename (the new name is durable)');
  t.ok(dirSync < resolved, 'and before the promise resolves');
});
