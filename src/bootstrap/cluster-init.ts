// A cluster from nothing (`themis-admin cluster init`) and one more host later (`host add`):
// the PKI through the same commands as themis-pki, the root key moved to an offline folder,
// operator and etcd member certificates, the first topology (planned on the ring and signed),
// an operator context, and one bundle per host (host-bundle.ts).
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync, copyFileSync, rmSync, chmodSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { TOKEN_MAX } from '../hash.js';
import { ISSUER_OF } from '../pki/ca-kind.js';
import { PkiLayout, loadIssuer } from '../pki/ca-store.js';
import { createIntermediate, initRoot, issue, type PkiContext } from '../pki/commands.js';
import { operatorProfile, serverProfile, shardProfile, type LeafProfileParams } from '../pki/profiles.js';
import { parsePem } from '../pki/pem.js';
import { loadPrivateKey } from '../pki/keys.js';
import { HashRing, DEFAULT_VNODES } from '../ring/ring.js';
import { systemClock, systemRandom } from '../runtime.js';
import { serializeTopology } from '../topology/document.js';
import { topologyFromRing } from '../topology/from-ring.js';
import { signTopology } from '../topology/signed.js';
import { writeEtcdCrlFile } from '../control/etcd-crl-file.js';
import { CRL_NAMES, DEFAULT_PORTS, etcdEndpoints, hostPaths, installRootOf, writeHostBundle, type ClusterManifest, type HostMaterial } from './host-bundle.js';

const KEY_TYPE = 'ecdsa-p256' as const;
const INTERMEDIATES = ['cluster', 'operator', 'client'] as const;
const ADMIN_CAPABILITIES = ['rebalance', 'add_shard', 'remove_shard', 'view_topology', 'admin'] as const;

export class BootstrapError extends Error {
  override name = 'BootstrapError';
}

export interface InitOptions {
  cluster: string;
  /** The operator's folder: pki/, hosts/, topology, context; must not exist or be empty. */
  out: string;
  /** Where the root CA key goes (and nowhere else): removable media, kept offline. */
  offline: string;
  /** Shard id → host address, in order. */
  hosts: [string, string][];
  /** etcd members: host addresses among the hosts' (default: the first three, or all if fewer). */
  etcdHosts?: string[];
  datacenter: string;
  replicas: number;
  passphrase: string;
  installRoot: string;
  /** PBKDF2 rounds of the CA keys (tests use few). */
  kdfIterations?: number;
}

export interface InitResult {
  manifest: ClusterManifest;
  /** Files written, by what they are (for the summary; no secret is in it). */
  rootKey: string;
  context: string;
  topology: string;
  signedTopology: string;
  bundles: Record<string, string>;
}

const ctxFor = (layout: PkiLayout, kdfIterations?: number): PkiContext => ({ layout, clock: systemClock, random: systemRandom, force: false, kdfIterations });

/** Every intermediate opened once; a leaf from the CA its profile belongs to. */
async function minter(ctx: PkiContext, passphrase: string) {
  const issuers = new Map<string, Awaited<ReturnType<typeof loadIssuer>>>();
  for (const ca of INTERMEDIATES) issuers.set(ca, await loadIssuer(ctx.layout, ca, passphrase));
  return async (params: LeafProfileParams, name: string) => {
    const r = await issue(ctx, { params, name, caPassphrase: passphrase, issuer: issuers.get(ISSUER_OF[params.profile]), keyType: KEY_TYPE });
    return { serial: r.certificate!.serial, chainPath: r.files.chain, keyPath: r.files.key };
  };
}

function checkEmptyTarget(dir: string, flag: string): void {
  if (existsSync(dir) && readdirSync(dir).length > 0) throw new BootstrapError(`${flag} ${dir} is not empty; cluster init starts from nothing (choose a new folder)`);
}

