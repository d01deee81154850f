import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { ROOT } from '../support/cli.js';

t.test('npm start brings up a working mesh and stops cleanly on Ctrl-C', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'themis-dev-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const child = spawn(process.execPath, [join(ROOT, 'dist/scripts/dev-cluster.js'), '--dir', dir, '--shards', '2', '--auto-ports'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let out = '';
  const ready = await new Promise<{ apps: string[] }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line:\n${out}`)), 60_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{"event":"ready"'));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line));
      }
    });
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  });
  t.match(out, /curl -X PUT http:\/\/127\.0\.0\.1:\d+\/entities\/urn:themis:/, 'prints a curl example');
  const key = `urn:themis:document:shop:orders:${randomUUID()}`;
  const put = await fetch(`${ready.apps[0]}/entities/${key}`, { method: 'PUT', body: JSON.stringify({ blob: '{"n":1}' }) });
  t.equal(put.status, 201);
  const got = await fetch(`${ready.apps[1]}/entities/${key}`);
  t.equal(got.status, 200);
  t.equal(((await got.json()) as { blob: string }).blob, '{"n":1}');
  child.kill('SIGINT');
  t.equal(await exited, 0, 'exits 0 after stopping its children');
  await t.rejects(fetch(`${ready.apps[0]}/health`), 'sidecars are gone');
});

t.test('the mesh stops when whatever started it goes away (npm stopped with SIGTERM)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'themis-dev-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // npm does not pass SIGTERM on to the script it runs: it exits, and the script is
  // re-parented. A shell killed outright stands in for it here.
  const script = `"${process.execPath}" "${join(ROOT, 'dist/scripts/dev-cluster.js')}" --dir "${dir}" --shards 1 --auto-ports & echo "pid $!"; wait`;
  const parent = spawn('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const ready = await new Promise<{ apps: string[]; pid: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line:\n${out}`)), 60_000);
    parent.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{"event":"ready"'));
      const pid = /^pid (\d+)$/m.exec(out)?.[1];
      if (line && pid) {
        clearTimeout(timer);
        resolve({ ...JSON.parse(line), pid: Number(pid) });
      }
    });
    parent.stderr.on('data', (d: Buffer) => (out += d.toString()));
  });
  t.equal((await fetch(`${ready.apps[0]}/health`)).status, 200, 'the mesh is up');
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  t.teardown(() => {
    if (alive(ready.pid)) process.kill(ready.pid, 'SIGTERM');
  });
  parent.kill('SIGKILL');
  const deadline = Date.now() + 20_000;
  while (alive(ready.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  t.notOk(alive(ready.pid), 'the dev cluster stopped itself');
  await t.rejects(fetch(`${ready.apps[0]}/health`), 'its sidecars are gone');
});
