// The dev cluster's watch over its processes: a death is reported (which process, exit code or
// signal, its log file) and the others keep running; restartDead() starts every dead one again.
import { renameSync, writeFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';

/** One process of the dev cluster, as the supervisor sees it. */
export interface Supervised {
  /** e.g. "storage node of shard-002" */
  readonly name: string;
  readonly role: 'storage' | 'sidecar' | 'etcd';
  readonly shard?: string;
  readonly log?: string;
  /** The running child (also after it exited), undefined before the first start. */
  child(): ChildProcess | undefined;
  /** Starts it again with the same ports, data and config. */
  restart(): Promise<void>;
}

export interface ProcessState {
  name: string;
  role: Supervised['role'];
  shard?: string;
  pid?: number;
  running: boolean;
  exit?: { code: number | null; signal: NodeJS.Signals | null };
  log?: string;
  /** Restarts tried since it last died, and the error of the last one when it failed. */
  restartAttempts?: number;
  restartError?: string;
}

/** What DIR/processes.json holds while the dev cluster runs (dev-control.ts reads it). */
export interface ClusterState {
  /** The dev cluster's own pid: SIGUSR2 to it restarts every dead process. */
  pid: number;
  processes: ProcessState[];
}

/** Lines for whoever started the cluster: a JSON event on stdout, a sentence on stderr. */
export type Report = (event: Record<string, unknown>, text: string) => void;

export class DevSupervisor {
  private stopping = false;
  private readonly exits = new Map<Supervised, ProcessState['exit']>();
  private readonly failures = new Map<Supervised, { attempts: number; error: string }>();
  private restarting: Promise<void> | undefined;

  constructor(
    private readonly all: readonly Supervised[],
    private readonly stateFile: string,
    private readonly report: Report,
    private readonly restartHint: string,
  ) {}

  /** Watches every process from now on and writes the state file. */
  watch(): void {
    for (const p of this.all) this.follow(p);
    this.write();
  }

  /** No more reports: the cluster is being stopped on purpose. */
  stop(): void {
    this.stopping = true;
  }

  states(): ProcessState[] {
    return this.all.map((p) => {
      const c = p.child();
      const exit = this.exits.get(p);
      const failed = this.failures.get(p);
      return {
        name: p.name, role: p.role, ...(p.shard ? { shard: p.shard } : {}), pid: c?.pid, running: c !== undefined && !exit, ...(exit ? { exit } : {}), ...(p.log ? { log: p.log } : {}),
        ...(failed ? { restartAttempts: failed.attempts, restartError: failed.error } : {}),
      };
    });
  }

  /** Starts every dead process again: etcd, then storage nodes, then sidecars (one call at a time). */
  restartDead(): Promise<void> {
    this.restarting = (this.restarting ?? Promise.resolve()).then(() => this.restartNow());
    return this.restarting;
  }

  private async restartNow(): Promise<void> {
    for (const role of ['etcd', 'storage', 'sidecar'] as const) {
      const dead = this.all.filter((p) => p.role === role && this.exits.has(p));
      await Promise.all(
        dead.map(async (p) => {
          if (this.stopping) return;
          try {
            await p.restart();
            this.exits.delete(p);
            this.failures.delete(p);
            this.follow(p);
            this.report({ event: 'restarted', process: p.name, role: p.role, shard: p.shard, pid: p.child()?.pid }, `${p.name} started again (pid ${p.child()?.pid})`);
          } catch (e) {
            this.failures.set(p, { attempts: (this.failures.get(p)?.attempts ?? 0) + 1, error: (e as Error).message });
            this.report({ event: 'restart-failed', process: p.name, role: p.role, shard: p.shard, error: (e as Error).message }, `${p.name} could not be started again: ${(e as Error).message}`);
          }
        }),
      );
    }
    this.write();
  }

  private follow(p: Supervised): void {
    const child = p.child();
    if (!child) return;
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      if (this.stopping || p.child() !== child) return;
      this.exits.set(p, { code, signal });
      this.write();
      const log = p.log ? `; its log: ${p.log}` : '';
      this.report(
        { event: 'exited', process: p.name, role: p.role, shard: p.shard, pid: child.pid, code, signal, log: p.log },
        `${p.name} (pid ${child.pid}) exited (${signal ?? `code ${code}`})${log}. The others keep running; ${this.restartHint}`,
      );
    };
    if (child.exitCode !== null || child.signalCode !== null) onExit(child.exitCode, child.signalCode as NodeJS.Signals | null);
    else child.once('exit', onExit);
  }

  /** Replaced atomically, so a reader never sees half a file. */
  write(): void {
    if (this.stopping) return;
    const state: ClusterState = { pid: process.pid, processes: this.states() };
    writeFileSync(this.stateFile + '.tmp', JSON.stringify(state, null, 2) + '\n');
    renameSync(this.stateFile + '.tmp', this.stateFile);
  }
}