export async function initCluster(o: InitOptions): Promise<InitResult> {
  const out = resolve(o.out);
  const offline = resolve(o.offline);
  checkEmptyTarget(out, '--out');
  checkEmptyTarget(offline, '--offline-dir');
  if (offline === out || offline.startsWith(out + '/')) throw new BootstrapError('--offline-dir must be outside --out: the root key must not travel with the rest');
  const etcdIps = o.etcdHosts ?? o.hosts.slice(0, Math.min(3, o.hosts.length)).map(([, ip]) => ip);
  if (etcdIps.length % 2 === 0) throw new BootstrapError(`--etcd-hosts: ${etcdIps.length} members cannot outvote a split; use an odd number (1, 3 or 5)`);
  for (const ip of etcdIps) if (!o.hosts.some(([, a]) => a === ip)) throw new BootstrapError(`--etcd-hosts: ${ip} is not one of --hosts`);
  const manifest: ClusterManifest = {
    version: 1,
    cluster: o.cluster,
    installRoot: o.installRoot === '/' ? '/' : resolve(o.installRoot),
    hosts: Object.fromEntries(o.hosts.map(([id, ip]) => [id, { ip, datacenter: o.datacenter }])),
    etcd: Object.fromEntries(etcdIps.map((ip, i) => [`etcd-${i + 1}`, ip])),
    ports: { ...DEFAULT_PORTS },
  };

  // The PKI: root, intermediates, then the root key leaves for the offline folder.
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const layout = new PkiLayout(join(out, 'pki'));
  const ctx = ctxFor(layout, o.kdfIterations);
  await initRoot(ctx, { passphrase: o.passphrase, keyType: KEY_TYPE });
  for (const kind of INTERMEDIATES) await createIntermediate(ctx, { kind, rootPassphrase: o.passphrase, newPassphrase: o.passphrase, keyType: KEY_TYPE });
  mkdirSync(offline, { recursive: true, mode: 0o700 });
  const rootKey = join(offline, 'root-key.pem');
  moveFile(layout.caKey('root'), rootKey);

  const mint = await minter(ctx, o.passphrase);
  const admin = await mint(operatorProfile({ name: 'admin', capabilities: [...ADMIN_CAPABILITIES] }), 'admin');
  await mint(operatorProfile({ name: 'readonly', capabilities: ['view_topology'] }), 'readonly');

  // The first topology: the ring over every host's shard, signed by the admin operator.
  const ids = o.hosts.map(([id]) => id);
  const topology = topologyFromRing(new HashRing(ids, DEFAULT_VNODES), {
    cluster: o.cluster,
    epoch: 1,
    replicas: o.replicas,
    shards: Object.fromEntries(o.hosts.map(([id, ip]) => [id, { endpoint: `${ip}:${manifest.ports.mesh}`, datacenter: o.datacenter }])),
  });
  const topologyFile = join(out, 'topology.json');
  writeFileSync(topologyFile, serializeTopology(topology), { mode: 0o644 });
  const chain = parsePem(readFileSync(admin.chainPath, 'utf8'), admin.chainPath).filter((b) => b.label === 'CERTIFICATE').map((b) => new Uint8Array(b.der));
  const key = await loadPrivateKey(readFileSync(admin.keyPath, 'utf8'), undefined, admin.keyPath);
  const signedFile = join(out, 'topology.signed.json');
  writeFileSync(signedFile, JSON.stringify(await signTopology(topology, chain, key.privateKey), null, 2) + '\n', { mode: 0o644 });

  writeFileSync(join(out, 'cluster.json'), JSON.stringify(manifest, null, 2) + '\n', { mode: 0o644 });
  const context = writeContext(out, manifest, layout);
  const bundles: Record<string, string> = {};
  for (const [id] of o.hosts) bundles[id] = await addHostBundle(out, manifest, id, mint);
  return { manifest, rootKey, context, topology: topologyFile, signedTopology: signedFile, bundles };
}

export interface AddHostOptions {
  out: string;
  shardId: string;
  ip: string;
  datacenter?: string;
  passphrase: string;
}

