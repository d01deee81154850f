// Handles on the local mesh's processes: a storage node or a sidecar that can be started,
// stopped, killed and started again with the same config, ports and data.
import type { ChildProcess } from 'node:child_process';
import type { Exit, Running } from './processes.js';

export interface SidecarReady {
  event: 'listening';
  shard: string;
  app: string;
  mesh: string;
  admin: string;
}

/** One program of the mesh; `process` is set by start() and cleared by stop() only. */
export class ProcessHandle<L> {
  process: Running<L> | undefined;

  constructor(
    readonly name: string,
    private readonly launch: () => Promise<Running<L>>,
  ) {}

  /** Starts the program unless it is running (one that exited by itself is started again). */
  async start(): Promise<void> {
    const p = this.process;
    if (p && p.child.exitCode === null && p.child.signalCode === null) throw new Error(`${this.name} is already running`);
    this.process = await this.launch();
  }

  /** Sends `signal`, waits for the exit and forgets the process. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit | undefined> {
    const p = this.process;
    const exit = await p?.kill(signal);
    if (this.process === p) this.process = undefined;
    return exit;
  }

  /** Sends `signal` and waits for the exit; the process (and its exit) stays readable. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<Exit | undefined> {
    return this.process ? this.process.kill(signal) : Promise.resolve(undefined);
  }

  private running(): Running<L> {
    if (!this.process) throw new Error(`${this.name} is not running`);
    return this.process;
  }

  get child(): ChildProcess {
    return this.running().child;
  }

  get ready(): L {
    return this.running().ready;
  }

  get exited(): Promise<Exit> {
    return this.running().exited;
  }

  stderr(): string {
    return this.process?.stderr() ?? '';
  }
}

export class StorageHandle extends ProcessHandle<{ port: number }> {
  constructor(
    name: string,
    launch: (() => Promise<Running<{ port: number }>>) | undefined,
    readonly url: string,
    readonly dataDir: string | undefined,
  ) {
    super(name, launch ?? (() => Promise.reject(new Error(`${name} is not the mesh's to start (it runs at ${url})`))));
  }

  /** True when the storage node is one the mesh was given (shard.storageUrl), not one it starts. */
  get external(): boolean {
    return this.dataDir === undefined;
  }

  get port(): number {
    return Number(new URL(this.url).port);
  }
}

export class SidecarHandle extends ProcessHandle<SidecarReady> {
  constructor(
    name: string,
    launch: () => Promise<Running<SidecarReady>>,
    readonly configFile: string,
    readonly auditFile: string,
    /** ip:port of its mesh (mTLS) listener. */
    readonly meshEndpoint: string,
    readonly meshPort: number,
    readonly appUrl: string,
    readonly adminUrl: string,
  ) {
    super(name, launch);
  }
}
