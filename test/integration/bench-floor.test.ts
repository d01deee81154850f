// The floor `npm run bench -- mesh --compare floor` measures against: two minimal Node
// proxies. They must really carry traffic over mutually authenticated TLS 1.3 with our
// certificates, or the comparison flatters the floor.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFloorChain, type FloorChain } from '../../scripts/bench-floor.js';
import { reservePorts } from '../../scripts/ports.js';
import { probeHandshake } from '../support/tls-probe.js';
import { createPkiFixture, type PkiFixture } from '../support/pki-fixture.js';
import { call, startStorage, type StorageProcess } from '../support/storage-process.js';

let pki: PkiFixture;
let storage: StorageProcess;
let chain: FloorChain;
let dir: string;
let meshPort: number;
t.before(async () => {
  pki = await createPkiFixture({ shards: 2 });
  storage = await startStorage();
  dir = mkdtempSync(join(tmpdir(), 'floor-chain-'));
  const crls = pki.crls().map((c, i) => {
    const f = join(dir, `crl-${i}.pem`);
    writeFileSync(f, c);
    return f;
  });
  [meshPort] = (await reservePorts([{ host: '127.0.0.5' }])) as [number];
  chain = await startFloorChain({ mesh: { host: '127.0.0.5', port: meshPort }, storageUrl: storage.url, a: pki.shards[0]!, b: pki.shards[1]!, rootCert: pki.root.certPath, crls });
});
t.teardown(async () => {
  await chain?.stop();
  await storage?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  await pki?.cleanup();
});

t.test('the two floor proxies carry writes and reads to the storage node', async (t) => {
  const key = '/entities/document.bench.items:2f1c3f0e-7d2b-4c1a-9a8e-5b6d7c8e9f00';
  t.equal((await call(chain.url, 'PUT', key, { blob: '{"a":1}' })).status, 201);
  const got = await call(chain.url, 'GET', key);
  t.equal(got.status, 200);
  t.equal(got.body.blob, '{"a":1}');
});

t.test('the floor mesh side speaks TLS 1.3 + h2 only to clients with a certificate from our root', async (t) => {
  const ok = await probeHandshake('127.0.0.5', meshPort, pki.root.cert, { cert: pki.shards[0]!.chain, key: pki.shards[0]!.key });
  t.same(ok, { protocol: 'TLSv1.3', alpn: 'h2' }, 'our shard certificate: TLS 1.3 with h2');
  t.equal(await probeHandshake('127.0.0.5', meshPort, pki.root.cert), 'refused', 'no client certificate: refused');
});
