// Another Node release for the tests (`.ci/run` runs integration tests on Node 24 as well): the
// npm registry's `node` package (a binary inside a registry package), installed into
// node_modules/.cache/node-<major> — a cache folder, not a dependency of the project. Prints
// the binary's path. `node dist/scripts/node-release.js 24`
import { existsSync, mkdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export function nodeRelease(major: number): string {
  const dir = join(ROOT, 'node_modules', '.cache', `node-${major}`);
  const bin = join(dir, 'node_modules', 'node', 'bin', 'node');
  const version = () => spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout?.trim() ?? '';
  if (existsSync(bin) && version().startsWith(`v${major}.`)) return bin;
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('npm', ['install', '--prefix', dir, '--no-save', '--no-audit', '--no-fund', '--loglevel=error', `node@${major}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0 || !existsSync(bin) || !version().startsWith(`v${major}.`)) {
    throw new Error(`could not install Node ${major} from the npm registry into ${dir} (npm install node@${major}: ${r.stderr.trim().split('\n').slice(-3).join(' ') || `exit ${r.status}`}); check access to the npm registry, or run: npm install --prefix ${dir} node@${major}`);
  }
  return bin;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const major = Number(process.argv[2] ?? 24);
  try {
    process.stdout.write(nodeRelease(major) + '\n');
  } catch (e) {
    process.stderr.write(`node-release: ${(e as Error).message}\n`);
    process.exit(1);
  }
}
