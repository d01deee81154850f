// `npm start`: a local mesh on loopback — a PKI minted under the dev folder, one storage node
// and one sidecar per shard (sidecar N's mesh port on 127.0.0.N+1, as if on its own host), a
// topology from the ring. Prints the app ports and a working curl example; Ctrl-C stops all.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes, randomUUID } from 'node:crypto';
import { HashRing } from '../src/ring/ring.js';
import { topologyFromRing } from '../src/topology/from-ring.js';
import { serializeTopology } from '../src/topology/document.js';
import { mintDevPki, type DevPki } from '../src/pki/dev-pki.js';
import { MAIN, startListening, type Running } from './processes.js';
import { startEtcd, type EtcdProcess } from './etcd-process.js';
import { connectEtcd, etcdKeys } from '../src/control/etcd.js';
import { publishSignedTopology, readSignedTopology } from '../src/control/topology-store.js';
import { signTopology } from '../src/topology/signed.js';
import { parseTopology } from '../src/topology/document.js';
import { loadPrivateKey } from '../src/pki/keys.js';
import { parsePem } from '../src/pki/pem.js';
import { reservePorts } from './ports.js';
import { CrlPublishError, crlValue, publishCrl } from '../src/control/crl-store.js';
import { CA_NAMES } from '../src/pki/ca-store.js';
import { CrlTrust } from '../src/pki/crl-trust.js';
import { systemClock } from '../src/runtime.js';

