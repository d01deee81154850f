// `themis-admin etcd rbac apply|plan`: least privilege in etcd, derived from certificates.
import { applyRbac, planRbac, type RbacPlan } from '../control/etcd-rbac.js';
import { verifierWithEtcdCrls } from '../control/crl-store.js';
import { connectEtcd, etcdKeys } from '../control/etcd.js';
import { EtcdCrlFollower, revokedSerialsInEtcd, writeEtcdCrlFile } from '../control/etcd-crl-file.js';
import { KeepWatching } from '../control/watch.js';
import { createLogger } from '../log.js';
import { parsePem } from '../pki/pem.js';
import type { VerifiedPeer } from '../pki/verify.js';
import { systemClock } from '../runtime.js';
import { crlsFlag, etcdCall, etcdFlag, parseFlags, readFlagFile, requireFlag, UsageError } from './cli-common.js';
import { OPERATOR_FLAGS, operatorIdentity } from './operator-identity.js';
import { etcdSnapshotCommand, ETCD_SNAPSHOT_USAGE } from './admin-etcd-snapshot.js';

export const ETCD_USAGE = `themis-admin etcd rbac apply|plan --cluster NAME --etcd https://HOST:2379 --ca ROOT.pem
        --operator-cert CHAIN.pem --operator-key KEY.pem [--crls A.pem,…] CERT.pem…
  Gives each certificate's common name only the etcd rights its role and capabilities need:
  a shard its own shards/{id}/ keys, the shared coordination keys and read on the cluster;
  an operator with rebalance/add_shard/remove_shard the topology, CRLs and rebalance orders;
  view_topology read; admin etcd's root role; clients nothing. Every CERT.pem (a chain) is
  verified first. apply creates and corrects roles and users, then turns authentication on;
  it is idempotent. Your own certificate must carry admin and is always included.
themis-admin etcd crl-file --out FILE (--empty | --cluster NAME --etcd https://HOST:2379 --ca ROOT.pem
        --cert CHAIN.pem --key KEY.pem [--watch])
  Writes the file etcd's --client-crl-file reads: every serial revoked by a CRL in etcd that
  verifies against the root, added to those the file lists already (it only grows), as one
  list (etcd reads only one CRL, and only its serials).
  --watch keeps it current as CRLs are published; --empty writes an empty one to start etcd with.
${ETCD_SNAPSHOT_USAGE}`;

export async function etcdCommand(argv: string[]): Promise<void> {
  if (argv[0] === 'crl-file') return crlFile(argv.slice(1));
  if (argv[0] === 'snapshot') return etcdSnapshotCommand(argv.slice(1));
  const [group, sub, ...rest] = argv;
  if (group !== 'rbac' || (sub !== 'apply' && sub !== 'plan')) throw new UsageError(`unknown etcd command "${[group, sub].filter(Boolean).join(' ')}"; use etcd rbac apply, etcd rbac plan, etcd crl-file or etcd snapshot`);
  const { values, positionals } = parseFlags(rest, { cluster: { type: 'string' }, etcd: { type: 'string' }, ca: { type: 'string' }, crls: { type: 'string' }, ...OPERATOR_FLAGS });
  const cluster = requireFlag(values.cluster, 'cluster', 'cluster-prod');
  const caPem = readFlagFile(requireFlag(values.ca, 'ca', 'pki/root/cert.pem'), 'ca');
  const extraCrls = values.crls === undefined ? [] : crlsFlag(values.crls);
  const op = await operatorIdentity(values);
  const etcd = connectEtcd({ endpoints: etcdFlag(values.etcd), certPem: op.certPem, keyPem: op.keyPem, caPem });
  try {
    const verifier = await etcdCall(verifierWithEtcdCrls(etcd, cluster, caPem, systemClock, extraCrls));
    const verify = (pem: string, where: string): VerifiedPeer => {
      const r = verifier.verify(parsePem(pem, where).map((b) => new Uint8Array(b.der)), 'clientAuth');
      if (!r.ok) throw new UsageError(`${where}: refused (${r.reason}): ${r.message}`);
      return r.peer;
    };
    const self = verify(op.certPem, '--operator-cert');
    if (self.identity.role !== 'operator' || !(self.identity.capabilities as readonly string[]).includes('admin')) {
      throw new UsageError(`--operator-cert: ${self.subject} lacks the admin capability that managing etcd's users and roles needs`);
    }
    const peers = [self, ...positionals.map((f) => verify(readFlagFile(f, 'certificate'), f))];
    const plan = planRbac(cluster, peers);
    printPlan(plan);
    if (sub === 'plan') return;
    const report = await etcdCall(applyRbac(etcd, cluster, plan));
    for (const c of report.changes) process.stdout.write(`  ${c}\n`);
    process.stdout.write(report.changes.length ? `applied ${report.changes.length} changes; etcd authentication is on\n` : 'nothing to change; etcd authentication is on\n');
  } finally {
    etcd.close();
  }
}

function printPlan(plan: RbacPlan): void {
  for (const u of plan.users) process.stdout.write(`user ${u.name}: ${u.roles.join(', ')}  — ${u.who}\n`);
  for (const r of plan.roles) {
    process.stdout.write(`role ${r.name}: ${r.grants.map((g) => `${g.permission} ${g.key}${g.prefix ? '*' : ''}`).join(', ')}\n`);
  }
}

async function crlFile(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    out: { type: 'string' }, empty: { type: 'boolean' }, watch: { type: 'boolean' },
    cluster: { type: 'string' }, etcd: { type: 'string' }, ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' },
  });
  const out = requireFlag(values.out, 'out', '/etc/etcd/pki/revoked.crl');
  if (values.empty) {
    await writeEtcdCrlFile(out, [], new Date());
    return void process.stdout.write(`wrote ${out}: no revoked serials\n`);
  }
  const cluster = requireFlag(values.cluster, 'cluster', 'cluster-prod');
  const caPem = readFlagFile(requireFlag(values.ca, 'ca', 'pki/root/cert.pem'), 'ca');
  const etcd = connectEtcd({
    endpoints: etcdFlag(values.etcd),
    certPem: readFlagFile(requireFlag(values.cert, 'cert', 'pki/operators/readonly/chain.pem'), 'cert'),
    keyPem: readFlagFile(requireFlag(values.key, 'key', 'pki/operators/readonly/key.pem'), 'key'),
    caPem,
  });
  const follower = new EtcdCrlFollower(
    out,
    () => revokedSerialsInEtcd(etcd, cluster, caPem, systemClock),
    (n) => process.stdout.write(`wrote ${out}: ${n} revoked serials\n`),
    (e) => {
      if (!values.watch) throw e;
      process.stderr.write(`cannot refresh ${out} (${e.message}); keeping the one written\n`);
    },
  );
  if (!values.watch) {
    try {
      return await etcdCall(follower.refresh());
    } finally {
      etcd.close();
    }
  }
  const log = createLogger('themis-admin');
  const rerun = () => void follower.refresh();
  const watcher = new KeepWatching({ build: () => etcd.watch().prefix(etcdKeys(cluster).crl('')), onPut: rerun, resync: rerun, what: 'CRL', log });
  await new Promise<void>((resolve) => {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => resolve());
  });
  watcher.close();
  etcd.close();
}
