// Growing `npm start`'s cluster by hand, as the README shows: `--spares 1` starts one more shard
// pair that is registered but owns nothing; the `shard add` command the dev cluster prints gives
// it its share; every key written before reads back through it; after a restart (Ctrl-C, then
// npm start again on the same folder) the grown topology is still in force, data included.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { startDevCluster } from '../support/dev-cluster.js';
import { ROOT } from '../support/cli.js';

function run(command: string): Promise<{ status: number | null; out: string }> {
  // The printed command line, word by word (paths here hold no spaces).
  const [, script, ...args] = command.trim().split(/\s+/);
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [join(ROOT, script!), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (out += d.toString()));
    c.on('close', (status) => resolve({ status, out }));
  });
}

t.test('npm start -- --spares 1, then the printed shard add: the cluster grows and stays grown', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'themis-dev-grow-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  let dev = await startDevCluster(dir, ['--shards', '2', '--spares', '1']);
  t.teardown(() => void dev.child.kill('SIGKILL'));
  t.equal(dev.ready.spares.length, 1, 'one spare shard runs');
  const keys = Array.from({ length: 60 }, () => `urn:themis:document:shop:orders:${randomUUID()}`);
  for (const [i, key] of keys.entries()) {
    const r = await fetch(`${dev.ready.apps[i % 2]}/entities/${key}`, { method: 'PUT', body: JSON.stringify({ blob: `{"n":${i}}` }) });
    t.equal(r.status, 201);
  }
  const add = /^ *(node dist\/src\/cli\/themis-admin\.js shard add .*)$/m.exec(dev.output())?.[1];
  t.ok(add, 'the dev cluster prints the shard add command');
  const r = await run(add!.replace(' shard add ', ' shard add --yes '));
  t.equal(r.status, 0, r.status === 0 ? 'shard add --yes --wait' : r.out);
  t.match(r.out, /shard-003/, 'shard-003 receives tokens');
  const readAll = async (app: string) => {
    let ok = 0;
    for (const [i, key] of keys.entries()) {
      const g = await fetch(`${app}/entities/${key}`);
      if (g.status === 200 && ((await g.json()) as { blob: string }).blob === `{"n":${i}}`) ok++;
    }
    return ok;
  };
  t.equal(await readAll(dev.ready.spares[0]!), keys.length, 'every key reads back through the new shard\'s sidecar');
  const grown = (await (await fetch(`${dev.ready.spares[0]!}/health`)).json()) as { topology_epoch: number };
  dev.child.kill('SIGINT');
  t.equal(await dev.exited, 0, 'stops cleanly');

  dev = await startDevCluster(dir, ['--shards', '2', '--spares', '1']);
  t.ok(dev.ready.epoch >= grown.topology_epoch, `the restarted cluster keeps the grown topology (epoch ${dev.ready.epoch}, was ${grown.topology_epoch}; other ports republish it one up)`);
  t.equal(await readAll(dev.ready.apps[0]!), keys.length, 'and every key, through any sidecar');
  const served = new Set<string>();
  for (const key of keys) served.add((await fetch(`${dev.ready.apps[0]}/entities/${key}`)).headers.get('x-themis-shard') ?? '');
  t.ok(served.has('shard-003'), `shard-003 still serves its share (${[...served].join(', ')})`);
  dev.child.kill('SIGINT');
  t.equal(await dev.exited, 0);
});
