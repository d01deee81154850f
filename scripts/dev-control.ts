// `npm start -- --status` and `npm start -- --restart`: talk to a running dev cluster through its
// DIR/processes.json (every process, pid, exit) and SIGUSR2 (restart every dead process).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterState, ProcessState } from './dev-supervisor.js';

export const stateFileOf = (dir: string) => join(dir, 'processes.json');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The state of the dev cluster running on DIR; throws when none runs there. */
export function readClusterState(dir: string): ClusterState {
  const file = stateFileOf(dir);
  if (!existsSync(file)) throw new Error(`no dev cluster runs on ${dir} (no ${file}); start one with npm start`);
  const state = JSON.parse(readFileSync(file, 'utf8')) as ClusterState;
  if (!alive(state.pid)) throw new Error(`the dev cluster that wrote ${file} (pid ${state.pid}) is not running`);
  return state;
}

export function formatStatus(state: ClusterState): string {
  const row = (p: ProcessState) =>
    `${p.name.padEnd(26)} ${String(p.pid ?? '-').padStart(7)}  ${(p.running ? 'running' : `exited (${p.exit?.signal ?? `code ${p.exit?.code}`})`).padEnd(22)} ${p.log ?? ''}`;
  return [`dev cluster pid ${state.pid}`, `${'process'.padEnd(26)} ${'pid'.padStart(7)}  ${'state'.padEnd(22)} log`, ...state.processes.map(row)].join('\n');
}

/** Asks the dev cluster to start its dead processes again and waits (up to `timeoutMs`) until all run. */
export async function restartDead(dir: string, timeoutMs = 60_000): Promise<ClusterState> {
  const before = readClusterState(dir);
  const dead = before.processes.filter((p) => !p.running);
  if (dead.length === 0) return before;
  process.kill(before.pid, 'SIGUSR2');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await new Promise((r) => setTimeout(r, 200));
    const now = readClusterState(dir);
    // Running again under a new pid.
    const back = dead.every((d) => now.processes.some((p) => p.name === d.name && p.running && p.pid !== d.pid));
    if (back) return now;
    // Tried and failed this time (more attempts than before): no use waiting.
    const failed = now.processes.filter((p) => !p.running && (p.restartAttempts ?? 0) > (dead.find((d) => d.name === p.name)?.restartAttempts ?? 0));
    if (failed.length > 0 && failed.length + now.processes.filter((p) => p.running).length === now.processes.length) {
      throw new Error(`could not start again: ${failed.map((p) => `${p.name}: ${p.restartError}`).join('; ')}\n${formatStatus(now)}`);
    }
    if (Date.now() > deadline) throw new Error(`not all came back within ${timeoutMs} ms (see the dev cluster's output and logs):\n${formatStatus(now)}`);
  }
}
