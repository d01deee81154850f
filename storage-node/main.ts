#!/usr/bin/env node
// themis-storage: reads the config, opens LevelDB, serves the storage API, prints one
// `{"event":"listening",…}` line on stdout, and on SIGTERM/SIGINT shuts down cleanly (exit 0).
import { parseStorageArgs, STORAGE_USAGE, type StorageConfig } from '../src/config/storage.js';
import { ConfigError } from '../src/config/validate.js';
import { createLogger } from '../src/log.js';
import { systemClock, systemRandom } from '../src/runtime.js';
import { startServer } from './server.js';
import { Store } from './store.js';

const EXIT_CONFIG = 2;
const EXIT_START = 1;

function fail(message: string, code: number): never {
  process.stderr.write(`themis-storage: ${message}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  let config: StorageConfig | null;
  try {
    config = parseStorageArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof ConfigError) fail(`${err.message}\n${STORAGE_USAGE}`, EXIT_CONFIG);
    throw err;
  }
  if (config === null) {
    process.stdout.write(`${STORAGE_USAGE}\n`);
    return;
  }
  const log = createLogger('themis-storage').child({ component: 'storage-node' });

  let store: Store;
  try {
    store = await Store.open(config.dataDir);
  } catch (err) {
    const cause = (err as { cause?: { message?: string } }).cause?.message;
    fail(`cannot open the data directory ${config.dataDir}: ${(err as Error).message}${cause ? ` (${cause})` : ''}`, EXIT_START);
  }

  let server;
  try {
    server = await startServer({ config, store, log, clock: systemClock, random: systemRandom });
  } catch (err) {
    await store.close();
    fail(`cannot listen on ${config.host}:${config.port}: ${(err as Error).message}`, EXIT_START);
  }
  const { host, port } = server.address;
  log.info({ host, port, dataDir: config.dataDir, lastSeq: store.lastSeq }, 'listening');
  process.stdout.write(`${JSON.stringify({ event: 'listening', host, port })}\n`);

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    server.close().then(
      () => {
        log.info('stopped');
        log.flush();
        process.exitCode = 0;
      },
      (err: unknown) => {
        log.error({ err }, 'error while shutting down');
        log.flush();
        process.exitCode = 1;
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  fail(`unexpected failure at start-up: ${(err as Error)?.stack ?? String(err)}`, EXIT_START);
});
