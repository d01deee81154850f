// Start-up of the real `themis-storage` program: the listening line, refusals that name the
// field (a non-loopback host above all), a held data directory, a busy port, --help, --config.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { call, removeDir, runStorage, startStorage, tempDataDir } from '../support/storage-process.js';

t.test('prints one listening line with the real port, then serves /health', async (t) => {
  const node = await startStorage();
  t.teardown(() => removeDir(node.dataDir));
  t.ok(node.port > 0, `port 0 became ${node.port}`);
  const h = await call(node.url, 'GET', '/health');
  t.same([h.status, h.body.status, h.body.last_seq], [200, 'ok', 0]);
  t.same(await node.stop(), { code: 0, signal: null }, 'SIGTERM: clean exit 0');
});

t.test('refuses a non-loopback host, says why, exits non-zero', async (t) => {
  const dir = tempDataDir();
  t.teardown(() => removeDir(dir));
  const hosts = ['0.0.0.0', '::', '192.0.2.10'];
  const runs = await Promise.all(hosts.map((host) => runStorage(['--host', host, '--port', '0', '--data-dir', dir])));
  for (const [i, host] of hosts.entries()) {
    const r = runs[i]!;
    t.not(r.code, 0, `${host}: exit status`);
    t.equal(r.stdout, '', `${host}: never said it was listening`);
    t.match(r.stderr, /config: host: refusing to listen on non-loopback address/, `${host}: names the field`);
    t.match(r.stderr, /plaintext HTTP and has no authentication/, `${host}: says why`);
    t.match(r.stderr, /--allow-non-loopback/, `${host}: says what to write instead`);
  }
});

t.test('bad flags and settings exit at start-up naming the field', async (t) => {
  const dir = tempDataDir();
  t.teardown(() => removeDir(dir));
  const file = join(dir, 'storage.json');
  writeFileSync(file, JSON.stringify({ dataDir: join(dir, 'db'), maxBlobBytes: 'lots' }));
  const cases: [string, string[], RegExp][] = [
    ['no data dir', ['--port', '0'], /config: dataDir: is required/],
    ['port out of range', ['--data-dir', dir, '--port', '65536'], /config: port: expected an integer from 0 to 65535/],
    ['port not a number', ['--data-dir', dir, '--port', 'abc'], /config: port:/],
    ['blob limit zero', ['--data-dir', dir, '--max-blob-bytes', '0'], /config: maxBlobBytes:/],
    ['unknown flag', ['--data-dir', dir, '--verbose'], /config: arguments: Unknown option '--verbose'/],
    ['host not an address', ['--data-dir', dir, '--host', 'db.example'], /config: host: expected an IP address/],
    ['bad value in the config file', ['--config', file, '--port', '0'], /config: maxBlobBytes: expected an integer/],
  ];
  const runs = await Promise.all(cases.map(([, args]) => runStorage(args)));
  for (const [i, [name, , message]] of cases.entries()) {
    const r = runs[i]!;
    t.equal(r.code, 2, `${name}: exit status 2`);
    t.match(r.stderr, message, name);
    t.match(r.stderr, /usage: themis-storage/, `${name}: usage follows`);
  }
});

t.test('--help prints the usage and exits 0', async (t) => {
  const r = await runStorage(['--help']);
  t.equal(r.code, 0);
  t.match(r.stdout, /--allow-non-loopback/);
  t.match(r.stdout, /--data-dir DIR/);
});

t.test('a second node on the same data directory or port is refused', async (t) => {
  const node = await startStorage();
  t.teardown(async () => {
    await node.stop();
    removeDir(node.dataDir);
  });
  const sameDir = await runStorage(['--port', '0', '--data-dir', node.dataDir]);
  t.equal(sameDir.code, 1);
  t.match(sameDir.stderr, /cannot open the data directory/);
  const other = tempDataDir();
  t.teardown(() => removeDir(other));
  const samePort = await runStorage(['--port', String(node.port), '--data-dir', other]);
  t.equal(samePort.code, 1);
  t.match(samePort.stderr, /cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
  t.equal((await call(node.url, 'GET', '/health')).status, 200, 'the first node is unharmed');
});
