// Makes sure the Debian packages the test suite shells out to are present. As root it
// installs the missing ones with apt-get; otherwise it stops and prints the exact command.
import { spawnSync } from 'node:child_process';

/** command on PATH → Debian package that provides it */
export const SYSTEM_DEPS: Record<string, string> = {
  openssl: 'openssl',
  curl: 'curl',
  xxhsum: 'xxhash',
  'systemd-analyze': 'systemd',
  'softhsm2-util': 'softhsm2', // a PKCS#11 token for the HSM-backed CA tests
  chromium: 'chromium', // the headless browser the web console's test drives (playwright-core)
};

function onPath(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function aptGet(args: string[]): boolean {
  const r = spawnSync('apt-get', args, {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  return r.status === 0;
}

export function ensureSystemDeps(deps: Record<string, string> = SYSTEM_DEPS): void {
  const missing = [...new Set(Object.entries(deps).filter(([cmd]) => !onPath(cmd)).map(([, pkg]) => pkg))];
  if (missing.length === 0) return;
  const command = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (process.getuid?.() !== 0) {
    console.error(`themis-mesh needs these Debian packages: ${missing.join(', ')}.\nRun as root:\n  ${command}`);
    process.exit(1);
  }
  console.error(`installing Debian packages: ${missing.join(' ')}`);
  const args = ['install', '-y', '--no-install-recommends', ...missing];
  if (!aptGet(args) && !(aptGet(['update']) && aptGet(args))) {
    console.error(`could not install ${missing.join(', ')}; run as root:\n  apt-get update && ${command}`);
    process.exit(1);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) ensureSystemDeps();
