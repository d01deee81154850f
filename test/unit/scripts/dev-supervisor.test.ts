// The dev cluster's supervisor on tiny child processes: a death is reported and recorded in
// processes.json while the others run on; --restart (SIGUSR2) starts the dead one again; a
// failed restart is reported; nothing is reported once the cluster is being stopped.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DevSupervisor, type Supervised } from '../../../scripts/dev-supervisor.js';
import { formatStatus, readClusterState, restartDead, stateFileOf } from '../../../scripts/dev-control.js';

const idle = () => spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });

function fake(name: string, role: Supervised['role'], failRestart = { now: false }): Supervised & { kill(): void } {
  let child: ChildProcess = idle();
  return {
    name, role, shard: 'shard-001', log: `/logs/${name}.log`,
    child: () => child,
    restart: async () => {
      if (failRestart.now) throw new Error('port in use');
      child = idle();
    },
    kill: () => child.kill('SIGKILL'),
  };
}

t.test('a death is reported and recorded; the others run on; a restart brings it back', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'themis-sup-'));
  const fail = { now: false };
  const [storage, sidecar] = [fake('storage node of shard-001', 'storage', fail), fake('sidecar shard-001', 'sidecar')];
  const events: Record<string, unknown>[] = [];
  const texts: string[] = [];
  const sup = new DevSupervisor([storage, sidecar], stateFileOf(dir), (e, text) => (events.push(e), texts.push(text)), 'restart it.');
  const onUsr2 = () => void sup.restartDead();
  process.on('SIGUSR2', onUsr2);
  t.teardown(() => {
    sup.stop();
    process.off('SIGUSR2', onUsr2);
    storage.child()?.kill('SIGKILL');
    sidecar.child()?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  sup.watch();
  t.same(readClusterState(dir).processes.map((p) => p.running), [true, true], 'both run');

  const pid = storage.child()!.pid;
  storage.kill();
  await new Promise((r) => storage.child()!.once('exit', r));
  await new Promise((r) => setImmediate(r));
  t.match(events, [{ event: 'exited', process: 'storage node of shard-001', role: 'storage', pid, code: null, signal: 'SIGKILL', log: '/logs/storage node of shard-001.log' }]);
  t.match(texts[0], /storage node of shard-001 \(pid \d+\) exited \(SIGKILL\); its log: .*The others keep running; restart it\./);
  const state = readClusterState(dir);
  t.same(state.processes.map((p) => p.running), [false, true], 'processes.json: the storage node is dead, the sidecar runs');
  t.match(formatStatus(state), /storage node of shard-001 +\d+ +exited \(SIGKILL\)/);

  fail.now = true;
  await t.rejects(restartDead(dir, 10_000), /could not start again: storage node of shard-001: port in use/, '--restart says why, without waiting');
  t.match(events.at(-1), { event: 'restart-failed', process: 'storage node of shard-001', error: 'port in use' }, 'a failed restart is reported');
  t.match(readClusterState(dir).processes[0], { running: false, restartAttempts: 1, restartError: 'port in use' }, 'and it stays dead');

  fail.now = false;
  const after = await restartDead(dir, 10_000); // SIGUSR2 to this process, as `npm start -- --restart` does
  t.same(after.processes.map((p) => p.running), [true, true], 'running again');
  t.not(after.processes[0]!.pid, pid, 'as a new process');
  t.match(events.at(-1), { event: 'restarted', process: 'storage node of shard-001' });

  storage.kill(); // the new one is watched too
  await new Promise((r) => storage.child()!.once('exit', r));
  await new Promise((r) => setImmediate(r));
  t.match(events.at(-1), { event: 'exited', process: 'storage node of shard-001' }, 'a second death is reported');

  const n = events.length;
  sup.stop();
  sidecar.kill();
  await new Promise((r) => sidecar.child()!.once('exit', r));
  t.equal(events.length, n, 'nothing is reported while stopping');
});

t.test('the companion commands refuse when no dev cluster runs there', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'themis-sup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.throws(() => readClusterState(dir), /no dev cluster runs on/);
});
