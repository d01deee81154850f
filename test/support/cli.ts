// Runs one of the project's compiled programs as a real child process.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export const PROGRAMS = {
  'themis-admin': 'dist/src/cli/themis-admin.js',
  'themis-pki': 'dist/src/cli/themis-pki.js',
  'themis-storage': 'dist/storage-node/main.js',
} as const;

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runProgram(program: keyof typeof PROGRAMS, args: string[], opts: SpawnSyncOptions = {}): CliResult {
  const r = spawnSync(process.execPath, [ROOT + PROGRAMS[program], ...args], { encoding: 'utf8', timeout: 60_000, ...opts });
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}
