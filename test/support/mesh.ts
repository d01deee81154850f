// A real mesh for integration tests, on the local-mesh launcher: the fixture's PKI, N shards each
// owning the range its certificate allows (mesh port on 127.0.0.N), CRLs the tests republish.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import type { EtcdProcess } from '../../scripts/etcd-process.js';
import { connectEtcd } from '../../src/control/etcd.js';
import { startLocalMesh, type SidecarReady, type StorageHandle } from '../../scripts/local-mesh.js';
import { MAIN, type Running } from '../../scripts/processes.js';
import type { Topology } from '../../src/topology/topology.js';
import { createPkiFixture, type PkiFixture, type ShardMaterial } from './pki-fixture.js';

export const SIDECAR_MAIN = MAIN.sidecar;
export type { SidecarReady } from '../../scripts/local-mesh.js';

export interface MeshNode {
  shard: ShardMaterial;
  storage: StorageHandle;
  /** Set by startSidecar, cleared by stopSidecar. */
  readonly sidecar: Running<SidecarReady> | undefined;
  configPath: string;
  meshPort: number;
  appUrl: string;
  adminUrl: string;
  auditFile: string;
}

export interface Mesh {
  dir: string;
  pki: PkiFixture;
  /** The sidecars' tls.ca when MeshOptions.trustFile is set. */
  trustFile: string | undefined;
  /** The CRL files the sidecars read (root, cluster, operator, client): copies publishCrls writes. */
  crlFiles: string[];
  nodes: MeshNode[];
  /** Running and registered, not in the topology (MeshOptions.spares). */
  spares: MeshNode[];
  topologyFile: string;
  topology: Topology;
  readonly etcd: EtcdProcess | undefined;
  /** The sidecars' recent log lines (their last 64 KiB of stderr) that match `re`: to print when a test fails. */
  sidecarLogLines(re: RegExp): string[];
  /** i counts the nodes, then the spares. */
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
  /** etcd least privilege (themis-admin etcd rbac apply) for every shard and both operators. */
  etcdRbac?: boolean;
  /** Replica shards of every range in the topology: the next ones after its owner (default 0). */
  replicas?: number;
  /**
   * Certificates also cover the ranges of the previous N shards (as a replica's do, so that it
   * may take them over or receive them in a move). Default: `replicas` with etcd, else none.
   */
  certifiedReplicas?: number;
  /** Shard pairs started beside the others but not in the topology, certified for every token (for shard add). */
  spares?: number;
  /** The sidecars read tls.ca from a copy of the root (`Mesh.trustFile`) that a test may rewrite (root rotation). */
  trustFile?: boolean;
}

/** The failover tests' mesh: 3 shards, each range on 2 copies, short acknowledgement and lease times. */
export const FAILOVER_MESH: MeshOptions = Object.freeze({
  shards: 3,
  replicas: 2,
  withEtcd: true,
  etcdTopology: true,
  sidecarConfig: { replication: { ackTimeoutMs: 1500, longPollMs: 300, leaseTtlSeconds: 1 } },
});

