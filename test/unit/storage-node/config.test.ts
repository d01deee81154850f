import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseStorageArgs, validateStorageConfig } from '../../../src/config/storage.js';
import { ConfigError } from '../../../src/config/validate.js';

t.test('defaults: loopback, port 8765, 16 MiB blobs, 30 s long-poll cap, 24 h / 100k-record change log', async (t) => {
  const c = validateStorageConfig({ dataDir: '/var/lib/themis' });
  t.same(c, {
    host: '127.0.0.1',
    port: 8765,
    dataDir: '/var/lib/themis',
    maxBlobBytes: 16777216,
    maxBodyBytes: 2 * 16777216 + 65536,
    allowNonLoopback: false,
    maxLongPollMs: 30000,
    feedRetainMs: 86400000,
    feedRetainRecords: 100000,
    feedMaxRecords: 10000000,
    feedTrimIntervalMs: 1000,
    feedFollowerTtlMs: 3600000,
    sseHeartbeatMs: 15000,
  });
  t.ok(Object.isFrozen(c));
});

t.test('bad settings name the field', async (t) => {
  const cases: [string, Record<string, unknown>, string][] = [
    ['dataDir missing', {}, 'dataDir'],
    ['dataDir empty', { dataDir: '' }, 'dataDir'],
    ['port too large', { dataDir: '/d', port: 70000 }, 'port'],
    ['port negative', { dataDir: '/d', port: -1 }, 'port'],
    ['port not a number', { dataDir: '/d', port: 'http' }, 'port'],
    ['maxBlobBytes zero', { dataDir: '/d', maxBlobBytes: 0 }, 'maxBlobBytes'],
    ['maxBlobBytes over 256 MiB', { dataDir: '/d', maxBlobBytes: 268435457 }, 'maxBlobBytes'],
    ['maxLongPollMs negative', { dataDir: '/d', maxLongPollMs: -5 }, 'maxLongPollMs'],
    ['allowNonLoopback not boolean', { dataDir: '/d', allowNonLoopback: 'yes' }, 'allowNonLoopback'],
    ['host not an address', { dataDir: '/d', host: 'example.com' }, 'host'],
    ['host a number', { dataDir: '/d', host: 127 }, 'host'],
    ['unknown setting', { dataDir: '/d', dataDirectory: '/x' }, 'dataDirectory'],
    ['feedRetainMs negative', { dataDir: '/d', feedRetainMs: -1 }, 'feedRetainMs'],
    ['feedRetainRecords not a number', { dataDir: '/d', feedRetainRecords: 'many' }, 'feedRetainRecords'],
    ['feedMaxRecords zero', { dataDir: '/d', feedMaxRecords: 0 }, 'feedMaxRecords'],
    ['feedMaxRecords below feedRetainRecords', { dataDir: '/d', feedRetainRecords: 1000, feedMaxRecords: 999 }, 'feedMaxRecords'],
    ['feedTrimIntervalMs too small', { dataDir: '/d', feedTrimIntervalMs: 1 }, 'feedTrimIntervalMs'],
    ['feedFollowerTtlMs too small', { dataDir: '/d', feedFollowerTtlMs: 5 }, 'feedFollowerTtlMs'],
    ['sseHeartbeatMs zero', { dataDir: '/d', sseHeartbeatMs: 0 }, 'sseHeartbeatMs'],
  ];
  for (const [name, raw, field] of cases) t.throws(() => validateStorageConfig(raw), { name: 'ConfigError', field }, name);
});

t.test('a non-loopback host is refused unless allowNonLoopback, and the message says why', async (t) => {
  for (const host of ['0.0.0.0', '10.1.2.3', '::', '192.168.0.1']) {
    try {
      validateStorageConfig({ dataDir: '/d', host });
      t.fail(`${host} accepted`);
    } catch (err) {
      t.ok(err instanceof ConfigError, host);
      t.equal((err as ConfigError).field, 'host');
      t.match((err as Error).message, /plaintext/);
      t.match((err as Error).message, /no authentication/);
      t.match((err as Error).message, /--allow-non-loopback/);
    }
    t.equal(validateStorageConfig({ dataDir: '/d', host, allowNonLoopback: true }).host, host);
  }
  for (const host of ['127.0.0.1', '127.5.6.7', '::1', '[::1]', 'localhost']) {
    t.doesNotThrow(() => validateStorageConfig({ dataDir: '/d', host }), host);
  }
});

t.test('CLI flags, a JSON file, and flags winning over the file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'storage-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'storage.json');
  writeFileSync(file, JSON.stringify({ dataDir: '/from/file', port: 9000, maxBlobBytes: 1024 }));
  const c = parseStorageArgs(['--config', file, '--port', '0', '--max-long-poll-ms', '500']);
  t.equal(c?.dataDir, '/from/file');
  t.equal(c?.port, 0, 'flag wins');
  t.equal(c?.maxBlobBytes, 1024, 'from the file');
  t.equal(c?.maxLongPollMs, 500);
  t.equal(c?.maxBodyBytes, 2048 + 65536);
  t.equal(parseStorageArgs(['--data-dir', '/d', '--host', '0.0.0.0', '--allow-non-loopback'])?.host, '0.0.0.0');
  t.equal(parseStorageArgs(['--help']), null);

  writeFileSync(join(dir, 'bad.json'), '{ port: 1 }');
  writeFileSync(join(dir, 'array.json'), '[]');
  const bad: [string, string[], string][] = [
    ['unknown flag', ['--data-dir', '/d', '--prot', '1'], 'arguments'],
    ['positional', ['/d'], 'arguments'],
    ['bad port flag', ['--data-dir', '/d', '--port', '8o'], 'port'],
    ['missing file', ['--config', join(dir, 'none.json')], 'config'],
    ['file not JSON', ['--config', join(dir, 'bad.json')], 'config'],
    ['file not an object', ['--config', join(dir, 'array.json')], 'config'],
    ['no data dir', ['--port', '1'], 'dataDir'],
  ];
  for (const [name, argv, field] of bad) t.throws(() => parseStorageArgs(argv), { name: 'ConfigError', field }, name);
});

t.test('change-log retention flags; a hard cap below the records kept is refused, naming the field', async (t) => {
  const c = parseStorageArgs(['--data-dir', '/d', '--feed-retain-ms', '5000', '--feed-retain-records', '10', '--feed-max-records', '50', '--feed-trim-interval-ms', '100', '--feed-follower-ttl-ms', '60000', '--sse-heartbeat-ms', '250']);
  t.match(c, { feedRetainMs: 5000, feedRetainRecords: 10, feedMaxRecords: 50, feedTrimIntervalMs: 100, feedFollowerTtlMs: 60000, sseHeartbeatMs: 250 });
  t.throws(() => parseStorageArgs(['--data-dir', '/d', '--feed-retain-records', '10', '--feed-max-records', '5']), { name: 'ConfigError', field: 'feedMaxRecords', message: /below feedRetainRecords/ });
  t.doesNotThrow(() => parseStorageArgs(['--data-dir', '/d', '--feed-retain-records', '10', '--feed-max-records', '10']), 'equal is fine');
});
