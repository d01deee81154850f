// `themis-sidecar` with `workers` > 1 (docs/sidecar.md "Workers"): this process is the control
// process. It runs everything of the sidecar but the app and mesh ports — etcd registration,
// replication followers, range moves, renewal, the admin port, the replay cache and marks — and
// starts `workers` processes through node:cluster that serve those two ports (the kernel's
// listening socket is shared; node:cluster hands each new connection to the next worker). A
// worker that dies is started again in its slot; SIGHUP reloads every worker; SIGTERM drains them.
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import { Counter, Gauge } from 'prom-client';
import type { SidecarConfig } from '../../src/config/sidecar.js';
import type { Logger } from '../../src/log.js';
import type { SidecarRuntime } from '../runtime.js';
import { Sidecar, type Bound } from '../sidecar.js';
import { WorkerHub, type WorkerPort } from './worker-hub.js';
import { removeStaleSocket } from '../app-listener.js';
import type { ToWorker } from './messages.js';

/** A worker that dies within this of its start is restarted after a growing pause (crash loop). */
const STABLE_MS = 10_000;
const MAX_PAUSE_MS = 10_000;
const START_TIMEOUT_MS = 60_000;

export interface Supervised {
  bound: Bound;
  /** Drains every worker, then the control process. */
  stop(drainMs: number): Promise<void>;
  reload(why: string): void;
}

/** `drainMs`: --drain-ms, also what a worker that is signalled directly (systemd, Ctrl-C) drains for. */
export async function superviseWorkers(cfg: SidecarConfig, configFile: string, rt: SidecarRuntime, drainMs: number): Promise<Supervised> {
  const log: Logger = rt.log.child({ component: 'workers' });
  const hub = new WorkerHub();
  const control = await Sidecar.create(cfg, rt, { kind: 'control', hub });
  const reg = control.metrics.registry;
  const restarts = new Counter({ name: 'themis_worker_restarts_total', help: 'Workers started again after they exited unexpectedly, by slot', labelNames: ['slot'], registers: [reg] });
  const live = new Gauge({ name: 'themis_workers', help: 'Worker processes serving the app and mesh ports', registers: [reg] });
  const epochs = new Gauge({ name: 'themis_worker_topology_epoch', help: 'Epoch of the topology each worker routes by', labelNames: ['slot'], registers: [reg] });
  await control.prepare();
  // A stale app socket file goes now, once, not in every worker at the same time.
  if (cfg.app.socket) await removeStaleSocket(cfg.app.socket.path);

  cluster.setupPrimary({ exec: fileURLToPath(new URL('./worker-main.js', import.meta.url)), args: [], silent: false });
  const bound = new Map<number, Omit<Bound, 'admin'>>();
  // One per slot, kept across restarts: a worker that dies before it listens is replaced, and
  // the start waits for its replacement.
  const listening = new Map<number, () => void>();
  const slots = Array.from({ length: cfg.workers }, (_, i) => i + 1);
  const up = slots.map((s) => new Promise<void>((resolve) => listening.set(s, resolve)));
  const ports = new Map<Worker, WorkerPort>();
  let stopping = false;

  hub.onMessage((w, m) => {
    if (m.kind === 'listening') {
      bound.set(w.slot, m.bound);
      live.set(hub.size);
      listening.get(w.slot)?.();
    } else if (m.kind === 'epoch') epochs.set({ slot: String(w.slot) }, m.epoch);
  });

  const fork = (slot: number, pauseMs: number): void => {
    const started = performance.now();
    const w = cluster.fork({
      THEMIS_WORKER_SLOT: String(slot),
      THEMIS_SIDECAR_CONFIG: configFile,
      THEMIS_DRAIN_MS: String(drainMs),
      // libuv sizes a process's thread pool when it first uses it, before any of our code runs.
      ...(cfg.signing.threads !== undefined ? { UV_THREADPOOL_SIZE: String(cfg.signing.threads) } : {}),
    });
    const port: WorkerPort = { slot, send: (m: ToWorker) => void (w.isConnected() && w.send(m)) };
    ports.set(w, port);
    w.on('message', (m: unknown) => hub.handle(port, m));
    w.on('exit', (code, signal) => {
      ports.delete(w);
      hub.gone(port);
      epochs.remove({ slot: String(slot) });
      live.set(hub.size);
      if (stopping) return;
      const lived = performance.now() - started;
      const pause = lived < STABLE_MS ? Math.min(MAX_PAUSE_MS, Math.max(100, pauseMs * 2)) : 0;
      log.error({ slot, pid: w.process.pid, code, signal, restartInMs: pause }, 'worker exited; starting it again');
      restarts.inc({ slot: String(slot) });
      setTimeout(() => stopping || fork(slot, pause), pause).unref();
    });
  };

  for (const s of slots) fork(s, 0);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(up),
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`the workers did not open their ports within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS))),
  ]).finally(() => clearTimeout(timer));
  live.set(hub.size);
  const first = bound.get(1)!;
  const started = await control.start(first);
  log.info({ workers: cfg.workers, pids: [...ports.keys()].map((w) => w.process.pid) }, 'workers serve the app and mesh ports');

  return {
    bound: started,
    reload(why) {
      control.reload(why);
      hub.broadcast('reload', { why });
    },
    async stop(drainMs) {
      stopping = true;
      const exited = [...ports.keys()].map((w) => new Promise<void>((r) => (w.isDead() ? r() : w.once('exit', () => r()))));
      // Every worker, also one still starting (it has not said hello to the hub yet).
      for (const p of ports.values()) p.send({ themis: 1, kind: 'stop', drainMs });
      // A worker that does not finish draining in time is killed; the control process goes last.
      const kill = setTimeout(() => {
        for (const w of ports.keys()) w.process.kill('SIGKILL');
      }, drainMs + 5000);
      await Promise.all(exited);
      clearTimeout(kill);
      hub.close();
      await control.stop(drainMs);
    },
  };
}