/** One more host: its shard certificate and bundle, recorded in cluster.json (not yet in the topology). */
export async function addHost(o: AddHostOptions): Promise<{ bundle: string; manifest: ClusterManifest }> {
  const out = resolve(o.out);
  const manifestFile = join(out, 'cluster.json');
  if (!existsSync(manifestFile)) throw new BootstrapError(`--out ${out} has no cluster.json; run themis-admin cluster init first (or pass the folder it wrote)`);
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as ClusterManifest;
  if (manifest.hosts[o.shardId]) throw new BootstrapError(`--host: ${o.shardId} is already a host of ${manifest.cluster} (${manifest.hosts[o.shardId]!.ip})`);
  const taken = Object.entries(manifest.hosts).find(([, h]) => h.ip === o.ip);
  if (taken) throw new BootstrapError(`--host: ${o.ip} is already the address of ${taken[0]}`);
  manifest.hosts[o.shardId] = { ip: o.ip, datacenter: o.datacenter ?? Object.values(manifest.hosts)[0]?.datacenter ?? 'dc1' };
  const layout = new PkiLayout(join(out, 'pki'));
  const mint = await minter(ctxFor(layout), o.passphrase);
  const bundle = await addHostBundle(out, manifest, o.shardId, mint);
  writeFileSync(manifestFile, JSON.stringify(manifest, null, 2) + '\n', { mode: 0o644 });
  return { bundle, manifest };
}

type Mint = Awaited<ReturnType<typeof minter>>;

async function addHostBundle(out: string, m: ClusterManifest, id: string, mint: Mint): Promise<string> {
  const host = m.hosts[id]!;
  const layout = new PkiLayout(join(out, 'pki'));
  const shard = await mint(
    shardProfile({
      id,
      cluster: m.cluster,
      datacenter: host.datacenter,
      dns: ['localhost'],
      ips: [...new Set([host.ip, '127.0.0.1'])],
      // The ring scatters a shard's ranges over the token space; later moves may give it any.
      tokenRange: { start: 0n, end: TOKEN_MAX },
      capabilities: ['read', 'write', 'replicate'],
      role: 'primary',
    }),
    id,
  );
  const etcdName = Object.entries(m.etcd).find(([, ip]) => ip === host.ip)?.[0];
  const material: HostMaterial = {
    shardId: id,
    rootPem: readFileSync(layout.caCert('root'), 'utf8'),
    crls: Object.fromEntries(CRL_NAMES.map((c) => [c, readFileSync(layout.caCrl(c), 'utf8')])) as HostMaterial['crls'],
    shard,
  };
  if (etcdName) {
    // A member certificate names the address its clients and peers dial (and loopback).
    const member = await mint(serverProfile({ name: etcdName, dns: ['localhost'], ips: [...new Set([host.ip, '127.0.0.1'])] }), etcdName);
    const crlReader = await mint(operatorProfile({ name: `etcd-crl-${etcdName}`, capabilities: ['view_topology'] }), `etcd-crl-${etcdName}`);
    const clientCas = ['cluster', 'operator'].map((c) => readFileSync(layout.caCert(c as 'cluster'), 'utf8').trimEnd() + '\n').join('');
    material.etcd = { name: etcdName, chainPath: member.chainPath, keyPath: member.keyPath, clientCas, reader: crlReader };
  }
  const bundle = join(out, 'hosts', id);
  writeHostBundle(bundle, m, material);
  if (material.etcd) {
    // etcd needs its client CRL file before its first start; the CRL follower keeps it current.
    const root = installRootOf(m, id);
    const crl = join(bundle, hostPaths(m, id).state.slice(root === '/' ? 0 : root.length), 'etcd-crl/revoked.crl');
    await writeEtcdCrlFile(crl, [], new Date());
    chmodSync(crl, 0o644);
  }
  return bundle;
}

/** The operator's context (themis-admin context show): the admin operator, all CRLs, every etcd member; 0600. */
function writeContext(out: string, m: ClusterManifest, layout: PkiLayout): string {
  const file = join(out, 'admin.json');
  // The admin operator for everything: it also has view_topology, which reading needs.
  const admin = layout.leafDir('operator', 'admin');
  const ctx = {
    cluster: m.cluster,
    etcd: etcdEndpoints(m),
    ca: layout.caCert('root'),
    crls: CRL_NAMES.map((c) => layout.caCrl(c)),
    cert: join(admin, 'chain.pem'),
    key: join(admin, 'key.pem'),
    operatorCert: join(admin, 'chain.pem'),
    operatorKey: join(admin, 'key.pem'),
  };
  writeFileSync(file, JSON.stringify({ current: m.cluster, contexts: { [m.cluster]: ctx } }, null, 2) + '\n', { mode: 0o600 });
  return file;
}

/** rename, or copy and remove across file systems (the offline folder is often a USB stick). */
function moveFile(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    copyFileSync(from, to);
    rmSync(from);
  }
  chmodSync(to, 0o600);
}

