#!/usr/bin/env node
// `themis-sidecar --config FILE.json`: starts one sidecar. Prints one JSON line with the bound
// addresses when ready; SIGHUP reloads certificates and CRLs; SIGTERM/SIGINT drain and exit 0.
// With `workers` > 1 this process is the control process and starts the workers (cluster/).
// A bad config exits 78 (EX_CONFIG) naming the field, so systemd need not restart it.
import { parseArgs } from 'node:util';
import { loadSidecarConfig } from '../src/config/sidecar.js';
import { ConfigError } from '../src/config/validate.js';
import { TopologyError } from '../src/topology/topology.js';
import { createLogger } from '../src/log.js';
import { systemClock, systemRandom } from '../src/runtime.js';
import { resolve } from 'node:path';
import { useCompileCache } from '../src/compile-cache.js';

const USAGE = `usage: themis-sidecar --config FILE.json [--drain-ms 5000]
  See docs/sidecar.md for the config file; deploy/config/ has examples.`;

async function main(): Promise<void> {
  useCompileCache(); // before the sidecar's modules load (below)
  const { values } = parseArgs({ options: { config: { type: 'string' }, 'drain-ms': { type: 'string' }, help: { type: 'boolean' } }, strict: true });
  if (values.help || !values.config) {
    process.stdout.write(USAGE + '\n');
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const drainMs = Number(values['drain-ms'] ?? 5000);
  if (!Number.isInteger(drainMs) || drainMs < 0 || drainMs > 3_600_000) {
    process.stderr.write(`themis-sidecar: --drain-ms: expected whole milliseconds from 0 to 3600000, got ${JSON.stringify(values['drain-ms'])}\n`);
    process.exitCode = 2;
    return;
  }
  const cfg = loadSidecarConfig(values.config);
  const log = createLogger('themis-sidecar').child({ shard: cfg.shardId });
  const rt = { clock: systemClock, random: systemRandom, log };
  const sidecar = cfg.workers > 1
    ? await (await import('./cluster/supervisor.js')).superviseWorkers(cfg, resolve(values.config), rt, drainMs)
    : await (await import('./sidecar.js')).Sidecar.create(cfg, rt);
  const bound = 'bound' in sidecar ? sidecar.bound : await sidecar.start();
  process.stdout.write(JSON.stringify({ event: 'listening', shard: cfg.shardId, ...bound, ...(cfg.workers > 1 ? { workers: cfg.workers } : {}) }) + '\n');
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, drainMs }, 'draining');
    sidecar.stop(drainMs).then(
      () => process.exit(0),
      (e) => {
        log.error({ err: e }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => sidecar.reload('SIGHUP'));
}

main().catch((e: unknown) => {
  if (e instanceof ConfigError || e instanceof TopologyError) {
    process.stderr.write(`themis-sidecar: ${e.message}\n`);
    process.exit(78);
  }
  if ((e as NodeJS.ErrnoException)?.code === 'EADDRINUSE' || (e as NodeJS.ErrnoException)?.code === 'EADDRNOTAVAIL') {
    process.stderr.write(`themis-sidecar: cannot listen: ${(e as Error).message}\n`);
    process.exit(1);
  }
  process.stderr.write(`themis-sidecar: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
