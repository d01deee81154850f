// A real mesh for integration tests: a PKI minted at test start, one storage node and one
// sidecar per shard (sidecar N's mesh port on 127.0.0.N), and a topology in which each shard
// owns exactly the token range its certificate allows. Everything runs as child processes.
import { reservePorts } from '../../scripts/ports.js';
import { startEtcd, type EtcdProcess } from '../../scripts/etcd-process.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Topology } from '../../src/topology/topology.js';
import { serializeTopology } from '../../src/topology/document.js';
import { createPkiFixture, type PkiFixture, type ShardMaterial } from './pki-fixture.js';
import { startStorage, type StorageProcess } from './storage-process.js';
import { startListening, type Running } from './child-process.js';

export const SIDECAR_MAIN = fileURLToPath(new URL('../../dist/proxy/main.js', import.meta.url));

export interface SidecarReady {
  event: 'listening';
  shard: string;
  app: string;
  mesh: string;
  admin: string;
}

export interface MeshNode {
  shard: ShardMaterial;
  storage: StorageProcess;
  sidecar: Running<SidecarReady> | undefined;
  configPath: string;
  meshPort: number;
  appUrl: string;
  adminUrl: string;
  auditFile: string;
}

export interface Mesh {
  dir: string;
  pki: PkiFixture;
  nodes: MeshNode[];
  topologyFile: string;
  topology: Topology;
  etcd: EtcdProcess | undefined;
  startSidecar(i: number): Promise<void>;
  stopSidecar(i: number, signal?: NodeJS.Signals): Promise<void>;
  /** Stops etcd for real (SIGTERM), keeping its data. */
  stopEtcd(): Promise<void>;
  /** Starts the same etcd member again: same ports, same data. */
  restartEtcd(): Promise<void>;
  /** Rewrites the CRL files every sidecar reads (after pki.revoke). */
  publishCrls(): void;
  close(): Promise<void>;
}


export interface MeshOptions {
  shards?: number;
  /** Extra sidecar config fields, merged at the top level. */
  sidecarConfig?: Record<string, unknown>;
  /** Topology file polling interval (default 1000 ms); long values leave changes to SIGHUP and 421s. */
  topologyPollMs?: number;
  /** Start a private etcd (mTLS) and have the sidecars register there. */
  withEtcd?: boolean;
  /** With withEtcd: publish the topology (signed by the admin operator) and have sidecars take it from etcd. */
  etcdTopology?: boolean;
}

