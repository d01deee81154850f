// themis-mesh/client needs none of the server's dependencies: everything its entry point can
// reach (dpdm, type-only imports included) is its own folder, the shared pure modules, node's
// own modules and undici. And the package's export names files the build really emits.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../../support/cli.js';

const SHARED = ['src/errors.ts', 'src/urn/key.ts', 'src/api/routes.ts'];

t.test('the client reaches only its own files, the shared pure ones, node: and undici', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'themis-dpdm-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'deps.json');
  const r = spawnSync(join(ROOT, 'node_modules/.bin/dpdm'), ['--no-warning', '--no-tree', '--no-circular', '--no-progress', '-o', out, 'src/client/index.ts'], { cwd: ROOT, encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const tree = JSON.parse(readFileSync(out, 'utf8')).tree as Record<string, { id: string | null; request: string }[] | null>;
  const files = Object.keys(tree);
  t.ok(files.includes('src/client/transport.ts') && files.includes('src/urn/key.ts'), 'the graph was walked');
  const outside = files.filter((f) => !f.startsWith('src/client/') && !SHARED.includes(f) && !f.startsWith('node_modules/undici/') && !f.startsWith('node:'));
  t.same(outside, [], 'nothing else is reachable (no hash, log, config, pino, classic-level, etcd3, …)');
  const requests = Object.values(tree).flatMap((deps) => (deps ?? []).map((d) => d.request));
  const bare = [...new Set(requests.filter((q) => !q.startsWith('.')))].sort();
  t.same(bare.filter((q) => !q.startsWith('node:')), ['undici'], `bare imports: ${bare.join(', ')}`);
});

t.test('package.json exports ./client with its types, and the build emits them', async (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const entry = pkg.exports['./client'];
  t.ok(entry.types.endsWith('.d.ts') && entry.import.endsWith('.js'));
  for (const f of [entry.types, entry.import]) t.ok(existsSync(join(ROOT, f)), `${f} exists (npm run build)`);
  const m = await import('themis-mesh/client');
  t.type(m.ThemisClient, 'function', 'importable by its package name');
});
