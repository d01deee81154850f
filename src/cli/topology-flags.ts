// What the topology commands share: the --shards and --endpoints flags, reading a topology
// file named by a flag, and the balance table `plan` prints.
import type { Balance } from '../topology/balance.js';
import { parseTopology } from '../topology/document.js';
import { SHARD_ID_RE, TopologyError, type ShardInfo, type Topology } from '../topology/topology.js';
import { readFlagFile, UsageError } from './cli-common.js';

/**
 * The cluster a new topology is for: --cluster or the context's, never a silent default (a
 * topology of cluster-dev published to a production etcd lands on a key no sidecar reads).
 */
export function planCluster(cluster: string | undefined): string {
  if (cluster === undefined || cluster === '') {
    throw new UsageError('--cluster is required: the cluster this topology is for, e.g. --cluster cluster-prod (the local dev cluster is cluster-dev); or set one in a context (themis-admin context show)');
  }
  return cluster;
}

export function parseShards(list: string): string[] {
  const ids = list.split(',').map((s) => s.trim()).filter(Boolean);
  if (ids.length === 0) throw new UsageError('--shards needs at least one shard id');
  for (const id of ids) if (!SHARD_ID_RE.test(id)) throw new UsageError(`--shards: "${id}" is not a valid shard id (e.g. shard-001)`);
  if (new Set(ids).size !== ids.length) throw new UsageError('--shards: shard ids must be unique');
  return ids;
}

export function parseEndpoints(list: string | undefined, ids: string[]): Record<string, ShardInfo> {
  const out: Record<string, ShardInfo> = {};
  for (const item of (list ?? '').split(',').filter(Boolean)) {
    const [id, endpoint] = item.split('=');
    if (!id || !endpoint || !ids.includes(id)) {
      throw new UsageError(`--endpoints: "${item}" must be SHARD=HOST:PORT for a shard named in --shards`);
    }
    out[id] = { endpoint };
  }
  return out;
}

export function formatBalance(t: Topology, b: Balance): string {
  const pct = (x: number) => (x * 100).toFixed(2).padStart(6) + '%';
  const lines = [
    // A topology that does not follow the ring (plan --balanced) has vnodes 0.
    t.vnodes > 0
      ? `cluster ${t.cluster}, epoch ${t.epoch}: ${Object.keys(t.shards).length} shards × ${t.vnodes} vnodes → ${t.ranges.length} ranges`
      : `cluster ${t.cluster}, epoch ${t.epoch}: ${Object.keys(t.shards).length} shards, balanced (not the ring) → ${t.ranges.length} ranges`,
    `${'shard'.padEnd(16)} ${'tokens'.padStart(7)} ${'keys'.padStart(7)} (of ${b.sampleSize} random UUIDs)`,
  ];
  if (b.shards.length <= 40) {
    for (const s of b.shards) lines.push(`${s.shard.padEnd(16)} ${pct(s.tokenShare)} ${pct(s.keyShare)}`);
  }
  lines.push(
    `token share: std dev ${pct(b.tokens.relStdDev)} of the mean, max/mean ${b.tokens.maxOverMean.toFixed(3)}`,
    `key share:   std dev ${pct(b.keys.relStdDev)} of the mean, max/mean ${b.keys.maxOverMean.toFixed(3)}`,
  );
  return lines.join('\n') + '\n';
}

export function readTopology(path: string, flag: string): Topology {
  const text = readFlagFile(path, flag);
  try {
    return parseTopology(text);
  } catch (e) {
    if (e instanceof TopologyError) throw new UsageError(`--${flag} ${path}: ${e.message}`);
    throw e;
  }
}
