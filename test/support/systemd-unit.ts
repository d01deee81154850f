// Runs a systemd unit's ExecStart by hand, as systemd would: its Environment= and
// EnvironmentFile= settings, the program found on the PATH given (where an operator's
// `npm install -g` or symlink step put it). For tests of the units cluster init writes.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface Unit {
  argv: string[];
  env: Record<string, string>;
}

/** KEY=VALUE lines; comments and blank lines skipped (systemd's EnvironmentFile format, unquoted). */
export function readEnvFile(file: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m && !line.trimStart().startsWith('#')) env[m[1]!] = m[2]!;
  }
  return env;
}

export function parseUnit(file: string): Unit {
  let env: Record<string, string> = {};
  let argv: string[] | undefined;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^(Environment|EnvironmentFile|ExecStart)=(.*)$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === 'Environment') {
      const [k, ...v] = m[2]!.split('=');
      env[k!] = v.join('=');
    } else if (m[1] === 'EnvironmentFile') env = { ...env, ...readEnvFile(m[2]!) };
    else argv = m[2]!.split(/\s+/).filter(Boolean);
  }
  if (!argv) throw new Error(`${file} has no ExecStart`);
  return { argv, env };
}

export interface UnitProcess {
  name: string;
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when stdout has a line matching `re`; rejects if the process exits first or on timeout. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function startUnit(file: string, o: { path: string; name: string }): UnitProcess {
  const u = parseUnit(file);
  const child = spawn(u.argv[0]!, u.argv.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: o.path, HOME: process.env.HOME ?? '/', THEMIS_LOG_LEVEL: 'warn', ...u.env },
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-65_536)));
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-65_536)));
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  return {
    name: o.name,
    child,
    stdout: () => out,
    stderr: () => err,
    waitFor: (re, timeoutMs = 20_000) =>
      new Promise((resolve, reject) => {
        const end = Date.now() + timeoutMs;
        const poll = () => {
          const line = out.split('\n').find((l) => re.test(l));
          if (line !== undefined) return resolve(line);
          if (child.exitCode !== null || child.signalCode !== null) return reject(new Error(`${o.name} exited (${child.exitCode ?? child.signalCode}); stderr:\n${err.slice(-4000)}`));
          if (Date.now() > end) return reject(new Error(`${o.name}: no line matching ${re} within ${timeoutMs} ms; stderr:\n${err.slice(-4000)}`));
          setTimeout(poll, 100);
        };
        poll();
      }),
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}
