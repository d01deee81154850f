// Tools the tests and benchmarks need from a Debian package whose installation would also
// start a service (prometheus for promtool, etcd-server, haproxy): the .deb — and, where the
// machine lacks them, the packages of its shared libraries — is fetched with `apt-get download`
// and unpacked into a cache folder, so nothing is installed or started on the machine.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './processes.js';

const CACHE = join(ROOT, 'node_modules', '.cache', 'themis-debian');

function run(cmd: string, args: string[], cwd: string): boolean {
  return spawnSync(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] }).status === 0;
}

export interface DebianToolOptions {
  /** Where the package puts the binary (default usr/bin). */
  binDir?: string;
  /** Library packages to unpack beside it (those not installed on a stock Debian). */
  libs?: readonly string[];
}

function unpack(dir: string, pkg: string, forBinary: string, into: string): void {
  const fetched = () => run('apt-get', ['download', pkg], dir) || (process.getuid?.() === 0 && run('apt-get', ['update'], dir) && run('apt-get', ['download', pkg], dir));
  const deb = () => readdirSync(dir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (!deb() && !fetched()) {
    throw new Error(`cannot fetch Debian package ${pkg} for ${forBinary}; run as root: apt-get update && (cd ${dir} && apt-get download ${pkg})`);
  }
  if (!run('dpkg-deb', ['-x', deb()!, into], dir)) throw new Error(`cannot unpack ${deb()}`);
}

/** Path of `binary` from Debian package `pkg`, fetching and unpacking it on first use. */
export function debianTool(binary: string, pkg: string, o: DebianToolOptions = {}): string {
  const dir = join(CACHE, pkg);
  const path = join(dir, 'root', o.binDir ?? 'usr/bin', binary);
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true });
  // Unpacked into a folder of this process's own, then renamed into place whole: another test
  // process must never find (and spawn) a binary that dpkg-deb is still writing (ETXTBSY).
  const staging = mkdtempSync(join(dir, 'root-'));
  try {
    for (const lib of o.libs ?? []) unpack(dir, lib, binary, staging);
    unpack(dir, pkg, binary, staging);
    try {
      renameSync(staging, join(dir, 'root'));
    } catch (e) {
      if (!existsSync(path)) throw e; // not another process that finished first
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  if (!existsSync(path)) throw new Error(`Debian package ${pkg} holds no ${o.binDir ?? 'usr/bin'}/${binary}`);
  return path;
}

/** LD_LIBRARY_PATH for a tool whose library packages debianTool unpacked beside it. */
export function debianLibraryPath(pkg: string): string {
  const lib = join(CACHE, pkg, 'root', 'usr', 'lib');
  if (!existsSync(lib)) return '';
  return readdirSync(lib).filter((d) => d.endsWith('-linux-gnu')).map((d) => join(lib, d)).join(':');
}