export async function startMesh(opts: MeshOptions = {}): Promise<Mesh> {
  const widen = opts.certifiedReplicas ?? (opts.withEtcd ? opts.replicas : undefined);
  const pki = await createPkiFixture({ shards: opts.shards ?? 3, ...(widen ? { replicas: widen } : {}), ...(opts.spares ? { spares: opts.spares } : {}) });
  const dir = mkdtempSync(join(tmpdir(), 'themis-mesh-'));
  // The sidecars read copies, so that a revocation reaches them only when a test publishes it.
  const crlFiles = ['root', 'cluster', 'operator', 'client'].map((c) => join(dir, `${c}.crl.pem`));
  const publishCrls = () => pki.crls().forEach((crl, i) => writeFileSync(crlFiles[i]!, crl));
  publishCrls();
  const trustFile = opts.trustFile ? join(dir, 'trust.pem') : undefined;
  if (trustFile) writeFileSync(trustFile, pki.root.cert);
  const cleanup = async () => {
    rmSync(dir, { recursive: true, force: true });
    await pki.cleanup();
  };
  const local = await startLocalMesh({
    dir,
    cluster: pki.cluster,
    pki: pki.dev,
    shards: pki.shards.map((s) => ({ id: s.id, ip: s.ip, tokenRange: s.tokenRange })),
    spares: pki.spares.map((s) => ({ id: s.id, ip: s.ip, tokenRange: s.tokenRange })),
    ranges: 'certified',
    replicas: opts.replicas,
    crls: crlFiles,
    ...(trustFile ? { ca: trustFile } : {}),
    etcd: opts.withEtcd ? { topology: opts.etcdTopology === true, rbac: opts.etcdRbac === true } : undefined,
    topologyPollMs: opts.topologyPollMs ?? 1000,
    sidecarConfig: { timeouts: { connectMs: 2000, requestMs: 5000 }, backoff: { initialMs: 50, maxMs: 500 }, ...opts.sidecarConfig },
    sidecarArgs: ['--drain-ms', '2000'],
    // THEMIS_TEST_LOG_DIR=DIR keeps every process's log there (a test's own folder is removed).
    ...(process.env.THEMIS_TEST_LOG_DIR ? { logDir: process.env.THEMIS_TEST_LOG_DIR } : {}),
  }).catch(async (e: unknown) => {
    await cleanup();
    throw e;
  });
  const meshNode = (n: (typeof local.nodes)[number], shard: ShardMaterial): MeshNode => ({
    shard,
    storage: n.storage,
    get sidecar() {
      return n.sidecar.process;
    },
    configPath: n.sidecar.configFile,
    meshPort: n.sidecar.meshPort,
    appUrl: n.sidecar.appUrl,
    adminUrl: n.sidecar.adminUrl,
    auditFile: n.sidecar.auditFile,
  });
  const nodes = local.nodes.map((n, i) => meshNode(n, pki.shards[i]!));
  const spares = local.spares.map((n, i) => meshNode(n, pki.spares[i]!));
  const all = [...local.nodes, ...local.spares];
  return {
    dir,
    pki,
    trustFile,
    crlFiles,
    nodes,
    spares,
    topologyFile: local.topologyFile,
    topology: local.topology,
    get etcd() {
      return local.etcd;
    },
    publishCrls,
    stopEtcd: () => local.stopEtcd(),
    restartEtcd: () => local.restartEtcd(),
    startSidecar: (i) => all[i]!.sidecar.start(),
    sidecarLogLines: (re) =>
      all.flatMap((n) =>
        n.sidecar
          .stderr()
          .split('\n')
          .filter((l) => re.test(l))
          .map((l) => l.slice(0, 600)),
      ),
    async stopSidecar(i, signal = 'SIGTERM') {
      await all[i]!.sidecar.stop(signal);
    },
    async close() {
      await local.close('SIGKILL');
      await cleanup();
    },
  };
}

/** A uuid whose token falls in `shard`'s certified range (found by trying random ones). */
export { uuidOwnedBy } from './keys.js';

/** Signs `topology` as the fixture's admin operator and publishes it to etcd. */
export async function publishAsAdmin(pki: PkiFixture, etcd: EtcdProcess, topology: Topology, who = pki.operators.admin): Promise<void> {
  const { publishTopology, withEtcd } = await import('../../scripts/mesh-control.js');
  const operator = { chain: who.chain, key: who.key, ca: pki.root.cert };
  await withEtcd(etcd.endpoint, operator, (client) => publishTopology(client, operator, topology, pki.crls()));
}

/** The flags of a themis-admin command signed as the admin operator against this mesh's etcd (the current CRLs written to files). */
export function operatorArgs(mesh: Mesh): string[] {
  const crls = mesh.pki.crls().map((c, i) => {
    const f = join(mesh.dir, `operator-crl-${i}.pem`);
    writeFileSync(f, c);
    return f;
  });
  const admin = mesh.pki.operators.admin;
  return ['--cluster', mesh.pki.cluster, '--etcd', mesh.etcd!.endpoint, '--ca', mesh.pki.root.certPath, '--crls', crls.join(','), '--operator-cert', admin.chainPath, '--operator-key', admin.keyPath];
}

/** An async etcd client as `who` (default the admin operator): tests poll etcd with it, since etcdctl (spawnSync) would block their load loops. */
export function etcdClient(mesh: Mesh, who: { chain: string; key: string } = mesh.pki.operators.admin): Etcd3 {
  return connectEtcd({ endpoints: [mesh.etcd!.endpoint], certPem: who.chain, keyPem: who.key, caPem: mesh.pki.root.cert });
}

/** Log lines of requests that hung: the request watches' and the routers' slow-request lines. */
export const HUNG_REQUEST = /still open after|still running after|slow request/;
