// `npm start`: the local mesh with etcd, a ring topology (optionally replicated) and a PKI kept in the dev
// folder (sidecar N's mesh port on 127.0.0.N+1); a death is reported, the rest run on; Ctrl-C stops all.
import { kindClaimOf } from '../src/pki/ca-kind.js';
import { inspectCertificate } from '../src/pki/inspect.js';
import { x509 } from '../src/pki/x509.js';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes, randomUUID } from 'node:crypto';
import { devShards, mintDevPki, type DevPki } from '../src/pki/dev-pki.js';
import { prepareLocalMesh, type LocalMesh } from './local-mesh.js';
import { DevSupervisor, type Supervised } from './dev-supervisor.js';
import { formatStatus, readClusterState, restartDead, stateFileOf } from './dev-control.js';

const USAGE = `usage: npm start -- [--shards 3] [--replicas 0] [--spares 0] [--workers 1] [--dir .dev] [--fresh] [--auto-ports]
       npm start -- --status | --restart [--dir .dev]
  --shards N     number of shards (default 3)
  --replicas R   replica shards per range, up to N-1 (1 or 2: replication factor 2 or 3; default 0)
  --spares K     K more shard pairs (storage node + sidecar, certificate from the dev PKI), running
                 and registered but not in the topology: add one with themis-admin shard add (default 0)
  --workers W    processes per sidecar serving its app and mesh ports: a number, or auto for one per
                 core (default 1; docs/sidecar.md "Workers")
  --dir DIR      where PKI, data, configs and logs live (default .dev)
  --fresh        delete DIR first
  --auto-ports   pick free ports instead of 7080+/8765+/9464+ and 7443
  --status       list the running dev cluster's processes: pid, running or how it exited, log file
  --restart      start the running dev cluster's dead processes again (same as kill -USR2 its pid)`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      shards: { type: 'string' }, replicas: { type: 'string' }, spares: { type: 'string' }, workers: { type: 'string' }, dir: { type: 'string' }, fresh: { type: 'boolean' }, 'auto-ports': { type: 'boolean' },
      status: { type: 'boolean' }, restart: { type: 'boolean' }, help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) return void console.log(USAGE);
  const dir = resolve(values.dir ?? '.dev');
  if (values.status) return void console.log(formatStatus(readClusterState(dir)));
  if (values.restart) return void console.log(formatStatus(await restartDead(dir)));
  const n = Number(values.shards ?? 3);
  if (!Number.isInteger(n) || n < 1 || n > 50) throw new Error('--shards must be an integer from 1 to 50');
  const replicas = Number(values.replicas ?? 0);
  if (!Number.isInteger(replicas) || replicas < 0 || replicas >= n) throw new Error(`--replicas must be an integer from 0 to ${n - 1} (the other shards)`);
  const spares = Number(values.spares ?? 0);
  if (!Number.isInteger(spares) || spares < 0 || spares > 10) throw new Error('--spares must be an integer from 0 to 10');
  const workers = values.workers === 'auto' ? 'auto' : Number(values.workers ?? 1);
  if (workers !== 'auto' && (!Number.isInteger(workers) || workers < 1 || workers > 64)) throw new Error('--workers must be auto or an integer from 1 to 64');
  const multi = workers === 'auto' || workers > 1;
  // SIGUSR2 restarts dead processes (set once the cluster runs); until then it must not end us.
  let onUsr2 = () => {};
  process.on('SIGUSR2', () => onUsr2());
  if (values.fresh) rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const cluster = 'cluster-dev';

  // PKI: minted once per dev folder; a different shard count needs --fresh.
  const all = devShards(n + spares, { firstIp: 2, split: false });
  const shards = all.slice(0, n);
  const stateFile = join(dir, 'cluster.json');
  let pki: DevPki;
  if (existsSync(stateFile)) {
    const saved = JSON.parse(readFileSync(stateFile, 'utf8')) as { shards: number; spares?: number; pki: DevPki };
    if (saved.shards !== n) throw new Error(`${dir} holds a ${saved.shards}-shard cluster; run with --fresh to make a ${n}-shard one`);
    if ((saved.spares ?? 0) < spares) throw new Error(`${dir}'s PKI has certificates for ${saved.spares ?? 0} spare shards; run with --fresh to mint ${spares}`);
    if (!saved.pki.etcd) throw new Error(`${dir} was made by an older version (no etcd certificate); run with --fresh`);
    // Intermediates made before roles were bound to their CA grant no role (docs/security-model.md).
    const kinds = (['cluster', 'operator', 'client'] as const).map((k) => kindClaimOf(new x509.X509Certificate(readFileSync(join(dir, 'pki', k, 'cert.pem'), 'utf8'))).kind);
    if (kinds.some((k) => k === undefined)) throw new Error(`${dir} holds a PKI made before roles were bound to their CA; run with --fresh (or themis-pki recertify-intermediate)`);
    // etcd RBAC gives etcd's root role to operators with `admin`; an older admin certificate lacks it.
    const admin = inspectCertificate(new x509.X509Certificate(readFileSync(saved.pki.operators.admin.certPath, 'utf8'))).identity as { capabilities?: string[] } | null;
    if (!admin?.capabilities?.includes('admin')) throw new Error(`${dir} holds an admin operator certificate without the admin capability (made before etcd RBAC); run with --fresh`);
    pki = saved.pki;
  } else {
    console.log(`minting a development PKI under ${join(dir, 'pki')} …`);
    const passphrase = randomBytes(18).toString('base64url');
    writeFileSync(join(dir, 'pki-passphrase'), passphrase + '\n', { mode: 0o600 });
    pki = await mintDevPki({ dir: join(dir, 'pki'), cluster, shards: all, passphrase });
    writeFileSync(stateFile, JSON.stringify({ shards: n, spares, pki }, null, 2));
  }

  const auto = values['auto-ports'] === true;
  // The control plane: a private etcd over mTLS; the topology is published there, signed by
  // the admin operator, one epoch above whatever an earlier run left, and every CA's CRL.
  const mesh: LocalMesh = await prepareLocalMesh({
    dir,
    cluster,
    shards,
    spares: all.slice(n, n + spares),
    pki,
    ranges: 'ring',
    // Every shard's certificate allows the whole token space (devShards split: false), so a
    // shard may hold any range as a replica.
    replicas,
    // What rebalancing and shard add/remove made of the topology survives a restart.
    etcd: { topology: true, crls: true, keepTopology: true, rbac: true },
    // The web console on every sidecar's admin port (loopback; off by default elsewhere).
    sidecarConfig: { admin: { console: true }, ...(multi ? { workers } : {}) },
    ports: auto ? undefined : (i) => ({ storage: 8765 + i, app: 7080 + i, admin: 9464 + i, mesh: 7443 }),
    logDir: join(dir, 'logs'),
  }).catch((e: Error) => {
    throw new Error(!auto && / is in use;/.test(e.message) ? `${e.message} (or run with --auto-ports)` : e.message);
  });

  let stopping = false;
  const restartHint = `start it again with \`npm start -- --restart${values.dir ? ` --dir ${values.dir}` : ''}\` or \`kill -USR2 ${process.pid}\`.`;
  const logOf = (name: string) => join(dir, 'logs', `${name}.log`);
  const supervised: Supervised[] = [
    { name: 'etcd', role: 'etcd', child: () => mesh.etcd?.child, restart: () => mesh.restartEtcd() },
    ...[...mesh.nodes, ...mesh.spares].flatMap(({ id, storage, sidecar }): Supervised[] => [
      { name: storage.name, role: 'storage', shard: id, log: logOf(`storage-${id}`), child: () => storage.process?.child, restart: () => storage.start() },
      { name: sidecar.name, role: 'sidecar', shard: id, log: logOf(`sidecar-${id}`), child: () => sidecar.process?.child, restart: () => sidecar.start() },
    ]),
  ];
  const supervisor = new DevSupervisor(supervised, stateFileOf(dir), (event, text) => {
    console.log(JSON.stringify(event));
    console.error(text);
  }, restartHint);
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    supervisor.stop();
    rmSync(stateFileOf(dir), { force: true });
    await mesh.close(); // etcd last: the sidecars give their leases back first
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

  try {
    await mesh.start();
  } catch (e) {
    console.error((e as Error).message);
    await stopAll(1);
    return;
  }
  // A process that dies is reported; the others keep running until it is restarted.
  supervisor.watch();
  onUsr2 = () => void supervisor.restartDead();

  const { topology, nodes } = mesh;
  const etcdEndpoint = mesh.etcd!.endpoint;
  const uuid = randomUUID();
  const app = (i: number) => nodes[i]!.sidecar.appUrl;
  const rf = replicas === 0 ? 'no replication' : `replication factor ${replicas + 1} (each range on its owner and the next ${replicas} shard${replicas > 1 ? 's' : ''})`;
  const procs = multi ? `, ${workers} workers per sidecar` : '';
  console.log(`\nthemis-mesh dev cluster "${cluster}": ${n} shards, ${rf}${procs}, signed topology epoch ${topology.epoch} (${topology.ranges.length} ranges) in etcd at ${etcdEndpoint}, files in ${dir}\n`);
  console.log('shard       app port (apps)        mesh port (mTLS)        admin (metrics)');
  nodes.forEach(({ id, sidecar }) => console.log(`${id}   ${sidecar.appUrl.padEnd(22)} ${sidecar.meshEndpoint.padEnd(23)} ${sidecar.adminUrl}/metrics`));
  mesh.spares.forEach(({ id, sidecar }) => console.log(`${id}   ${sidecar.appUrl.padEnd(22)} ${sidecar.meshEndpoint.padEnd(23)} ${sidecar.adminUrl}/metrics   (spare: not in the topology)`));
  console.log(`\nThe web console (the token ring, shards, moves; any sidecar's): ${nodes[0]!.sidecar.adminUrl}/console`);
  const operatorFlags = `--cluster ${cluster} --etcd ${etcdEndpoint} --ca ${pki.rootCert} --crls ${pki.crls.join(',')} --operator-cert ${pki.operators.admin.chainPath} --operator-key ${pki.operators.admin.keyPath}`;
  if (mesh.spares.length) {
    console.log(`\nGrow the cluster — give ${mesh.spares[0]!.id} its share of the tokens (the plan is printed first), then take it out again:
  node dist/src/cli/themis-admin.js shard add --id ${mesh.spares[0]!.id} --wait ${operatorFlags}
  node dist/src/cli/themis-admin.js shard remove --id ${mesh.spares[0]!.id} --wait ${operatorFlags}`);
  }
  console.log(`\nTry it — write through one sidecar, read through another:
  curl -X PUT ${app(0)}/entities/urn:themis:document:shop:orders:${uuid} -d '{"blob":"{\\"total\\":42}"}'
  curl -i ${app(n - 1)}/entities/document.shop.orders:${uuid}
A client certificate on the mesh port:
  curl --http2 --cert ${pki.client.chainPath} --key ${pki.client.keyPath} --cacert ${pki.rootCert} https://${nodes[0]!.sidecar.meshEndpoint}/entities/document.shop.orders:${uuid}
The control plane — registered shards and the CRLs in etcd:
  node dist/src/cli/themis-admin.js crl show --root ${pki.rootCert} --etcd ${etcdEndpoint} --cert ${pki.operators.readonly.chainPath} --key ${pki.operators.readonly.keyPath} --cluster ${cluster}
Processes and pids: npm start -- --status${values.dir ? ` --dir ${values.dir}` : ''}. A process that dies is reported and the others keep running;
restart the dead ones with npm start -- --restart${values.dir ? ` --dir ${values.dir}` : ''} (or kill -USR2 ${process.pid}).
Logs and audit trails: ${join(dir, 'logs')}.  Ctrl-C stops everything.`);
  console.log(JSON.stringify({ event: 'ready', apps: nodes.map((nd) => nd.sidecar.appUrl), storage: nodes.map((nd) => nd.storage.url), admins: nodes.map((nd) => nd.sidecar.adminUrl), spares: mesh.spares.map((nd) => nd.sidecar.appUrl), epoch: topology.epoch, replicas, dir, pid: process.pid }));
}

main().catch((e: unknown) => {
  console.error(`npm start: ${(e as Error).message}`);
  process.exit(1);
});
