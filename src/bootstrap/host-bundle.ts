// One host's bundle, as `themis-admin cluster init` and `host add` write it: a folder that mirrors
// the host's file system (etc/themis/…, etc/systemd/system/…, var/lib/themis/…), to copy with
// tar. The units come from deploy/systemd/ with this host's paths and addresses filled in, so the
// shipped units stay the one source. Keys are 0600; nothing here is printed.
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The cluster as `cluster init` recorded it (cluster.json in the output folder). */
export interface ClusterManifest {
  version: 1;
  cluster: string;
  /**
   * Where the host's files go: "/" on real hosts; another folder to stage or test, where
   * {shard} stands for the host's shard id (several loopback "hosts" on one machine).
   */
  installRoot: string;
  /** Shard id → host address (its mesh port listens there). */
  hosts: Record<string, { ip: string; datacenter: string }>;
  /** etcd member name → host address. */
  etcd: Record<string, string>;
  ports: { mesh: number; app: number; admin: number; storage: number; etcdClient: number; etcdPeer: number };
}

export const DEFAULT_PORTS: ClusterManifest['ports'] = { mesh: 7443, app: 7080, admin: 9464, storage: 8765, etcdClient: 2379, etcdPeer: 2380 };

export const CRL_NAMES = ['root', 'cluster', 'operator', 'client'] as const;

/** deploy/ of this package (dist/src/bootstrap → ../../../deploy). */
export const DEPLOY_DIR = fileURLToPath(new URL('../../../deploy/', import.meta.url));

export function etcdEndpoints(m: ClusterManifest): string[] {
  return Object.values(m.etcd).map((ip) => `https://${ip}:${m.ports.etcdClient}`);
}

/** The install root of one host. */
export function installRootOf(m: ClusterManifest, shardId: string): string {
  return m.installRoot.replaceAll('{shard}', shardId);
}

/** A host's own absolute paths (under its install root). */
export function hostPaths(m: ClusterManifest, shardId: string) {
  const r = (p: string) => join(installRootOf(m, shardId), p);
  return {
    etc: r('/etc/themis'),
    state: r('/var/lib/themis'),
    logs: r('/var/log/themis'),
    units: r('/etc/systemd/system'),
  };
}

/** What goes into one host's bundle: its PEM files, read from the PKI folder. */
export interface HostMaterial {
  shardId: string;
  rootPem: string;
  crls: Record<(typeof CRL_NAMES)[number], string>;
  shard: { chainPath: string; keyPath: string };
  /** When the host runs an etcd member: its name, certificate, and the reader the CRL follower uses. */
  etcd?: { name: string; chainPath: string; keyPath: string; clientCas: string; reader: { chainPath: string; keyPath: string } };
}

/**
 * Writes bundleDir/ as the host's file system under the install root: configs, certificates,
 * keys (0600), CRLs, the systemd units, and the state folders the services expect.
 */
