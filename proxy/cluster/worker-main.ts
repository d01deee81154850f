// One worker of a sidecar with workers (started by cluster/supervisor.ts through node:cluster,
// never by hand): the app and mesh ports, with the replay check, the replicas' positions, the
// write holds and failover's state of the control process (control-link.ts). It stops with its
// control process.
import cluster from 'node:cluster';
import { loadSidecarConfig } from '../../src/config/sidecar.js';
import { createLogger } from '../../src/log.js';
import { systemClock, systemRandom } from '../../src/runtime.js';
import type { Sidecar } from '../sidecar.js';
import { useCompileCache } from '../../src/compile-cache.js';
import { ControlLink, type Channel } from './control-link.js';

/** How long a worker whose control process is gone lets its requests finish. */
const ORPHAN_DRAIN_MS = 1000;

async function main(): Promise<void> {
  useCompileCache(); // before the sidecar's modules load (below)
  const slot = Number(process.env.THEMIS_WORKER_SLOT);
  const file = process.env.THEMIS_SIDECAR_CONFIG;
  if (!process.send || !cluster.worker || !Number.isInteger(slot) || slot < 1 || !file) {
    process.stderr.write('themis-sidecar worker: started by themis-sidecar with workers > 1, not by hand\n');
    process.exit(2);
  }
  // node:cluster ends a worker at once when its channel closes; this one drains first.
  cluster.worker.exitedAfterDisconnect = true;
  const cfg = loadSidecarConfig(file);
  const log = createLogger('themis-sidecar').child({ shard: cfg.shardId, worker: slot });
  const link = new ControlLink(process as unknown as Channel);
  let sidecar: Sidecar | undefined;
  let stopping = false;
  const stop = (why: string, drainMs: number) => {
    if (stopping) return;
    stopping = true;
    log.info({ why, drainMs }, 'worker draining');
    if (!sidecar) process.exit(0); // still starting: nothing to drain
    sidecar.stop(drainMs).then(
      () => process.exit(0),
      (e: Error) => {
        log.error({ err: e.message }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  // Installed before anything else, so that a stop or signal during the start is not lost.
  const welcome = new Promise<void>((resolve) => link.onMessage((m) => {
    if (m.kind === 'welcome') resolve();
    else if (m.kind === 'reload') sidecar?.reload(m.why);
    else if (m.kind === 'stop') stop('control process', m.drainMs);
    else if (m.kind === 'metrics') {
      if (!sidecar) return link.metrics(m.id, []);
      void sidecar.metrics.registry.getMetricsAsJSON().then((json) => link.metrics(m.id, json), () => link.metrics(m.id, []));
    }
  }));
  // systemd (KillMode=control-group) and a terminal's Ctrl-C signal every process of the sidecar.
  const drainMs = Number(process.env.THEMIS_DRAIN_MS ?? 5000);
  process.on('SIGTERM', () => stop('SIGTERM', drainMs));
  process.on('SIGINT', () => stop('SIGINT', drainMs));
  process.on('SIGHUP', () => undefined); // the control process reloads every worker
  process.on('disconnect', () => {
    link.failPending();
    stop('control process gone', ORPHAN_DRAIN_MS);
  });
  log.debug({ ms: Math.round(performance.now()) }, 'worker loaded');
  // etcd's topology and CRLs, as the control process holds them: a worker has no etcd client.
  const docs = await link.docs();
  if (stopping) return;
  sidecar = await (await import('../sidecar.js')).Sidecar.create(cfg, { clock: systemClock, random: systemRandom, log }, { kind: 'data', slot, link, docs });
  log.debug({ ms: Math.round(performance.now()) }, 'worker built');
  // The holds in force and failover's state (the welcome, applied by the link) come before the first request.
  link.hello();
  await welcome;
  if (stopping) return;
  link.listening(await sidecar.serve());
  log.info({ ms: Math.round(performance.now()) }, 'worker serving');
}

main().catch((e: unknown) => {
  process.stderr.write(`themis-sidecar worker: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
