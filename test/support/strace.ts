// strace for tests: attach to a running process and record the syscalls named, with wall-clock
// times (-ttt) and the file behind each descriptor (-y). The binary is Debian's `strace`:
// `npm test` installs it with the other system packages (scripts/ensure-system-deps.ts); a test
// file run on its own without it fetches and unpacks the .deb (scripts/debian-tool.ts).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { debianLibraryPath, debianTool } from '../../scripts/debian-tool.js';

export interface StraceBinary {
  path: string;
  env: NodeJS.ProcessEnv;
}

function onPath(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v strace'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** The strace binary, or why there is none that can trace here (the caller says so loudly). */
export function findStrace(): StraceBinary | { missing: string } {
  let bin: StraceBinary;
  const installed = onPath();
  if (installed) bin = { path: installed, env: process.env };
  else {
    try {
      const path = debianTool('strace', 'strace', { libs: ['libunwind8'] });
      const lib = debianLibraryPath('strace');
      bin = { path, env: { ...process.env, LD_LIBRARY_PATH: [lib, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') } };
    } catch (e) {
      return { missing: `strace is not installed and could not be fetched from Debian (${(e as Error).message}); install it: apt-get install strace` };
    }
  }
  // ptrace may be forbidden (a container without CAP_SYS_PTRACE, Yama): try it once.
  const probe = spawnSync(bin.path, ['-f', '-e', 'trace=none', '-o', '/dev/null', 'true'], { env: bin.env, encoding: 'utf8' });
  if (probe.status !== 0) return { missing: `${bin.path} cannot trace on this machine (ptrace refused?): ${probe.stderr.trim() || `exit ${probe.status}`}` };
  return bin;
}

export interface Syscall {
  pid: number;
  /** Wall-clock time the call started, in microseconds since the epoch. */
  atUs: number;
  name: string;
  /** The file behind the first argument, when it is a descriptor (-y). */
  path: string | undefined;
}

export interface Tracer {
  /** Detaches (SIGINT) and returns every traced call. */
  stop(): Promise<Syscall[]>;
}

// `1234 1733450000.123456 fdatasync(17</tmp/x/000003.log>) = 0`, or `… <unfinished ...>`.
const LINE = /^(\d+)\s+(\d+)\.(\d{6})\s+(\w+)\((?:\d+<([^>]*)>)?/;

export function parseStrace(text: string): Syscall[] {
  const out: Syscall[] = [];
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (!m || line.includes('resumed>')) continue;
    out.push({ pid: Number(m[1]), atUs: Number(m[2]) * 1e6 + Number(m[3]), name: m[4]!, path: m[5] });
  }
  return out;
}

/** Attaches to every thread of `pid`, tracing `syscalls`; resolves once strace says it is attached. */
export async function traceProcess(bin: StraceBinary, pid: number, syscalls: readonly string[], outFile: string): Promise<Tracer> {
  const child: ChildProcess = spawn(bin.path, ['-f', '-ttt', '-y', '-e', `trace=${syscalls.join(',')}`, '-o', outFile, '-p', String(pid)], {
    env: bin.env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`strace did not attach to ${pid} within 10 s: ${stderr}`)), 10_000);
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      // `strace: Process 1234 attached with 11 threads` (or `attached` for one thread).
      if (new RegExp(`Process ${pid} attached`).test(stderr)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`strace exited (${code}) before attaching: ${stderr}`));
    });
  });
  return {
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT');
      await exited;
      return parseStrace(readFileSync(outFile, 'utf8'));
    },
  };
}
