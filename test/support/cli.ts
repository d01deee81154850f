// Runs one of the project's compiled programs as a real child process.
import { spawn, spawnSync, type ChildProcess, type SpawnSyncOptions } from 'node:child_process';
import { ROOT } from './root.js';

export { ROOT };

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

/** Like runProgram, without blocking this process's event loop (a load loop may run meanwhile); `child` gets the process (to kill it). */
export function runProgramAsync(program: keyof typeof PROGRAMS, args: string[], o: { timeoutMs?: number; child?: (c: ChildProcess) => void; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [ROOT + PROGRAMS[program], ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...(o.env ? { env: { ...process.env, ...o.env } } : {}) });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = setTimeout(() => c.kill('SIGKILL'), o.timeoutMs ?? 120_000);
    c.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    o.child?.(c);
  });
}
