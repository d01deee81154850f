// The one local-mesh launcher (dev cluster, benchmarks, integration tests): a dev PKI, a storage
// node and a sidecar per shard on loopback, optionally etcd; writes every sidecar config.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serializeTopology } from '../src/topology/document.js';
import type { Topology } from '../src/topology/topology.js';
import { devShards, mintDevPki, replicatedSpan, splitTokenRange, type DevPki, type DevShard } from '../src/pki/dev-pki.js';
import { PkiLayout } from '../src/pki/ca-store.js';
import { startEtcd, type EtcdProcess } from './etcd-process.js';
import { MAIN, SIDECAR_NODE_FLAGS, startListening } from './processes.js';
import { reservePorts, type PortRequest } from './ports.js';
import { meshTopology, type RangeLayout } from './mesh-topology.js';
import { SidecarHandle, StorageHandle, type SidecarReady } from './mesh-nodes.js';

export { SidecarHandle, StorageHandle, type SidecarReady } from './mesh-nodes.js';
export type { RangeLayout } from './mesh-topology.js';

export interface MeshShard extends DevShard {
  /** A storage node already running there, used instead of one the mesh starts. */
  storageUrl?: string;
}

export interface NodePorts {
  storage: number;
  app: number;
  admin: number;
  /** On the shard's own address. */
  mesh: number;
}

export interface LocalMeshOptions {
  /** Configs, data, logs, topology (and a minted PKI) go here; default a temporary folder close() removes. */
  dir?: string;
  /** Default cluster-dev. */
  cluster?: string;
  /** A count (shard-001 … with mesh ports on 127.0.0.2, .3, …) or the shards; default 3. */
  shards?: number | MeshShard[];
  /**
   * Shards started beside the others but not in the topology (sidecar registered, storage node
   * empty), for `themis-admin shard add`; their certificates are in `pki`. Default none.
   */
  spares?: MeshShard[];
  /** A PKI that covers the shards; default one minted under DIR/pki. */
  pki?: DevPki;
  /** Of a minted PKI's CA keys (default a fixed development one), and their PBKDF2 rounds. */
  passphrase?: string;
  kdfIterations?: number;
  /** Default 'certified' (shards without a certified range get 1/n each). */
  ranges?: RangeLayout;
  /** Replica shards per range (the topology's `replicas`); default 0. */
  replicas?: number;
  /** A private etcd (mTLS), sidecars registered there; `topology`: published signed by the admin
   * operator (one epoch above what the data dir holds) and taken from there — or, with
   * `keepTopology`, the one an earlier run left is kept when it names only these shards and spares
   * (what shard add/remove and rebalancing made of it survives a restart); `crls`: every CA's CRL published;
   * `rbac`: least privilege (themis-admin etcd rbac apply) for every shard and both operators. */
  etcd?: { topology?: boolean; crls?: boolean; dataDir?: string; keepTopology?: boolean; rbac?: boolean };
  /** Fixed ports of shard i; the rest are picked free. */
  ports?: (i: number) => Partial<NodePorts>;
  /** CRL files the sidecars read; default the PKI's own. */
  crls?: string[];
  /** The trust bundle the sidecars read (tls.ca); default the PKI's root certificate. */
  ca?: string;
  topologyPollMs?: number;
  /** Merged into every sidecar config at the top level. */
  sidecarConfig?: Record<string, unknown>;
  sidecarArgs?: string[];
  /** Another build's dist/proxy/main.js (e.g. a baseline to compare against). */
  sidecarMain?: string;
  /** Extra node flags of every sidecar (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** THEMIS_LOG_LEVEL of every process. */
  logLevel?: string;
  /** Append each process's stderr to DIR/storage-ID.log and sidecar-ID.log; audit logs go here too. */
  logDir?: string;
}

export interface LocalNode {
  id: string;
  ip: string;
  storage: StorageHandle;
  sidecar: SidecarHandle;
}

export interface LocalMesh {
  readonly dir: string;
  readonly cluster: string;
  readonly pki: DevPki;
  readonly nodes: readonly LocalNode[];
  /** Started, registered, not in the topology. */
  readonly spares: readonly LocalNode[];
  /** As published (its epoch may be above 1 when etcd held an older one). */
  readonly topology: Topology;
  readonly topologyFile: string;
  readonly etcd: EtcdProcess | undefined;
  /** etcd (and what is published there), then every storage node, then every sidecar. */
  start(): Promise<void>;
  stopEtcd(): Promise<void>;
  /** The same etcd member again: same ports, same data. */
  restartEtcd(): Promise<void>;
  /** Sidecars, then storage nodes (with `signal`), then etcd; removes the folder if it made it. */
  close(signal?: NodeJS.Signals): Promise<void>;
}

