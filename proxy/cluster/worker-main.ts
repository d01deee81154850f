// One worker of a sidecar with workers (started by cluster/supervisor.ts through node:cluster,
// never by hand): the app and mesh ports, with the replay check, the replicas' positions and the
// write holds of the control process (control-link.ts). It stops with its control process.
import { loadSidecarConfig } from '../../src/config/sidecar.js';
import { createLogger } from '../../src/log.js';
import { systemClock, systemRandom } from '../../src/runtime.js';
import { Sidecar } from '../sidecar.js';
import { ControlLink, type Channel } from './control-link.js';
import type { ToWorker } from './messages.js';

async function main(): Promise<void> {
  const slot = Number(process.env.THEMIS_WORKER_SLOT);
  const file = process.env.THEMIS_SIDECAR_CONFIG;
  if (!process.send || !Number.isInteger(slot) || slot < 1 || !file) {
    process.stderr.write('themis-sidecar worker: started by themis-sidecar with workers > 1, not by hand\n');
    process.exit(2);
  }
  const cfg = loadSidecarConfig(file);
  const log = createLogger('themis-sidecar').child({ shard: cfg.shardId, worker: slot });
  const link = new ControlLink(process as unknown as Channel);
  const welcome = new Promise<Extract<ToWorker, { kind: 'welcome' }>>((resolve) => link.onMessage((m) => m.kind === 'welcome' && resolve(m)));
  const sidecar = await Sidecar.create(cfg, { clock: systemClock, random: systemRandom, log }, { kind: 'data', slot, link });
  let stopping = false;
  const stop = (why: string, drainMs: number) => {
    if (stopping) return;
    stopping = true;
    log.info({ why, drainMs }, 'worker draining');
    link.failPending();
    sidecar.stop(drainMs).then(
      () => process.exit(0),
      (e: Error) => {
        log.error({ err: e.message }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  link.onMessage((m) => {
    if (m.kind === 'reload') sidecar.reload(m.why);
    else if (m.kind === 'stop') stop('control process', m.drainMs);
    else if (m.kind === 'metrics') void sidecar.metrics.registry.getMetricsAsJSON().then((json) => link.metrics(m.id, json), () => link.metrics(m.id, []));
  });
  // The holds in force apply before the first request is served.
  link.hello();
  link.applyWelcome(await welcome);
  link.listening(await sidecar.serve());
  // systemd (KillMode=control-group) and a terminal's Ctrl-C signal every process of the sidecar.
  process.on('SIGTERM', () => stop('SIGTERM', 5000));
  process.on('SIGINT', () => stop('SIGINT', 5000));
  process.on('SIGHUP', () => undefined); // the control process reloads every worker
  process.on('disconnect', () => stop('control process gone', 1000));
}

main().catch((e: unknown) => {
  process.stderr.write(`themis-sidecar worker: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
