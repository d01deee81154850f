#!/usr/bin/env node
// `themis-admin`: the operator's cluster tool. Each command family lives in its own file;
// this file only dispatches, after reading the context (cli-context.ts) that supplies flags
// the command line leaves out. A family's file is loaded only when one of its commands runs
// (or for the usage): `topology plan` need not load the etcd client, nor `audit verify` the PKI.
import { runCommands, setFlagDefaults, type Commands } from './cli-common.js';
import { loadContext, takeContextFlag } from './cli-context.js';
import { useCompileCache } from '../compile-cache.js';

useCompileCache(); // the command modules load below, on demand

type Command = (argv: string[]) => Promise<void>;
const lazy = <M>(load: () => Promise<M>, pick: (m: M) => Command): Command => async (argv) => pick(await load())(argv);

const context = () => import('./admin-context.js');
const check = () => import('./admin-check.js');
const cluster = () => import('./admin-cluster.js');
const topology = () => import('./admin-topology.js');
const audit = () => import('./admin-audit.js');
const status = () => import('./admin-status.js');
const shards = () => import('./admin-shards.js');
const crl = () => import('./admin-crl.js');
const rebalance = () => import('./admin-rebalance.js');
const shard = () => import('./admin-shard.js');
const etcd = () => import('./admin-etcd.js');
const backup = () => import('./admin-backup.js');

const COMMANDS: Commands = {
  context: lazy(context, (m) => m.contextCommand),
  check: lazy(check, (m) => m.checkCommand),
  cluster: lazy(cluster, (m) => m.clusterCommand),
  host: lazy(cluster, (m) => m.hostCommand),
  topology: lazy(topology, (m) => m.topologyCommand),
  audit: lazy(audit, (m) => m.auditCommand),
  status: lazy(status, (m) => m.statusCommand),
  shards: lazy(shards, (m) => m.shardsCommand),
  crl: lazy(crl, (m) => m.crlCommand),
  rebalance: lazy(rebalance, (m) => m.rebalanceCommand),
  shard: lazy(shard, (m) => m.shardCommand),
  etcd: lazy(etcd, (m) => m.etcdCommand),
  backup: lazy(backup, (m) => m.backupCommand),
  restore: lazy(backup, (m) => m.restoreCommand),
};

async function usage(): Promise<string> {
  const parts = await Promise.all([
    cluster().then((m) => m.CLUSTER_USAGE),
    context().then((m) => m.CONTEXT_USAGE),
    check().then((m) => m.CHECK_USAGE),
    topology().then((m) => m.TOPOLOGY_USAGE),
    audit().then((m) => m.AUDIT_USAGE),
    status().then((m) => m.STATUS_USAGE),
    shards().then((m) => m.SHARDS_USAGE),
    crl().then((m) => m.CRL_USAGE),
    rebalance().then((m) => m.REBALANCE_USAGE),
    shard().then((m) => m.SHARD_USAGE),
    etcd().then((m) => m.ETCD_USAGE),
    backup().then((m) => m.BACKUP_USAGE),
  ]);
  return `usage: themis-admin [--context NAME] <command> …\n\n${parts.join('\n')}\n`;
}

await runCommands('themis-admin', usage, COMMANDS, (argv) => {
  const { argv: rest, context: name } = takeContextFlag(argv);
  const ctx = loadContext(name);
  setFlagDefaults((flag) => ctx.values[flag as keyof typeof ctx.values]?.value);
  return rest;
});
