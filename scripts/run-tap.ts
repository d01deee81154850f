// Runs tap's own runner on some test files, from the repository's root, with `node` (another
// release for test-node-release.ts) and extra environment; its output goes to ours.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './processes.js';

/** tap's exit status (1 when it could not run). */
export function runTap(node: string, args: readonly string[], env: Record<string, string>): number {
  const r = spawnSync(node, [join(ROOT, 'node_modules/tap/dist/esm/run.mjs'), ...args], {
    cwd: ROOT,
    stdio: 'inherit',
    env: { ...process.env, CI: process.env.CI ?? 'true', ...env },
  });
  return r.status ?? 1;
}
