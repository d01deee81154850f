// The HAProxy chain `npm run bench -- mesh --compare haproxy` measures against: it must really
// carry traffic over mutually authenticated TLS with our certificates, or the comparison
// measures nothing.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type tls from 'node:tls';
import { startHaproxyChain, type HaproxyChain } from '../../scripts/bench-haproxy.js';
import { reservePorts } from '../../scripts/ports.js';
import { probeHandshake } from '../support/tls-probe.js';
import { createPkiFixture, type PkiFixture } from '../support/pki-fixture.js';
import { call, startStorage, type StorageProcess } from '../support/storage-process.js';

let pki: PkiFixture;
let storage: StorageProcess;
let chain: HaproxyChain;
let dir: string;
let meshPort: number;
t.before(async () => {
  pki = await createPkiFixture({ shards: 2 });
  storage = await startStorage();
  dir = mkdtempSync(join(tmpdir(), 'haproxy-chain-'));
  const crls = pki.crls().map((c, i) => {
    const f = join(dir, `crl-${i}.pem`);
    writeFileSync(f, c);
    return f;
  });
  let appPort: number;
  [appPort, meshPort] = (await reservePorts([{ host: '127.0.0.1' }, { host: '127.0.0.4' }])) as [number, number];
  const u = new URL(storage.url);
  chain = await startHaproxyChain({
    dir, appPort, mesh: { host: '127.0.0.4', port: meshPort }, storage: { host: u.hostname, port: Number(u.port) },
    a: pki.shards[0]!, b: pki.shards[1]!, rootCert: pki.root.certPath, crls,
  });
});
t.teardown(async () => {
  await chain?.stop();
  await storage?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  await pki?.cleanup();
});

t.test('two HAProxy sidecars carry writes and reads to the storage node', async (t) => {
  const key = '/entities/document.bench.items:2f1c3f0e-7d2b-4c1a-9a8e-5b6d7c8e9f00';
  t.equal((await call(chain.url, 'PUT', key, { blob: '{"a":1}' })).status, 201);
  const got = await call(chain.url, 'GET', key);
  t.equal(got.status, 200);
  t.equal(got.body.blob, '{"a":1}');
});

t.test('the HAProxy mesh side speaks TLS 1.3 + h2 only to clients with a certificate from our root', async (t) => {
  const handshake = (o: tls.ConnectionOptions) => probeHandshake('127.0.0.4', meshPort, pki.root.cert, o);
  const ok = await handshake({ cert: pki.shards[0]!.chain, key: pki.shards[0]!.key, checkServerIdentity: () => undefined });
  t.same(ok, { protocol: 'TLSv1.3', alpn: 'h2' }, 'our shard certificate: TLS 1.3 with h2');
  t.equal(await handshake({ checkServerIdentity: () => undefined }), 'refused', 'no client certificate: refused');
});
