#!/usr/bin/env node
// `themis-admin`: the operator's cluster tool. Each command family lives in its own file;
// this file only dispatches, after reading the context (cli-context.ts) that supplies flags
// the command line leaves out.
import { runCommands, setFlagDefaults } from './cli-common.js';
import { loadContext, takeContextFlag } from './cli-context.js';
import { contextCommand, CONTEXT_USAGE } from './admin-context.js';
import { checkCommand, CHECK_USAGE } from './admin-check.js';
import { clusterCommand, hostCommand, CLUSTER_USAGE } from './admin-cluster.js';
import { topologyCommand, TOPOLOGY_USAGE } from './admin-topology.js';
import { auditCommand, AUDIT_USAGE } from './admin-audit.js';
import { shardsCommand, SHARDS_USAGE } from './admin-shards.js';
import { crlCommand, CRL_USAGE } from './admin-crl.js';
import { rebalanceCommand, REBALANCE_USAGE } from './admin-rebalance.js';
import { shardCommand, SHARD_USAGE } from './admin-shard.js';
import { etcdCommand, ETCD_USAGE } from './admin-etcd.js';
import { backupCommand, restoreCommand, BACKUP_USAGE } from './admin-backup.js';
import { statusCommand, STATUS_USAGE } from './admin-status.js';

const USAGE = `usage: themis-admin [--context NAME] <command> …

${CLUSTER_USAGE}
${CONTEXT_USAGE}
${CHECK_USAGE}
${TOPOLOGY_USAGE}
${AUDIT_USAGE}
${STATUS_USAGE}
${SHARDS_USAGE}
${CRL_USAGE}
${REBALANCE_USAGE}
${SHARD_USAGE}
${ETCD_USAGE}
${BACKUP_USAGE}
`;

await runCommands(
  'themis-admin',
  USAGE,
  {
    context: contextCommand,
    check: checkCommand,
    cluster: clusterCommand,
    host: hostCommand,
    topology: topologyCommand,
    audit: auditCommand,
    status: statusCommand,
    shards: shardsCommand,
    crl: crlCommand,
    rebalance: rebalanceCommand,
    shard: shardCommand,
    etcd: etcdCommand,
    backup: backupCommand,
    restore: restoreCommand,
  },
  (argv) => {
    const { argv: rest, context } = takeContextFlag(argv);
    const ctx = loadContext(context);
    setFlagDefaults((flag) => ctx.values[flag as keyof typeof ctx.values]?.value);
    return rest;
  },
);