export function writeHostBundle(bundleDir: string, m: ClusterManifest, h: HostMaterial): string[] {
  const host = m.hosts[h.shardId]!;
  const p = hostPaths(m, h.shardId);
  const root = installRootOf(m, h.shardId);
  // Inside the bundle: the host path without the install root, under bundleDir.
  const at = (abs: string) => join(bundleDir, abs.slice(root === '/' ? 0 : root.length));
  const written: string[] = [];
  // The bundle's own folder is tar's "./": 0755, as the host's / is.
  mkdirSync(bundleDir, { recursive: true });
  chmodSync(bundleDir, 0o755);
  // Every folder above a file or state folder 0755 whatever the operator's umask: tar, unpacking
  // the bundle over /, must never narrow /etc or /var on the host, nor hide /etc/themis from etcd.
  const parents = (f: string) => {
    mkdirSync(dirname(f), { recursive: true, mode: 0o755 });
    for (let d = dirname(f); d.length > bundleDir.length; d = dirname(d)) chmodSync(d, 0o755);
  };
  const put = (abs: string, text: string, mode = 0o644) => {
    const f = at(abs);
    parents(f);
    writeFileSync(f, text, { mode });
    chmodSync(f, mode);
    written.push(abs);
  };
  const copy = (abs: string, from: string, mode: number) => put(abs, readFileSync(from, 'utf8'), mode);
  // A state or log folder with its own mode.
  const folder = (abs: string, mode: number) => {
    const f = at(abs);
    parents(f);
    mkdirSync(f, { recursive: true, mode });
    chmodSync(f, mode);
  };
  // Loopback "hosts" (127.x) each listen on their own address, so several fit on one machine.
  const local = host.ip.startsWith('127.') ? host.ip : '127.0.0.1';
  const crlFiles = CRL_NAMES.map((c) => `pki/crl/${c}.crl.pem`);

  put(join(p.etc, 'pki/root.pem'), h.rootPem);
  for (const c of CRL_NAMES) put(join(p.etc, `pki/crl/${c}.crl.pem`), h.crls[c]);
  copy(join(p.etc, 'pki/shard/chain.pem'), h.shard.chainPath, 0o644);
  copy(join(p.etc, 'pki/shard/key.pem'), h.shard.keyPath, 0o600);
  put(join(p.etc, 'storage.json'), JSON.stringify({ host: local, port: m.ports.storage, dataDir: join(p.state, 'storage'), maxBlobBytes: 16 * 1024 * 1024 }, null, 2) + '\n');
  const sidecar = {
    shardId: h.shardId,
    cluster: m.cluster,
    app: { host: local, port: m.ports.app },
    mesh: { host: host.ip, port: m.ports.mesh },
    admin: { host: local, port: m.ports.admin },
    storage: { url: `http://${local}:${m.ports.storage}` },
    audit: { file: join(p.logs, `audit-${h.shardId}.log`) },
    tls: { cert: 'pki/shard/chain.pem', key: 'pki/shard/key.pem', ca: 'pki/root.pem', crls: crlFiles },
    replay: { stateFile: join(p.state, 'sidecar/replay.json') },
    replication: { stateDir: join(p.state, 'sidecar/replication') },
    etcd: {
      endpoints: etcdEndpoints(m),
      topology: true,
      topologyCache: join(p.state, 'sidecar/topology-cache.json'),
      crlCache: join(p.state, 'sidecar/crl-cache.json'),
    },
  };
  put(join(p.etc, 'sidecar.json'), JSON.stringify(sidecar, null, 2) + '\n');
  for (const dir of ['sidecar', 'storage']) folder(join(p.state, dir), 0o700);
  folder(p.logs, 0o750);

  const unit = (name: string, fill: (text: string) => string) => put(join(p.units, name), fill(readFileSync(join(DEPLOY_DIR, 'systemd', name), 'utf8')));
  const paths = (t: string) => t.replaceAll('/etc/themis', p.etc).replaceAll('/var/lib/themis', p.state).replaceAll('/var/log/themis', p.logs);
  unit('themis-storage.service', paths);
  unit('themis-sidecar.service', paths);

  if (h.etcd) {
    const e = h.etcd;
    const dir = join(p.etc, 'etcd');
    copy(join(dir, 'pki/chain.pem'), e.chainPath, 0o644);
    copy(join(dir, 'pki/key.pem'), e.keyPath, 0o600);
    put(join(dir, 'pki/client-cas.pem'), e.clientCas);
    copy(join(p.etc, 'pki/etcd-crl/chain.pem'), e.reader.chainPath, 0o644);
    copy(join(p.etc, 'pki/etcd-crl/key.pem'), e.reader.keyPath, 0o600);
    put(join(dir, 'etcd.env'), etcdEnv(m, e.name, dir, p.state));
    folder(join(p.state, 'etcd'), 0o700);
    folder(join(p.state, 'etcd-crl'), 0o755);
    unit('themis-etcd.service', paths);
    const endpoint = `https://${host.ip}:${m.ports.etcdClient}`;
    unit('themis-etcd-crl.service', (t) => paths(t).replaceAll('cluster-prod', m.cluster).replaceAll('https://10.0.0.21:2379', endpoint));
  }
  return written;
}

/** The etcd member's environment (etcd reads ETCD_* variables; themis-etcd.service loads the file). */
function etcdEnv(m: ClusterManifest, name: string, dir: string, state: string): string {
  const ip = m.etcd[name]!;
  const initial = Object.entries(m.etcd).map(([n, a]) => `${n}=https://${a}:${m.ports.etcdPeer}`).join(',');
  return `# etcd member ${name} of cluster ${m.cluster}, written by themis-admin cluster init.
# Clients (sidecars, themis-admin) need a certificate of the cluster or operator CA; peers
# use the member certificate, which names this address (${ip}) for clients and peers alike.
ETCD_NAME=${name}
ETCD_DATA_DIR=${join(state, 'etcd')}
ETCD_LISTEN_CLIENT_URLS=https://${ip}:${m.ports.etcdClient}
ETCD_ADVERTISE_CLIENT_URLS=https://${ip}:${m.ports.etcdClient}
ETCD_LISTEN_PEER_URLS=https://${ip}:${m.ports.etcdPeer}
ETCD_INITIAL_ADVERTISE_PEER_URLS=https://${ip}:${m.ports.etcdPeer}
ETCD_INITIAL_CLUSTER=${initial}
ETCD_INITIAL_CLUSTER_STATE=new
ETCD_INITIAL_CLUSTER_TOKEN=themis-${m.cluster}
ETCD_CERT_FILE=${join(dir, 'pki/chain.pem')}
ETCD_KEY_FILE=${join(dir, 'pki/key.pem')}
ETCD_CLIENT_CERT_AUTH=true
ETCD_TRUSTED_CA_FILE=${join(dir, 'pki/client-cas.pem')}
ETCD_CLIENT_CRL_FILE=${join(state, 'etcd-crl/revoked.crl')}
ETCD_PEER_CERT_FILE=${join(dir, 'pki/chain.pem')}
ETCD_PEER_KEY_FILE=${join(dir, 'pki/key.pem')}
ETCD_PEER_CLIENT_CERT_AUTH=true
ETCD_PEER_TRUSTED_CA_FILE=${join(dir, '../pki/root.pem')}
ETCD_LOGGER=zap
ETCD_LOG_LEVEL=warn
`;
}

/** Copies a file keeping it private (0600): the operator's own copies of keys. */
export function copyPrivate(from: string, to: string): void {
  mkdirSync(dirname(to), { recursive: true, mode: 0o700 });
  copyFileSync(from, to);
  chmodSync(to, 0o600);
}
