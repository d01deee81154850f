// `themis-admin cluster init` and `themis-admin host add`: a cluster from nothing, and one more
// host's bundle later (src/bootstrap/). Prints what it wrote and what to do next; never a secret.
import { isIP } from 'node:net';
import { addHost, BootstrapError, initCluster } from '../bootstrap/cluster-init.js';
import { PASSPHRASE_ENV, requirePassphrase } from '../pki/passphrase.js';
import { SHARD_ID_RE } from '../topology/topology.js';
import { intFlag, parseFlags, requireFlag, UsageError } from './cli-common.js';

export const CLUSTER_USAGE = `themis-admin cluster init --cluster NAME --hosts shard-001=IP,shard-002=IP,… --out DIR --offline-dir DIR
        [--etcd-hosts IP,IP,IP] [--dc dc1] [--replicas 0] [--passphrase-file FILE]
  From nothing: the PKI in DIR/pki (root key only in --offline-dir), operators admin and
  readonly, one etcd member certificate and config per --etcd-hosts address (default: the
  first three hosts), the first topology (DIR/topology.json, epoch 1, signed), an operator
  context (DIR/admin.json: export THEMIS_CONFIG=DIR/admin.json) and one bundle per host in
  DIR/hosts/SHARD/ (etc/themis, etc/systemd/system, var/lib/themis: copy it to the host's /).
  The CA keys' passphrase: --passphrase-file FILE or $${PASSPHRASE_ENV.ca} (or a prompt).
  --install-root DIR (default /) writes the hosts' paths under DIR, where {shard} stands for
  the shard id: to stage, or to run several loopback "hosts" on one machine. --kdf-iterations N
  weakens the CA keys' encryption (PBKDF2 rounds) for tests only; never for a real cluster.
themis-admin host add --out DIR --host shard-004=IP [--dc NAME] [--passphrase-file FILE]
  One more host's certificate and bundle (DIR/hosts/shard-004/); it joins the topology with
  themis-admin shard add (docs/scaling.md).`;

export async function clusterCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub !== 'init') throw new UsageError(`unknown cluster command "${sub ?? ''}"; use cluster init`);
  const { values } = parseFlags(rest, {
    cluster: { type: 'string' }, hosts: { type: 'string' }, out: { type: 'string' }, 'offline-dir': { type: 'string' },
    'etcd-hosts': { type: 'string' }, dc: { type: 'string' }, replicas: { type: 'string' }, 'passphrase-file': { type: 'string' },
    'install-root': { type: 'string' }, 'kdf-iterations': { type: 'string' },
  });
  const cluster = requireFlag(values.cluster, 'cluster', 'cluster-prod');
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(cluster)) throw new UsageError(`--cluster: "${cluster}" must be lower-case letters, digits and dashes`);
  const hosts = parseHosts(requireFlag(values.hosts, 'hosts', 'shard-001=10.0.1.11,shard-002=10.0.1.12,shard-003=10.0.1.13'), 'hosts');
  const out = requireFlag(values.out, 'out', 'cluster-prod');
  const offline = requireFlag(values['offline-dir'], 'offline-dir', '/media/usb/themis-root');
  const etcdHosts = values['etcd-hosts']?.split(',').filter(Boolean);
  for (const ip of etcdHosts ?? []) if (!isIP(ip)) throw new UsageError(`--etcd-hosts: "${ip}" is not an IP address`);
  const replicas = intFlag(values.replicas, 'replicas', 0, 0, hosts.length - 1);
  const passphrase = await requirePassphrase({ purpose: 'the new CA keys', fileFlag: '--passphrase-file', file: values['passphrase-file'], envVar: PASSPHRASE_ENV.ca, confirm: true });
  const r = await bootstrap(() =>
    initCluster({
      cluster, out, offline, hosts, replicas, passphrase,
      datacenter: values.dc ?? 'dc1',
      installRoot: values['install-root'] ?? '/',
      ...(etcdHosts ? { etcdHosts } : {}),
      ...(values['kdf-iterations'] ? { kdfIterations: intFlag(values['kdf-iterations'], 'kdf-iterations', 0, 1, 10_000_000) } : {}),
    }),
  );
  const lines = [
    `cluster ${cluster}: ${hosts.length} hosts, etcd on ${Object.values(r.manifest.etcd).join(', ')}`,
    `root CA key (encrypted):  ${r.rootKey}   <- keep this folder offline; nothing else holds the root key`,
    `PKI:                      ${out}/pki   (CA keys encrypted, leaf keys 0600)`,
    `first topology:           ${r.topology} (epoch 1; signed copy ${r.signedTopology})`,
    `operator context:         ${r.context}   (export THEMIS_CONFIG=${r.context})`,
    ...Object.entries(r.bundles).map(([id, dir]) => `bundle for ${id.padEnd(13)} ${dir}`),
    'next: copy each bundle to its host (deploy/README.md, "A first cluster"), start etcd, publish the topology, start the services, then themis-admin check',
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

export async function hostCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub !== 'add') throw new UsageError(`unknown host command "${sub ?? ''}"; use host add`);
  const { values } = parseFlags(rest, { out: { type: 'string' }, host: { type: 'string' }, dc: { type: 'string' }, 'passphrase-file': { type: 'string' } });
  const out = requireFlag(values.out, 'out', 'cluster-prod');
  const [[shardId, ip]] = parseHosts(requireFlag(values.host, 'host', 'shard-004=10.0.1.14'), 'host') as [[string, string]];
  const passphrase = await requirePassphrase({ purpose: 'the cluster CA key', fileFlag: '--passphrase-file', file: values['passphrase-file'], envVar: PASSPHRASE_ENV.ca });
  const r = await bootstrap(() => addHost({ out, shardId, ip, passphrase, ...(values.dc ? { datacenter: values.dc } : {}) }));
  process.stdout.write(`bundle for ${shardId} (${ip}): ${r.bundle}\nnext: give it its etcd user (themis-admin etcd rbac apply …), copy it to the host, start its services, then add it to the topology: themis-admin shard add --id ${shardId} --yes --wait (deploy/README.md, "Adding a host")\n`);
}

function parseHosts(list: string, flag: string): [string, string][] {
  const out: [string, string][] = [];
  for (const item of list.split(',').filter(Boolean)) {
    const [id, ip] = item.split('=');
    if (!id || !ip || !SHARD_ID_RE.test(id) || !/^shard-\d{3,}$/.test(id)) throw new UsageError(`--${flag}: "${item}" must be SHARD=IP with a shard id like shard-001`);
    if (!isIP(ip)) throw new UsageError(`--${flag}: "${ip}" is not an IP address`);
    out.push([id, ip]);
  }
  if (out.length === 0) throw new UsageError(`--${flag} needs at least one SHARD=IP`);
  if (new Set(out.map(([id]) => id)).size !== out.length || new Set(out.map(([, ip]) => ip)).size !== out.length) throw new UsageError(`--${flag}: every shard and every address once`);
  return out;
}

async function bootstrap<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof BootstrapError) throw new UsageError(e.message);
    throw e;
  }
}
