// Starting the project's programs as child processes and waiting for the JSON line each
// prints when ready ({"event":"listening", …}). Used by the dev cluster, the benchmarks and
// the integration tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root, whether this runs compiled (dist/scripts) or from source (scripts). */
export const ROOT = join(here, here.endsWith(`${sep}dist${sep}scripts`) ? '../..' : '..');
export const MAIN = {
  storage: join(ROOT, 'dist/storage-node/main.js'),
  sidecar: join(ROOT, 'dist/proxy/main.js'),
  /** The benchmark's minimal Node proxy (bench-floor-proxy.ts). */
  floorProxy: join(ROOT, 'dist/scripts/bench-floor-proxy.js'),
} as const;

/**
 * V8 flags every sidecar runs with (local-mesh.ts passes them; the systemd unit too):
 * - a 16 MiB young generation semi-space. The sidecar allocates many short-lived objects per
 *   request; with V8's default the scavenger ran so often that GET at concurrency 1 went from
 *   ~400 to ~510 req/s with this flag (CPU per request 1,100 → 860 µs per sidecar). V8 sizes the
 *   young generation from the host's memory: with 24 GiB it picks 16 MiB itself (the heap limit
 *   is the same with and without the flag); the flag keeps smaller hosts from getting less;
 * - a 1 GiB old generation. Besides the limit, V8 takes from it how far the heap may grow past
 *   what is live: with the default (4 GiB on a large host) up to 4×, with 1 GiB about 1.6×. A
 *   sidecar's live heap is 20–30 MB; under load its RSS went from 213 to 141 MB at the most.
 * Both measured with `npm run bench -- mesh` (docs/performance.md, docs/sidecar.md "Node flags").
 */
export const SIDECAR_NODE_FLAGS = ['--max-semi-space-size=16', '--max-old-space-size=1024'] as const;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Running<L> {
  readonly child: ChildProcess;
  readonly ready: L;
  /** The last 64 KiB the process wrote to stderr. */
  stderr(): string;
  kill(signal?: NodeJS.Signals): Promise<Exit>;
  readonly exited: Promise<Exit>;
}

export interface StartOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Also append stderr to this file. */
  logFile?: string;
  /** Extra node flags, e.g. ['--cpu-prof', '--cpu-prof-dir=/tmp/prof']. */
  nodeArgs?: string[];
}

export async function startListening<L>(main: string, args: string[], name: string, o: StartOptions = {}): Promise<Running<L>> {
  if (!existsSync(main)) throw new Error(`${main} is missing: build first with \`npm run build\``);
  const timeoutMs = o.timeoutMs ?? 20_000;
  const child = spawn(process.execPath, [...(o.nodeArgs ?? []), main, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, THEMIS_LOG_LEVEL: process.env.THEMIS_LOG_LEVEL ?? 'info', ...o.env },
  });
  let err = '';
  const log = o.logFile ? createWriteStream(o.logFile, { flags: 'a' }) : undefined;
  child.stderr!.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-65_536);
    log?.write(d);
  });
  const exited = new Promise<Exit>((resolve) =>
    child.on('exit', (code, signal) => {
      log?.end();
      resolve({ code, signal });
    }),
  );
  const ready = await new Promise<L>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not print its listening line within ${timeoutMs} ms; stderr:\n${err}`));
    }, timeoutMs);
    const onData = (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{"event":"listening"'));
      if (line !== undefined) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve(JSON.parse(line) as L);
      }
    };
    child.stdout!.on('data', onData);
    void exited.then((e) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${e.code ?? e.signal}) before listening; stderr:\n${err}`));
    });
  });
  return {
    child,
    ready,
    stderr: () => err,
    kill: async (signal: NodeJS.Signals = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
    exited,
  };
}
