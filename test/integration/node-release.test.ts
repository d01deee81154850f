// Which Node runs the tests, and the processes they start: on the machine's Node, and in
// `npm test`'s second pass on the release scripts/test-node-release.ts installs
// (THEMIS_EXPECT_NODE_MAJOR), where a wrong binary must fail rather than pass unseen.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROGRAMS, ROOT } from '../support/cli.js';

const major = Number(process.versions.node.split('.')[0]);

t.test('the Node release is one the package admits, and the one asked for', async (t) => {
  const engines = (JSON.parse(readFileSync('package.json', 'utf8')) as { engines: { node: string } }).engines.node;
  t.ok(major === 20 || major === 22 || major === 24, `Node ${process.versions.node} (engines: ${engines})`);
  const expected = process.env.THEMIS_EXPECT_NODE_MAJOR;
  if (expected) t.equal(major, Number(expected), `the second pass runs on Node ${expected}`);
  const child = spawnSync(process.execPath, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
  t.equal(child, process.versions.node, 'the processes a test starts run on the same Node');
});

t.test('the compile cache: in the private folder systemd gives (CACHE_DIRECTORY) on Node 22+, never in the shared temporary folder', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'themis-compile-cache-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const [cache, shared] = [join(dir, 'cache'), join(dir, 'tmp')];
  const admin = (env: Record<string, string>) => {
    const { NODE_COMPILE_CACHE: _, CACHE_DIRECTORY: __, ...rest } = process.env;
    return spawnSync(process.execPath, [join(ROOT, PROGRAMS['themis-admin']), 'topology', 'plan', '--shards', 'a,b', '--cluster', 'c', '--sample', '0'], { env: { ...rest, ...env }, encoding: 'utf8' });
  };
  for (const d of [cache, shared]) mkdirSync(d);
  t.equal(admin({ TMPDIR: shared }).status, 0, 'themis-admin runs without a cache folder');
  t.same(readdirSync(shared), [], 'and writes nothing into the temporary folder (TMPDIR)');
  t.equal(admin({ TMPDIR: shared, CACHE_DIRECTORY: cache }).status, 0, 'themis-admin runs with CACHE_DIRECTORY');
  const cached = join(cache, 'node-compile-cache');
  if (major >= 22) t.ok(existsSync(cached) && readdirSync(cached).length > 0, `Node ${major}: compiled modules are cached in CACHE_DIRECTORY/node-compile-cache`);
  else t.notOk(existsSync(cached), `Node ${major} has no compile cache: nothing is written`);
  t.same(readdirSync(shared), [], 'still nothing in the temporary folder');
});
