// `npm start` (dist/scripts/dev-cluster.js) as a child process for tests: its JSON event lines on
// stdout (ready, exited, restarted) awaited one by one, everything it printed kept for messages.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './cli.js';

export interface ReadyEvent {
  apps: string[];
  storage: string[];
  admins: string[];
  /** App ports of the spare shards (--spares). */
  spares: string[];
  epoch: number;
  replicas: number;
  dir: string;
  pid: number;
}

export interface DevCluster {
  child: ChildProcess;
  ready: ReadyEvent;
  exited: Promise<number | null>;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  /** The next event named `name` not taken yet (including ones already printed). */
  event(name: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** `node dev-cluster.js ARGS --dir DIR` (e.g. --status, --restart), run to its end. */
  companion(args: string[]): { status: number | null; stdout: string; stderr: string };
}

const MAIN = join(ROOT, 'dist/scripts/dev-cluster.js');

export async function startDevCluster(dir: string, args: string[]): Promise<DevCluster> {
  const child = spawn(process.execPath, [MAIN, '--dir', dir, '--auto-ports', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let out = '';
  const events: Record<string, unknown>[] = [];
  const waiting: Array<() => void> = [];
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop()!;
    for (const l of lines) if (l.startsWith('{"event":')) events.push(JSON.parse(l) as Record<string, unknown>);
    for (const w of waiting.splice(0)) w();
  });
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const event = async (name: string, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = events.findIndex((e) => e.event === name);
      if (i >= 0) return events.splice(i, 1)[0]!;
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no "${name}" event from the dev cluster; it printed:\n${out}`);
      await new Promise<void>((r) => {
        waiting.push(r);
        setTimeout(r, 200);
      });
    }
  };
  const ready = (await event('ready').catch((e: Error) => {
    child.kill('SIGKILL');
    throw e;
  })) as unknown as ReadyEvent;
  return {
    child,
    ready,
    exited,
    output: () => out,
    event,
    companion: (extra) => spawnSync(process.execPath, [MAIN, ...extra, '--dir', dir], { encoding: 'utf8', timeout: 90_000 }),
  };
}