/** Everything but processes: PKI, ports, topology file, sidecar configs. */
export async function prepareLocalMesh(o: LocalMeshOptions = {}): Promise<LocalMesh> {
  if (o.dir !== undefined) return prepare(o, o.dir, false);
  const dir = mkdtempSync(join(tmpdir(), 'themis-mesh-'));
  return prepare(o, dir, true).catch((e: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  });
}

/** Polls a sidecar's /readyz until it answers 200; rejects with its last answer after `ms`. */
async function untilReady(adminUrl: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  let last = '';
  while (Date.now() < end) {
    try {
      const r = await fetch(`${adminUrl}/readyz`);
      last = await r.text();
      if (r.status === 200) return;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${adminUrl}/readyz did not answer 200 within ${ms / 1000} s: ${last}`);
}

/** Resolves when all have settled; rejects with the first failure (nothing is left starting). */
async function settled(ps: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(ps)).find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}

async function prepare(o: LocalMeshOptions, dir: string, ownDir: boolean): Promise<LocalMesh> {
  const cluster = o.cluster ?? 'cluster-dev';
  const ranges = o.ranges ?? 'certified';
  const given = typeof o.shards === 'object' ? o.shards : devShards(o.shards ?? 3, { firstIp: 2, split: false });
  const split = splitTokenRange(given.length);
  const members: MeshShard[] = given.map((s, i) => ({ ...s, tokenRange: s.tokenRange ?? (ranges === 'certified' ? split[i] : undefined) }));
  const shards: MeshShard[] = [...members, ...(o.spares ?? [])];
  const logDir = o.logDir ?? dir;
  mkdirSync(logDir, { recursive: true });
  // With replicas, a shard's certificate also covers the ranges it replicates (the shards before
  // it, in the certified layout), so that it may take them over in a failover; a span that would
  // wrap past the top of the token space covers all of it.
  const replicas = o.replicas ?? 0;
  const certShards = ranges === 'certified' && replicas > 0 ? shards.map((s, i) => (i >= given.length || given[i]!.tokenRange ? s : { ...s, tokenRange: replicatedSpan(split, i, replicas) })) : shards;
  const pki = o.pki ?? (await mintDevPki({ dir: join(dir, 'pki'), cluster, shards: certShards, passphrase: o.passphrase ?? 'dev-mesh-passphrase', kdfIterations: o.kdfIterations }));

  const fixed = shards.map((_, i) => o.ports?.(i) ?? {});
  const want: PortRequest[] = shards.flatMap((s, i) => [
    { host: s.ip, port: fixed[i]!.mesh },
    { host: '127.0.0.1', port: fixed[i]!.app },
    { host: '127.0.0.1', port: fixed[i]!.admin },
    ...(s.storageUrl ? [] : [{ host: '127.0.0.1', port: fixed[i]!.storage }]),
  ]);
  if (o.etcd) want.push({ host: '127.0.0.1' }, { host: '127.0.0.1' });
  const got = await reservePorts(want);
  const take = () => got.shift()!;
  const ports = shards.map((s) => ({ mesh: take(), app: take(), admin: take(), storage: s.storageUrl ? 0 : take() }));
  const etcdPorts = o.etcd ? { port: take(), peerPort: take() } : undefined;
  const etcdEndpoint = `https://127.0.0.1:${etcdPorts?.port}`;

  const endpointOf = (id: string) => {
    const i = shards.findIndex((s) => s.id === id);
    return `${shards[i]!.ip}:${ports[i]!.mesh}`;
  };
  let topology = meshTopology({ cluster, shards: members.map((s, i) => ({ ...s, endpoint: `${s.ip}:${ports[i]!.mesh}` })), ranges, replicas: o.replicas ?? 0 });
  const topologyFile = join(dir, 'topology.json');
  writeFileSync(topologyFile, serializeTopology(topology));

  const env = o.logLevel ? { THEMIS_LOG_LEVEL: o.logLevel } : undefined;
  const logFile = (name: string) => (o.logDir ? join(o.logDir, `${name}.log`) : undefined);
  const all: LocalNode[] = shards.map((s, i) => {
    const p = ports[i]!;
    const dataDir = join(dir, 'data', s.id);
    const storageName = `storage node of ${s.id}`;
    const storageUrl = s.storageUrl ?? `http://127.0.0.1:${p.storage}`;
    const launchStorage = () => startListening<{ port: number }>(MAIN.storage, ['--data-dir', dataDir, '--port', String(p.storage)], storageName, { env, logFile: logFile(`storage-${s.id}`) });
    const storage = new StorageHandle(storageName, s.storageUrl ? undefined : launchStorage, storageUrl, s.storageUrl ? undefined : dataDir);
    const leaf = pki.shards[s.id];
    if (!leaf) throw new Error(`the PKI has no certificate for ${s.id}`);
    const configFile = join(dir, `sidecar-${s.id}.json`);
    const auditFile = join(logDir, `audit-${s.id}.log`);
    // The one place a sidecar config is written. A listener's settings in sidecarConfig (its
    // limits) and tls settings (renewal) are merged into their section; the launcher keeps the
    // addresses and the certificate paths.
    const { app: appExtra, mesh: meshExtra, admin: adminExtra, tls: tlsExtra, ...extra } = (o.sidecarConfig ?? {}) as Record<string, object | undefined>;
    const config = {
      shardId: s.id,
      cluster,
      app: { ...appExtra, host: '127.0.0.1', port: p.app },
      mesh: { ...meshExtra, host: s.ip, port: p.mesh },
      admin: { ...adminExtra, host: '127.0.0.1', port: p.admin },
      audit: { file: auditFile },
      storage: { url: storageUrl },
      tls: { ...tlsExtra, cert: leaf.chainPath, key: leaf.keyPath, ca: o.ca ?? pki.rootCert, crls: o.crls ?? pki.crls },
      topology: { file: topologyFile, ...(o.topologyPollMs === undefined ? {} : { pollMs: o.topologyPollMs }) },
      ...(o.etcd
        ? { etcd: { endpoints: [etcdEndpoint], topology: o.etcd.topology === true, topologyCache: join(dir, `topology-cache-${s.id}.json`), crlCache: join(dir, `crl-cache-${s.id}.json`) } }
        : {}),
      ...extra,
    };
    writeFileSync(configFile, JSON.stringify(config, null, 2));
    const launchSidecar = () =>
      startListening<SidecarReady>(o.sidecarMain ?? MAIN.sidecar, ['--config', configFile, ...(o.sidecarArgs ?? [])], `sidecar ${s.id}`, {
        env,
        logFile: logFile(`sidecar-${s.id}`),
        nodeArgs: [...SIDECAR_NODE_FLAGS, ...(o.nodeArgs ?? [])],
        // With workers a sidecar is several processes, each loading every module before it
        // listens: on a busy 2-core machine (two test files at once) that took over 20 s.
        ...(((config as { workers?: unknown }).workers ?? 1) !== 1 ? { timeoutMs: 90_000 } : {}),
      });
    const sidecar = new SidecarHandle(`sidecar ${s.id}`, launchSidecar, configFile, auditFile, `${s.ip}:${p.mesh}`, p.mesh, `http://127.0.0.1:${p.app}`, `http://127.0.0.1:${p.admin}`);
    return { id: s.id, ip: s.ip, storage, sidecar };
  });
  const nodes = all.slice(0, members.length);
  const spares = all.slice(members.length);

  // With RBAC, etcd also refuses revoked certificates itself (--client-crl-file, kept from the CRLs in etcd).
  const etcdCrlFile = o.etcd?.rbac ? join(dir, 'etcd-revoked.crl') : undefined;
  // With RBAC, etcd trusts only the CAs whose certificates are etcd users (cluster and operator):
  // a client CA's certificate cannot connect at all, whatever common name it carries.
  const etcdClientCas = o.etcd?.rbac ? join(dir, 'etcd-client-cas.pem') : undefined;
  if (etcdClientCas) writeFileSync(etcdClientCas, ['cluster', 'operator'].map((ca) => readFileSync(new PkiLayout(pki.layout.dir).caCert(ca as 'cluster'), 'utf8').trimEnd() + '\n').join(''));
  const etcdTls = { cert: pki.etcd.chainPath, key: pki.etcd.keyPath, ca: etcdClientCas ?? pki.rootCert, ...(etcdCrlFile ? { crlFile: etcdCrlFile } : {}) };
  let stopCrlFollower: (() => void) | undefined;
  const etcdData = o.etcd?.dataDir ?? join(dir, 'etcd');
  const mesh = {
    dir,
    cluster,
    pki,
    nodes,
    spares,
    topology,
    topologyFile,
    etcd: undefined as EtcdProcess | undefined,
    async start() {
      if (o.etcd && etcdPorts) {
        if (etcdCrlFile && !existsSync(etcdCrlFile)) await (await import('../src/control/etcd-crl-file.js')).writeEtcdCrlFile(etcdCrlFile, [], new Date());
        mesh.etcd = await startEtcd(etcdTls, { dataDir: etcdData, ...etcdPorts });
        if (o.etcd.topology || o.etcd.crls || o.etcd.rbac) {
          const ctl = await import('./mesh-control.js');
          const admin = ctl.operatorFromFiles(pki.operators.admin, pki.rootCert);
          await ctl.withEtcd(mesh.etcd.endpoint, admin, async (etcd) => {
            if (o.etcd?.topology) {
              let kept = o.etcd.keepTopology ? await ctl.earlierTopology(etcd, cluster, shards.map((s) => s.id), replicas) : undefined;
              // Kept with this run's endpoints (other ports: republished one epoch up).
              const endpoints = Object.fromEntries(Object.keys(kept?.shards ?? {}).map((id) => [id, { ...kept!.shards[id], endpoint: endpointOf(id) }]));
              const moved = kept && Object.keys(endpoints).some((id) => kept!.shards[id]!.endpoint !== endpoints[id]!.endpoint);
              if (kept && moved) kept = kept.withEpoch(kept.epoch + 1, endpoints);
              topology = kept ?? topology.withEpoch(await ctl.nextEpoch(etcd, cluster, topology.epoch));
              mesh.topology = topology;
              if (!kept || moved) await ctl.publishTopology(etcd, admin, topology, ctl.pkiCrls(pki.layout.dir));
              writeFileSync(topologyFile, serializeTopology(topology));
            }
            if (o.etcd?.crls) await ctl.publishCaCrls(etcd, cluster, pki.layout.dir, admin.ca);
            if (o.etcd?.rbac) {
              const chains = [...Object.values(pki.shards), pki.operators.admin, pki.operators.readonly].map((l) => l.chainPath);
              await ctl.applyDevRbac(etcd, cluster, admin.ca, ctl.pkiCrls(pki.layout.dir), chains);
            }
          });
          if (etcdCrlFile) stopCrlFollower = ctl.followEtcdCrls(mesh.etcd.endpoint, admin, cluster, etcdCrlFile);
        }
      }
      await settled(all.filter((n) => !n.storage.external).map((n) => n.storage.start()));
      await settled(all.map((n) => n.sidecar.start()));
      // Replicated: ready once every replica holds its first copy (until then writes to its
      // primaries' ranges cannot be acknowledged).
      if (replicas > 0) await settled(nodes.map((n) => untilReady(n.sidecar.adminUrl, 30_000)));
    },
    async stopEtcd() {
      await mesh.etcd?.stop();
    },
    async restartEtcd() {
      const old = mesh.etcd!;
      await old.stop();
      mesh.etcd = await startEtcd(etcdTls, { dataDir: old.dataDir, port: old.ports.client, peerPort: old.ports.peer });
    },
    async close(signal: NodeJS.Signals = 'SIGTERM') {
      stopCrlFollower?.();
      await Promise.all(all.map((n) => n.sidecar.stop(signal)));
      await Promise.all(all.map((n) => n.storage.stop(signal)));
      await mesh.etcd?.stop();
      if (ownDir) rmSync(dir, { recursive: true, force: true });
    },
  };
  return mesh;
}

/** prepareLocalMesh, then start(); whatever started is stopped again when a part fails. */
export async function startLocalMesh(o: LocalMeshOptions = {}): Promise<LocalMesh> {
  const mesh = await prepareLocalMesh(o);
  try {
    await mesh.start();
  } catch (e) {
    await mesh.close('SIGKILL');
    throw e;
  }
  return mesh;
}
