// Regression for the replay state's durability (issue 25): a sidecar accepts a signed request only
// once the sender's high-water mark is on disk, and after a machine crash the mark must still be
// there, or a replay of that request is accepted again. kill -9 cannot show a missing sync (the
// kernel keeps a dead process's pages), so this test runs the built module in a child process
// under strace and reads the order of its syscalls: the new file's contents fsynced before the
// rename, the folder fsynced after the rename (the new name), and both before `cover` resolves.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../support/cli.js';
import { findStrace, type StraceBinary } from '../support/strace.js';

const strace = findStrace();
if ('missing' in strace) process.stderr.write(`\n*** replay-floors-fsync: SKIPPED, the durability guard did not run: ${strace.missing} ***\n\n`);
const skip = 'missing' in strace ? `durability guard not run: ${strace.missing}` : false;

t.test('a mark is durable before cover() resolves: file fsynced, renamed, folder fsynced (strace)', { skip }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'themis-floors-fsync-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const dir = join(work, 'state');
  const file = join(dir, 'replay-state.json');
  const marker = join(work, 'covered-marker');
  const driver = join(work, 'driver.mjs');
  // The driver asks for one sender's mark, then probes a marker path: the probe's syscall in the
  // trace marks the moment the request would have been accepted.
  writeFileSync(
    driver,
    [
      `import { mkdirSync, existsSync } from 'node:fs';`,
      `import { ReplayFloors } from ${JSON.stringify(join(ROOT, 'dist/src/signing/replay-floors.js'))};`,
      `mkdirSync(${JSON.stringify(dir)});`,
      `const clock = { now: () => Date.now() };`,
      `const floors = await ReplayFloors.open({ file: ${JSON.stringify(file)}, clock, reserveMs: 60000, windowMs: 300000 });`,
      `await floors.cover('CN=shard-001,serial=01', Date.now());`,
      `existsSync(${JSON.stringify(marker)});`,
      `await floors.settled();`,
    ].join('\n'),
  );
  const out = join(work, 'trace');
  const bin = strace as StraceBinary;
  const r = spawnSync(bin.path, ['-f', '-y', '-e', 'trace=fsync,fdatasync,rename,renameat,renameat2,access,faccessat,faccessat2', '-o', out, process.execPath, driver], { env: bin.env, encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, r.stderr);
  const lines = readFileSync(out, 'utf8').split('\n');
  const at = (what: string, test: (l: string) => boolean) => {
    const i = lines.findIndex(test);
    t.ok(i >= 0, `${what} is in the trace`);
    return i;
  };
  const sync = (path: string) => (l: string) => /\b(fsync|fdatasync)\(\d+</.test(l) && l.includes(`<${path}>`) && / = 0$/.test(l);
  const fileSync = at('the new file’s fsync', sync(`${file}.tmp`));
  const rename = at('the rename into place', (l) => /\brename(at2?)?\(/.test(l) && l.includes(`"${file}.tmp"`) && l.includes(`"${file}"`) && / = 0$/.test(l));
  const accepted = at('the moment cover() resolved', (l) => l.includes(`"${marker}"`));
  const dirSync = lines.findIndex((l, i) => i > rename && sync(dir)(l));
  t.ok(fileSync < rename, 'the contents are fsynced before the rename');
  t.ok(dirSync > rename, 'the folder is fsynced after the rename (the new name is durable)');
  t.ok(dirSync < accepted, 'and before cover() resolves');
  t.ok(JSON.parse(readFileSync(file, 'utf8')).floors['CN=shard-001,serial=01'] > 0, 'the mark is in the file');
});
