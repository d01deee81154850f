#!/usr/bin/env node
// `themis-admin`: the operator's cluster tool. Each command family lives in its own file;
// this file only dispatches.
import { runCommands } from './cli-common.js';
import { topologyCommand, TOPOLOGY_USAGE } from './admin-topology.js';
import { auditCommand, AUDIT_USAGE } from './admin-audit.js';
import { shardsCommand, SHARDS_USAGE } from './admin-shards.js';
import { crlCommand, CRL_USAGE } from './admin-crl.js';
import { rebalanceCommand, REBALANCE_USAGE } from './admin-rebalance.js';
import { shardCommand, SHARD_USAGE } from './admin-shard.js';
import { etcdCommand, ETCD_USAGE } from './admin-etcd.js';

const USAGE = `usage: themis-admin <command> …

${TOPOLOGY_USAGE}
${AUDIT_USAGE}
${SHARDS_USAGE}
${CRL_USAGE}
${REBALANCE_USAGE}
${SHARD_USAGE}
${ETCD_USAGE}
`;

await runCommands('themis-admin', USAGE, {
  topology: topologyCommand,
  audit: auditCommand,
  shards: shardsCommand,
  crl: crlCommand,
  rebalance: rebalanceCommand,
  shard: shardCommand,
  etcd: etcdCommand,
});
