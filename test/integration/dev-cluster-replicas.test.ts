// `npm start -- --replicas 1` on real processes: a write through one sidecar is on two storage
// nodes (owner and replica); a storage node killed is reported (process, signal, log) while the
// rest keep running; `npm start -- --restart` brings it back with its data.
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { startDevCluster, type DevCluster } from '../support/dev-cluster.js';

t.setTimeout(180_000);

const holders = async (storage: string[], key: string) =>
  (await Promise.all(storage.map(async (url) => (await fetch(`${url}/entities/${key}`)).status))).map((s, i) => (s === 200 ? i : -1)).filter((i) => i >= 0);

t.test('dev cluster with --replicas 1: replicates, survives a storage node death, restarts it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'themis-devrep-'));
  let dev: DevCluster | undefined;
  t.teardown(async () => {
    if (dev && dev.child.exitCode === null) {
      dev.child.kill('SIGINT');
      await dev.exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });
  dev = await startDevCluster(dir, ['--shards', '3', '--replicas', '1']);
  const { apps, storage } = dev.ready;
  t.equal(dev.ready.replicas, 1);
  t.match(dev.output(), /replication factor 2/, 'says it replicates');

  // A write acknowledged (ack majority = both copies) is on the owner's and the replica's storage node.
  // Right after start a replica may still be making its first copy (its primary's sidecar started
  // after it): until it follows, writes to those ranges are 503 REPLICATION_UNAVAILABLE. Retry.
  const key = `document.shop.orders:${randomUUID()}`;
  let put = await fetch(`${apps[0]}/entities/${key}`, { method: 'PUT', body: JSON.stringify({ blob: '{"n":1}' }) });
  for (let i = 0; i < 20 && put.status === 503; i++) {
    await new Promise((r) => setTimeout(r, 250));
    put = await fetch(`${apps[0]}/entities/${key}`, { method: 'PUT', body: JSON.stringify({ blob: '{"n":1}' }) });
  }
  t.equal(put.status, 201);
  const owner = Number(/shard-(\d+)/.exec(put.headers.get('x-themis-shard') ?? '')?.[1]) - 1;
  const copies = await holders(storage, key);
  t.equal(copies.length, 2, `two storage nodes hold the write (${copies.join(', ')})`);
  t.ok(copies.includes(owner), 'one of them is the owner');
  const replica = copies.find((i) => i !== owner)!;
  const victim = `shard-00${replica + 1}`;

  // Kill the replica's storage node: reported, the rest go on.
  const state = JSON.parse(readFileSync(join(dir, 'processes.json'), 'utf8')) as { pid: number; processes: { name: string; pid: number }[] };
  t.equal(state.pid, dev.ready.pid, 'processes.json names the dev cluster');
  const pid = state.processes.find((p) => p.name === `storage node of ${victim}`)!.pid;
  process.kill(pid, 'SIGKILL');
  const exited = await dev.event('exited', 20_000);
  t.match(exited, { process: `storage node of ${victim}`, role: 'storage', shard: victim, pid, signal: 'SIGKILL', code: null }, 'the death is reported');
  t.ok(existsSync(exited.log as string), 'with its log file');
  await new Promise((r) => setTimeout(r, 500)); // stderr may come after stdout
  t.match(dev.output(), new RegExp(`storage node of ${victim} \\(pid ${pid}\\) exited \\(SIGKILL\\).*keep running`), 'in words too');
  t.equal(dev.child.exitCode, null, 'the dev cluster keeps running');
  for (const app of apps) t.equal((await fetch(`${app}/health`)).status, 200, `${app}: its sidecar still answers`);
  t.match(dev.companion(['--status']).stdout, new RegExp(`storage node of ${victim} +${pid} +exited \\(SIGKILL\\)`), '--status shows it dead');
  // The replica is missing: writes to the owner's ranges are refused as not done.
  const during = `document.shop.orders:${randomUUID()}`;
  let refused = 0;
  for (let i = 0; i < 20 && refused === 0; i++) {
    const k = `document.shop.orders:${randomUUID()}`;
    const r = await fetch(`${apps[owner]}/entities/${k}`, { method: 'PUT', body: JSON.stringify({ blob: '{}' }) });
    if (r.status === 503 && ((await r.json()) as { code: string }).code === 'REPLICATION_UNAVAILABLE') refused++;
  }
  t.equal(refused, 1, 'a write replicated to the dead node answers 503 REPLICATION_UNAVAILABLE');

  // Restart it through the companion command: same port, same data.
  const restart = dev.companion(['--restart']);
  t.equal(restart.status, 0, `--restart succeeds: ${restart.stderr}`);
  t.match(restart.stdout, new RegExp(`storage node of ${victim} +\\d+ +running`));
  t.match(await dev.event('restarted', 20_000), { process: `storage node of ${victim}` }, 'the restart is reported');
  t.equal((await fetch(`${storage[replica]}/entities/${key}`)).status, 200, 'it is back with its data');
  let back = 0;
  for (let i = 0; i < 100 && back !== 201; i++) {
    back = (await fetch(`${apps[owner]}/entities/${during}`, { method: 'PUT', body: JSON.stringify({ blob: '{}' }) })).status;
    if (back !== 201) await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(back, 201, 'writes to those ranges succeed again');
  t.same((await holders(storage, during)).length, 2, 'and reach the replica');

  dev.child.kill('SIGINT');
  t.equal(await dev.exited, 0, 'Ctrl-C stops it cleanly');
  t.notOk(existsSync(join(dir, 'processes.json')), 'processes.json is removed on stop');
});
