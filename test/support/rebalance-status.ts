// A rebalance operation's status as one shard wrote it to etcd, read with an async client: the
// tests poll it every 100 ms, and etcdctl (a process with its own TLS handshake, about 40 ms of
// CPU each) in those loops cost a core's worth of a minute per file.
import type { Etcd3 } from 'etcd3';
import { etcdKeys } from '../../src/control/etcd-keys.js';

export async function rebalanceStatus(etcd: Etcd3, cluster: string, opId: string, shard: string): Promise<Record<string, unknown>> {
  const value = await etcd.get(etcdKeys(cluster).rebalanceStatus(opId, shard)).string();
  return value ? (JSON.parse(value) as Record<string, unknown>) : {};
}
