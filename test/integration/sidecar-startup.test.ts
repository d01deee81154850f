import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createPkiFixture, type PkiFixture } from '../support/pki-fixture.js';
import { SIDECAR_MAIN } from '../support/mesh.js';

let pki: PkiFixture;
let dir: string;
t.before(async () => {
  pki = await createPkiFixture({ shards: 2 });
  dir = mkdtempSync(join(tmpdir(), 'themis-sidecar-start-'));
  writeFileSync(join(dir, 'topology.json'), JSON.stringify({ cluster: pki.cluster, epoch: 1, vnodes: 0, shards: { 'shard-001': {} }, ranges: [{ start: '0x0000000000000000', end: '0xffffffffffffffff', owner: 'shard-001', replicas: [] }] }));
  pki.crls().forEach((c, i) => writeFileSync(join(dir, `crl-${i}.pem`), c));
});
t.teardown(async () => {
  rmSync(dir, { recursive: true, force: true });
  await pki?.cleanup();
});

/** `prefix`: a command the sidecar runs under (e.g. unshare with a read-only bind mount). */
const tlsOf = (s: PkiFixture['shards'][number]) => ({ cert: s.chainPath, key: s.keyPath, ca: pki.root.certPath, crls: [0, 1, 2, 3].map((i) => join(dir, `crl-${i}.pem`)) });

function start(patch: Record<string, unknown>, prefix: string[] = []): { status: number | null; stderr: string } {
  const s = pki.shards[0]!;
  const cfg = {
    shardId: 'shard-001',
    cluster: pki.cluster,
    app: { port: 0 },
    mesh: { port: 0 },
    admin: { port: 0 },
    tls: { cert: s.chainPath, key: s.keyPath, ca: pki.root.certPath, crls: [0, 1, 2, 3].map((i) => join(dir, `crl-${i}.pem`)) },
    topology: { file: join(dir, 'topology.json') },
    audit: { file: join(dir, 'audit.log') },
    ...patch,
  };
  const file = join(dir, 'cfg.json');
  writeFileSync(file, JSON.stringify(cfg));
  const argv = [...prefix, process.execPath, SIDECAR_MAIN, '--config', file];
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stderr: r.stderr };
}