export async function startMesh(opts: MeshOptions = {}): Promise<Mesh> {
  const n = opts.shards ?? 3;
  const pki = await createPkiFixture({ shards: n });
  const etcdTls = { cert: pki.etcd.chainPath, key: pki.etcd.keyPath, ca: pki.root.certPath };
  const etcdData = opts.withEtcd ? mkdtempSync(join(tmpdir(), 'themis-etcd-')) : undefined;
  const etcd = etcdData ? await startEtcd(etcdTls, { dataDir: etcdData }) : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'themis-mesh-'));
  const crlFiles = ['root', 'cluster', 'operator', 'client'].map((c) => join(dir, `${c}.crl.pem`));
  const publishCrls = () => pki.crls().forEach((crl, i) => writeFileSync(crlFiles[i]!, crl));
  publishCrls();
  // Mesh, app and admin port of every shard, all distinct.
  const ports = await reservePorts(pki.shards.flatMap((s) => [{ host: s.ip }, { host: '127.0.0.1' }, { host: '127.0.0.1' }]));
  const meshPorts = pki.shards.map((_, i) => ports[3 * i]!);
  const topology = new Topology({
    cluster: pki.cluster,
    epoch: 1,
    vnodes: 0,
    shards: Object.fromEntries(pki.shards.map((s, i) => [s.id, { endpoint: `${s.ip}:${meshPorts[i]}`, datacenter: 'dc1' }])),
    ranges: pki.shards.map((s) => ({ start: s.tokenRange.start, end: s.tokenRange.end, owner: s.id, replicas: [] })),
  });
  const topologyFile = join(dir, 'topology.json');
  writeFileSync(topologyFile, serializeTopology(topology));
  if (etcd && opts.etcdTopology) await publishAsAdmin(pki, etcd, topology);
  const nodes: MeshNode[] = [];
  for (const [i, shard] of pki.shards.entries()) {
    const storage = await startStorage();
    const [appPort, adminPort] = [ports[3 * i + 1]!, ports[3 * i + 2]!];
    const configPath = join(dir, `${shard.id}.json`);
    const auditFile = join(dir, `audit-${shard.id}.log`);
    const cfg = {
      shardId: shard.id,
      cluster: pki.cluster,
      app: { host: '127.0.0.1', port: appPort },
      mesh: { host: shard.ip, port: meshPorts[i] },
      admin: { host: '127.0.0.1', port: adminPort },
      audit: { file: auditFile },
      storage: { url: storage.url },
      tls: { cert: shard.chainPath, key: shard.keyPath, ca: pki.root.certPath, crls: crlFiles },
      topology: { file: topologyFile, pollMs: opts.topologyPollMs ?? 1000 },
      timeouts: { connectMs: 2000, requestMs: 5000 },
      backoff: { initialMs: 50, maxMs: 500 },
      ...(etcd ? { etcd: { endpoints: [etcd.endpoint], topology: opts.etcdTopology === true, topologyCache: join(dir, `topology-cache-${shard.id}.json`), crlCache: join(dir, `crl-cache-${shard.id}.json`) } } : {}),
      ...opts.sidecarConfig,
    };
    writeFileSync(configPath, JSON.stringify(cfg, null, 2));
    nodes.push({ shard, storage, sidecar: undefined, configPath, meshPort: meshPorts[i]!, appUrl: `http://127.0.0.1:${appPort}`, adminUrl: `http://127.0.0.1:${adminPort}`, auditFile });
  }
  const mesh: Mesh = {
    dir,
    pki,
    nodes,
    topologyFile,
    topology,
    etcd,
    publishCrls,
    async stopEtcd() {
      await mesh.etcd?.stop();
    },
    async restartEtcd() {
      const old = mesh.etcd!;
      await old.stop();
      mesh.etcd = await startEtcd(etcdTls, { dataDir: old.dataDir, port: old.ports.client, peerPort: old.ports.peer });
    },
    async startSidecar(i) {
      const node = nodes[i]!;
      node.sidecar = await startListening<SidecarReady>(SIDECAR_MAIN, ['--config', node.configPath, '--drain-ms', '2000'], `sidecar ${node.shard.id}`);
    },
    async stopSidecar(i, signal = 'SIGTERM') {
      await nodes[i]!.sidecar?.kill(signal);
      nodes[i]!.sidecar = undefined;
    },
    async close() {
      await Promise.all(nodes.map((nd) => nd.sidecar?.kill('SIGKILL')));
      await Promise.all(nodes.map((nd) => nd.storage.kill('SIGKILL')));
      await mesh.etcd?.stop();
      if (etcdData) rmSync(etcdData, { recursive: true, force: true });
      for (const nd of nodes) rmSync(nd.storage.dataDir, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
      await pki.cleanup();
    },
  };
  try {
    await Promise.all(nodes.map((_, i) => mesh.startSidecar(i)));
  } catch (e) {
    await mesh.close();
    throw e;
  }
  return mesh;
}

/** A uuid whose token falls in `shard`'s certified range (found by trying random ones). */
export { uuidOwnedBy } from './keys.js';

/** Signs `topology` as the fixture's admin operator and publishes it to etcd. */
export async function publishAsAdmin(pki: PkiFixture, etcd: EtcdProcess, topology: Topology, who = pki.operators.admin): Promise<void> {
  const { connectEtcd, etcdKeys } = await import('../../src/control/etcd.js');
  const { publishSignedTopology } = await import('../../src/control/topology-store.js');
  const { signTopology } = await import('../../src/topology/signed.js');
  const { loadPrivateKey } = await import('../../src/pki/keys.js');
  const { parsePem } = await import('../../src/pki/pem.js');
  const key = await loadPrivateKey(who.key, undefined, 'operator key');
  const signed = await signTopology(topology, parsePem(who.chain, 'chain').map((b) => new Uint8Array(b.der)), key.privateKey);
  const client = connectEtcd({ endpoints: [etcd.endpoint], certPem: who.chain, keyPem: who.key, caPem: pki.root.cert });
  try {
    await publishSignedTopology(client, etcdKeys(topology.cluster).topology, signed);
  } finally {
    client.close();
  }
}
