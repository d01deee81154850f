// The code's shape, checked: no import cycles anywhere (dpdm, type-only imports included), and
// "a shard peer's request is never forwarded further" as a property of the structure: the
// peer-inbound path and the mesh stages cannot reach the peer pool, the resolver or the router.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../support/cli.js';

interface Graph {
  tree: Record<string, { id: string | null }[] | null>;
  circulars: string[][];
}

function analyse(entries: string[]): Graph {
  const dir = mkdtempSync(join(tmpdir(), 'themis-dpdm-'));
  try {
    const out = join(dir, 'deps.json');
    const r = spawnSync(join(ROOT, 'node_modules/.bin/dpdm'), ['--no-warning', '--no-tree', '--no-circular', '--no-progress', '-o', out, ...entries], { cwd: ROOT, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`dpdm failed: ${r.stderr}`);
    return JSON.parse(readFileSync(out, 'utf8')) as Graph;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

t.test('no import cycles in src, proxy, storage-node, scripts or test', async (t) => {
  const g = analyse(['src/**/*.ts', 'proxy/**/*.ts', 'storage-node/**/*.ts', 'scripts/**/*.ts', 'test/**/*.ts']);
  t.ok(Object.keys(g.tree).filter((f) => !f.startsWith('node_modules') && !f.startsWith('node:')).length > 150, 'the whole tree was analysed');
  t.same(g.circulars.map((c) => c.join(' -> ')), [], 'no cycles');
});

t.test('the peer-inbound path and the mesh stages cannot forward: no pool, resolver or router within reach', async (t) => {
  const g = analyse(['proxy/peer-inbound.ts', 'proxy/mesh-pipeline.ts', 'proxy/stages/*.ts']);
  const reachable = Object.keys(g.tree);
  t.ok(reachable.includes('proxy/local-upstream.ts'), 'control: the local storage node is within reach');
  for (const forbidden of ['proxy/peer-pool.ts', 'proxy/peer-session.ts', 'proxy/resolver.ts', 'proxy/router.ts', 'proxy/scatter-gather.ts']) {
    t.notOk(reachable.includes(forbidden), `${forbidden} is not reachable`);
  }
});