const USAGE = `usage: npm start -- [--shards 3] [--dir .dev] [--fresh] [--auto-ports]
  --shards N     number of shards (default 3)
  --dir DIR      where PKI, data, configs and logs live (default .dev)
  --fresh        delete DIR first
  --auto-ports   pick free ports instead of 7080+/8765+/9464+ and 7443`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { shards: { type: 'string' }, dir: { type: 'string' }, fresh: { type: 'boolean' }, 'auto-ports': { type: 'boolean' }, help: { type: 'boolean' } },
    strict: true,
  });
  if (values.help) return void console.log(USAGE);
  const n = Number(values.shards ?? 3);
  if (!Number.isInteger(n) || n < 1 || n > 50) throw new Error('--shards must be an integer from 1 to 50');
  const dir = resolve(values.dir ?? '.dev');
  if (values.fresh) rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const cluster = 'cluster-dev';
  const ids = Array.from({ length: n }, (_, i) => `shard-${String(i + 1).padStart(3, '0')}`);
  const ip = (i: number) => `127.0.0.${i + 2}`;

  // PKI: minted once per dev folder; a different shard count needs --fresh.
  const stateFile = join(dir, 'cluster.json');
  let pki: DevPki;
  if (existsSync(stateFile)) {
    const saved = JSON.parse(readFileSync(stateFile, 'utf8')) as { shards: number; pki: DevPki };
    if (saved.shards !== n) throw new Error(`${dir} holds a ${saved.shards}-shard cluster; run with --fresh to make a ${n}-shard one`);
    if (!saved.pki.etcd) throw new Error(`${dir} was made by an older version (no etcd certificate); run with --fresh`);
    pki = saved.pki;
  } else {
    console.log(`minting a development PKI under ${join(dir, 'pki')} …`);
    const passphrase = randomBytes(18).toString('base64url');
    writeFileSync(join(dir, 'pki-passphrase'), passphrase + '\n', { mode: 0o600 });
    pki = await mintDevPki({ dir: join(dir, 'pki'), cluster, shards: ids.map((id, i) => ({ id, ip: ip(i) })), passphrase });
    writeFileSync(stateFile, JSON.stringify({ shards: n, pki }, null, 2));
  }

  const auto = values['auto-ports'] === true;
  const wanted = ids.flatMap((_, i) => [
    { host: '127.0.0.1', port: auto ? 0 : 8765 + i },
    { host: '127.0.0.1', port: auto ? 0 : 7080 + i },
    { host: '127.0.0.1', port: auto ? 0 : 9464 + i },
    { host: ip(i), port: auto ? 0 : 7443 },
  ]);
  const got = await reservePorts(wanted).catch((e: Error) => {
    throw new Error(auto ? e.message : `${e.message} (or run with --auto-ports)`);
  });
  const ports = ids.map((_, i) => ({ storage: got[4 * i]!, app: got[4 * i + 1]!, admin: got[4 * i + 2]!, mesh: got[4 * i + 3]! }));
  let etcdEndpoint = '';
  let topology = topologyFromRing(new HashRing(ids), {
    cluster,
    epoch: 1,
    shards: Object.fromEntries(ids.map((id, i) => [id, { endpoint: `${ip(i)}:${ports[i]!.mesh}`, datacenter: 'dc1' }])),
  });
  const topologyFile = join(dir, 'topology.json');
  writeFileSync(topologyFile, serializeTopology(topology));

  const children: Running<unknown>[] = [];
  let etcdProcess: EtcdProcess | undefined;
  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await Promise.all(children.map((c) => c.kill('SIGTERM')));
    await etcdProcess?.stop(); // last: the sidecars give their leases back first
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));
  // `npm start` stopped with SIGTERM (systemd, timeout, a CI runner) does not pass the signal
  // on to us: npm exits and we are re-parented. Without this the whole mesh kept running.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) void stopAll(0);
  }, 500).unref();
  const watch = (r: Running<unknown>, name: string, log: string) => {
    children.push(r);
    void r.exited.then((e) => {
      if (stopping) return;
      console.error(`${name} exited (${e.code ?? e.signal}); see ${log}. Stopping the cluster.`);
      void stopAll(1);
    });
  };

  try {
    // The control plane: a private etcd over mTLS; the topology is published there, signed by
    // the admin operator, one epoch above whatever an earlier run left.
    const etcd = await startEtcd({ cert: pki.etcd.chainPath, key: pki.etcd.keyPath, ca: pki.rootCert }, { dataDir: join(dir, 'etcd') });
    etcdProcess = etcd;
    const admin = pki.operators.admin;
    const adminKey = await loadPrivateKey(readFileSync(admin.keyPath, 'utf8'), undefined, admin.keyPath);
    const client = connectEtcd({ endpoints: [etcd.endpoint], certPem: readFileSync(admin.chainPath, 'utf8'), keyPem: readFileSync(admin.keyPath, 'utf8'), caPem: readFileSync(pki.rootCert, 'utf8') });
    try {
      const previous = await readSignedTopology(client, etcdKeys(cluster).topology);
      let epoch = 1;
      try {
        epoch = previous?.signed ? parseTopology(previous.signed.document).epoch + 1 : 1;
      } catch {
        epoch = 1;
      }
      const chain = parsePem(readFileSync(admin.chainPath, 'utf8'), admin.chainPath).map((b) => new Uint8Array(b.der));
      await publishSignedTopology(client, etcdKeys(cluster).topology, await signTopology(topology.withEpoch(epoch), chain, adminKey.privateKey));
      topology = topology.withEpoch(epoch);
      writeFileSync(topologyFile, serializeTopology(topology));
      // Every CA's CRL goes to etcd too, as an operator would publish it (themis-admin crl
      // publish); one already there from an earlier run is left alone.
      const trust = new CrlTrust(readFileSync(pki.rootCert, 'utf8'), systemClock);
      const file = (ca: string, name: string) => readFileSync(join(pki.layout.dir, ca, name), 'utf8');
      for (const ca of CA_NAMES) {
        await publishCrl(client, cluster, ca, crlValue(ca, file(ca, 'crl.pem'), file(ca, 'cert.pem')), trust, new Date()).catch((e: Error) => {
          if (!(e instanceof CrlPublishError && /not_newer/.test(e.message))) throw e;
        });
      }
    } finally {
      client.close();
    }
    etcdEndpoint = etcd.endpoint;
    for (const [i, id] of ids.entries()) {
      const p = ports[i]!;
      const log = join(dir, 'logs', `storage-${id}.log`);
      const storage = await startListening(MAIN.storage, ['--data-dir', join(dir, 'data', id), '--port', String(p.storage)], `storage node of ${id}`, { logFile: log });
      watch(storage, `storage node of ${id}`, log);
      const cfgFile = join(dir, `sidecar-${id}.json`);
      writeFileSync(
        cfgFile,
        JSON.stringify(
          {
            shardId: id,
            cluster,
            app: { host: '127.0.0.1', port: p.app },
            mesh: { host: ip(i), port: p.mesh },
            admin: { host: '127.0.0.1', port: p.admin },
            audit: { file: join(dir, 'logs', `audit-${id}.log`) },
            storage: { url: `http://127.0.0.1:${p.storage}` },
            tls: { cert: pki.shards[id]!.chainPath, key: pki.shards[id]!.keyPath, ca: pki.rootCert, crls: pki.crls },
            topology: { file: topologyFile },
            etcd: { endpoints: [etcdEndpoint], topology: true, topologyCache: join(dir, `topology-cache-${id}.json`), crlCache: join(dir, `crl-cache-${id}.json`) },
          },
          null,
          2,
        ),
      );
      const slog = join(dir, 'logs', `sidecar-${id}.log`);
      const sidecar = await startListening(MAIN.sidecar, ['--config', cfgFile], `sidecar ${id}`, { logFile: slog });
      watch(sidecar, `sidecar ${id}`, slog);
    }
  } catch (e) {
    console.error((e as Error).message);
    await stopAll(1);
    return;
  }

  const uuid = randomUUID();
  const app = (i: number) => `http://127.0.0.1:${ports[i]!.app}`;
  console.log(`\nthemis-mesh dev cluster "${cluster}": ${n} shards, signed topology epoch ${topology.epoch} (${topology.ranges.length} ranges) in etcd at ${etcdEndpoint}, files in ${dir}\n`);
  console.log('shard       app port (apps)        mesh port (mTLS)        admin (metrics)');
  ids.forEach((id, i) => console.log(`${id}   ${app(i).padEnd(22)} ${`${ip(i)}:${ports[i]!.mesh}`.padEnd(23)} http://127.0.0.1:${ports[i]!.admin}/metrics`));
  console.log(`\nTry it — write through one sidecar, read through another:
  curl -X PUT ${app(0)}/entities/urn:themis:document:shop:orders:${uuid} -d '{"blob":"{\\"total\\":42}"}'
  curl -i ${app(n - 1)}/entities/document.shop.orders:${uuid}
A client certificate on the mesh port:
  curl --http2 --cert ${pki.client.chainPath} --key ${pki.client.keyPath} --cacert ${pki.rootCert} https://${ip(0)}:${ports[0]!.mesh}/entities/document.shop.orders:${uuid}
The control plane — registered shards and the CRLs in etcd:
  node dist/src/cli/themis-admin.js crl show --root ${pki.rootCert} --etcd ${etcdEndpoint} --cert ${pki.operators.readonly.chainPath} --key ${pki.operators.readonly.keyPath} --cluster ${cluster}
Logs and audit trails: ${join(dir, 'logs')}.  Ctrl-C stops everything.`);
  console.log(JSON.stringify({ event: 'ready', apps: ids.map((_, i) => app(i)), dir }));
}

main().catch((e: unknown) => {
  console.error(`npm start: ${(e as Error).message}`);
  process.exit(1);
});
