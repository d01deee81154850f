// Tools the tests need from a Debian package whose installation would also start a service
// (prometheus for promtool; etcd-server later): the .deb is fetched with `apt-get download`
// and unpacked into a cache folder, so nothing is installed or started on the machine.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './processes.js';

const CACHE = join(ROOT, 'node_modules', '.cache', 'themis-debian');

function run(cmd: string, args: string[], cwd: string): boolean {
  return spawnSync(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] }).status === 0;
}

/** Path of `binary` from Debian package `pkg`, fetching and unpacking it on first use. */
export function debianTool(binary: string, pkg: string): string {
  const dir = join(CACHE, pkg);
  const path = join(dir, 'root', 'usr', 'bin', binary);
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true });
  const fetched = () => run('apt-get', ['download', pkg], dir) || (process.getuid?.() === 0 && run('apt-get', ['update'], dir) && run('apt-get', ['download', pkg], dir));
  const deb = () => readdirSync(dir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (!deb() && !fetched()) {
    throw new Error(`cannot fetch Debian package ${pkg} for ${binary}; run as root: apt-get update && (cd ${dir} && apt-get download ${pkg})`);
  }
  if (!run('dpkg-deb', ['-x', deb()!, 'root'], dir) || !existsSync(path)) throw new Error(`${deb()} holds no usr/bin/${binary}`);
  return path;
}
