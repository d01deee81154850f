// A real storage node for tests (dist/storage-node/main.js on a temporary data dir and port 0,
// started like every program of the local mesh); runStorage for start-up failures; call().
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './root.js';
import { startListening, type Exit } from '../../scripts/processes.js';

export const STORAGE_MAIN = join(ROOT, 'dist/storage-node/main.js');

export type { Exit } from '../../scripts/processes.js';

export interface StorageProcess {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly child: ChildProcess;
  /** The last 64 KiB the process wrote to stderr (its pino log). */
  stderr(): string;
  /** Sends `signal` and resolves when the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<Exit>;
  /** SIGTERM and wait: a clean shutdown. */
  stop(): Promise<Exit>;
  /** Resolves when the process exits, however. */
  readonly exited: Promise<Exit>;
}

export interface StartOptions {
  /** Reuse a data directory (e.g. after a kill); default: a fresh temporary one. */
  dataDir?: string;
  /** Extra CLI arguments, e.g. ['--max-blob-bytes', '1024']. */
  args?: string[];
  /** Milliseconds to wait for the listening line; default 15000. */
  timeoutMs?: number;
}

/** A fresh temporary directory; the caller removes it (see removeDir). */
export function tempDataDir(prefix = 'themis-storage-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Runs the storage node with exactly `args` and collects its exit and output (for start-up failures). */
export function runStorage(args: string[], timeoutMs = 15_000): Promise<Exit & { stdout: string; stderr: string }> {
  requireBuild();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [STORAGE_MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`themis-storage ${args.join(' ')} did not exit within ${timeoutMs} ms; stdout: ${stdout}`));
    }, timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function requireBuild(): void {
  if (!existsSync(STORAGE_MAIN)) throw new Error(`${STORAGE_MAIN} is missing: build first with \`npx tsc -p .\` (npm test does)`);
}

export async function startStorage(opts: StartOptions = {}): Promise<StorageProcess> {
  requireBuild();
  const dataDir = opts.dataDir ?? tempDataDir();
  const p = await startListening<{ port: number }>(STORAGE_MAIN, ['--port', '0', '--data-dir', dataDir, ...(opts.args ?? [])], 'storage node', { timeoutMs: opts.timeoutMs ?? 15_000 });
  return {
    url: `http://127.0.0.1:${p.ready.port}`,
    port: p.ready.port,
    dataDir,
    child: p.child,
    stderr: p.stderr,
    kill: p.kill,
    stop: () => p.kill('SIGTERM'),
    exited: p.exited,
  };
}

export interface Reply {
  status: number;
  headers: Headers;
  /** The body parsed as JSON (undefined when it is not JSON). */
  body: any;
  text: string;
}

/**
 * One HTTP call with fetch; an object body is sent as JSON, a string or Buffer as is. With
 * `timeoutMs` the call fails (TimeoutError) instead of waiting longer for an answer.
 */
export async function call(base: string, method: string, path: string, body?: unknown, timeoutMs?: number): Promise<Reply> {
  const init: RequestInit = { method, ...(timeoutMs ? { signal: AbortSignal.timeout(timeoutMs) } : {}) };
  if (body !== undefined) init.body = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  const res = await fetch(base + path, init);
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}