t.test('a sidecar refuses to start on a bad config, naming the field, with exit status 78', async (t) => {
  const s = pki.shards[0]!;
  const other = pki.shards[1]!;
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['shard id not in the certificate', { shardId: 'shard-002' }, /shardId: "shard-002" but the certificate in tls.cert is for "shard-001"/],
    ['key of another certificate', { tls: { cert: s.chainPath, key: other.keyPath, ca: pki.root.certPath, crls: [0, 1, 2, 3].map((i) => join(dir, `crl-${i}.pem`)) } }, /tls\.key: .* is not the private key of the certificate/],
    ['leaf without its chain', { tls: { cert: s.certPath, key: s.keyPath, ca: pki.root.certPath, crls: [join(dir, 'crl-0.pem')] } }, /tls\.cert: .* must hold this shard's certificate followed by the cluster CA certificate/],
    ['missing CRL of the cluster CA', { tls: { cert: s.chainPath, key: s.keyPath, ca: pki.root.certPath, crls: [join(dir, 'crl-0.pem')] } }, /tls\.cert.*revocation_unknown/],
    ['unreadable topology', { topology: { file: join(dir, 'nope.json') } }, /topology\.file: cannot read/],
    ['unknown field', { colour: 1 }, /config: colour: unknown setting/],
    ['app port on a public address', { app: { host: '0.0.0.0', port: 0 } }, /app\.host/],
    ['request timeout shorter than the headers timeout', { app: { port: 0, headersTimeoutMs: 5000, requestTimeoutMs: 1000 } }, /app\.requestTimeoutMs: 1000 is shorter than app\.headersTimeoutMs/],
    ['body budget below the largest body', { mesh: { port: 0, maxInflightBodyBytes: 4096 } }, /mesh\.maxInflightBodyBytes: 4096 is less than maxBodyBytes/],
    ['topology file of another cluster', { cluster: 'cluster-prod' }, /topology\.file: .*topology\.json is a topology of cluster "cluster-test", but this sidecar is in cluster "cluster-prod"/],
    ['etcd topology cache where it cannot be written', { etcd: { endpoints: ['https://127.0.0.1:9'], topology: true, topologyCache: join(dir, 'no-such-folder', 'topology.json'), crlCache: join(dir, 'crl-cache.json') } }, /etcd\.topologyCache: cannot write the cache .*no-such-folder.* \(ENOENT\)/],
    ['etcd without a cluster name', { cluster: undefined, etcd: { endpoints: ['https://127.0.0.1:9'], crlCache: join(dir, 'crl-cache.json') } }, /cluster: required with etcd: the cluster whose keys \(\/themis\/\{cluster\}\/\)/],
    ['etcd CRL cache where it cannot be written', { etcd: { endpoints: ['https://127.0.0.1:9'], crlCache: join(dir, 'no-such-folder', 'crl.json') } }, /etcd\.crlCache: cannot write the cache .*no-such-folder.* \(ENOENT\)/],
    ['renewal URL not https', { tls: { ...tlsOf(s), renewal: { url: 'http://127.0.0.1:7443' } } }, /tls\.renewal\.url: "http:\/\/127\.0\.0\.1:7443" must be https:\/\/HOST:PORT of themis-pki serve/],
    ['renewal jitter past the lifetime', { tls: { ...tlsOf(s), renewal: { url: 'https://127.0.0.1:7443', atPercent: 90, jitterPercent: 10 } } }, /tls\.renewal\.jitterPercent: atPercent ± jitterPercent must stay within 5…95 %/],
    ['renewal setting unknown', { tls: { ...tlsOf(s), renewal: { url: 'https://127.0.0.1:7443', every: '12h' } } }, /tls\.renewal\.every: unknown setting/],
    ['web console with the admin port on every address', { admin: { host: '0.0.0.0', port: 0, console: true }, etcd: { endpoints: ['https://127.0.0.1:9'], crlCache: join(dir, 'crl-cache.json') } }, /admin\.console: the console needs the admin port on loopback, and admin\.host is "0\.0\.0\.0"/],
    ['web console without etcd', { admin: { port: 0, console: true } }, /admin\.console: the console shows the cluster as etcd holds it: configure etcd\.endpoints/],
    ['replay state where it cannot be written', { replay: { stateFile: join(dir, 'no-such-folder', 'replay.json') } }, /replay\.stateFile: cannot write next to .*no-such-folder.* \(ENOENT\)/],
  ];
  for (const [name, patch, msg] of cases) {
    const r = start(patch);
    t.equal(r.status, 78, `${name}: exit status`);
    t.match(r.stderr, msg, name);
  }
});

t.test('a sidecar whose own certificate is revoked refuses to start', async (t) => {
  await pki.revoke(pki.shards[0]!.serial);
  pki.crls().forEach((c, i) => writeFileSync(join(dir, `crl-${i}.pem`), c));
  const r = start({});
  t.equal(r.status, 78);
  t.match(r.stderr, /own certificate is not usable: revoked/);
});

t.test('with tls.renewal, a certificate folder the sidecar cannot write stops it at start (exit 78 naming the field)', async (t) => {
  // A read-only bind mount of the shard's folder, in a private mount namespace of the sidecar only.
  const s = pki.shards[1]!;
  const folder = dirname(s.chainPath);
  const ro = ['unshare', '-m', 'sh', '-c', `mount --bind -o ro "${folder}" "${folder}" && exec "$0" "$@"`];
  const topology = join(dir, 'topology-2.json');
  writeFileSync(topology, JSON.stringify({ cluster: pki.cluster, epoch: 1, vnodes: 0, shards: { 'shard-002': {} }, ranges: [{ start: '0x0000000000000000', end: '0xffffffffffffffff', owner: 'shard-002', replicas: [] }] }));
  const cfg = { shardId: 'shard-002', tls: { ...tlsOf(s), renewal: { url: 'https://127.0.0.1:7443' } }, topology: { file: topology }, replay: { stateFile: join(dir, 'replay-2.json') } };
  const r = start(cfg, ro);
  t.equal(r.status, 78, r.stderr.slice(-500));
  t.match(r.stderr, /tls\.key: tls\.renewal replaces .*key\.pem with each renewed certificate, but that folder cannot be written \(EROFS\)/);
});
