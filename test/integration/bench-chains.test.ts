// The chains `npm run bench -- mesh --compare haproxy,floor` measures ours against: two
// HAProxy sidecars and two minimal Node proxies. Each must really carry traffic over mutually
// authenticated TLS 1.3 with our certificates, or the comparison measures something easier.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHaproxyChain } from '../../scripts/bench-haproxy.js';
import { startFloorChain } from '../../scripts/bench-floor.js';
import { reservePorts } from '../../scripts/ports.js';
import { probeHandshake } from '../support/tls-probe.js';
import { createPkiFixture, type PkiFixture } from '../support/pki-fixture.js';
import { call, startStorage, type StorageProcess } from '../support/storage-process.js';

interface Chain {
  name: string;
  url: string;
  mesh: { host: string; port: number };
  stop(): Promise<void>;
}

let pki: PkiFixture;
let storage: StorageProcess;
let dir: string;
const chains: Chain[] = [];
t.before(async () => {
  pki = await createPkiFixture({ shards: 2 });
  storage = await startStorage();
  dir = mkdtempSync(join(tmpdir(), 'bench-chains-'));
  const crls = pki.crls().map((c, i) => {
    const f = join(dir, `crl-${i}.pem`);
    writeFileSync(f, c);
    return f;
  });
  const [appPort, haproxyMesh, floorMesh] = (await reservePorts([{ host: '127.0.0.1' }, { host: '127.0.0.4' }, { host: '127.0.0.5' }])) as [number, number, number];
  const u = new URL(storage.url);
  const tls = { a: pki.shards[0]!, b: pki.shards[1]!, rootCert: pki.root.certPath, crls };
  const haproxy = { host: '127.0.0.4', port: haproxyMesh };
  const h = await startHaproxyChain({ ...tls, dir, appPort, mesh: haproxy, storage: { host: u.hostname, port: Number(u.port) } });
  chains.push({ name: 'HAProxy', url: h.url, mesh: haproxy, stop: h.stop });
  const floor = { host: '127.0.0.5', port: floorMesh };
  const f = await startFloorChain({ ...tls, mesh: floor, storageUrl: storage.url });
  chains.push({ name: 'Node floor', url: f.url, mesh: floor, stop: f.stop });
});
t.teardown(async () => {
  await Promise.all(chains.map((c) => c.stop()));
  await storage?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  await pki?.cleanup();
});

t.test('each chain carries writes and reads to the storage node', async (t) => {
  for (const [i, c] of chains.entries()) {
    const key = `/entities/document.bench.items:2f1c3f0e-7d2b-4c1a-9a8e-5b6d7c8e9f0${i}`;
    t.equal((await call(c.url, 'PUT', key, { blob: `{"a":${i}}` })).status, 201, `${c.name}: PUT`);
    const got = await call(c.url, 'GET', key);
    t.equal(got.status, 200, `${c.name}: GET`);
    t.equal(got.body.blob, `{"a":${i}}`, `${c.name}: the value written`);
  }
});

t.test('each mesh side speaks TLS 1.3 + h2 only to clients with a certificate from our root', async (t) => {
  for (const c of chains) {
    const ok = await probeHandshake(c.mesh.host, c.mesh.port, pki.root.cert, { cert: pki.shards[0]!.chain, key: pki.shards[0]!.key });
    t.same(ok, { protocol: 'TLSv1.3', alpn: 'h2' }, `${c.name}: our shard certificate gets TLS 1.3 with h2`);
    t.equal(await probeHandshake(c.mesh.host, c.mesh.port, pki.root.cert), 'refused', `${c.name}: no client certificate is refused`);
  }
});
