// The lowest topology epoch a sidecar that has none yet may accept from etcd. Shards may write
// the topology key (a cutover publishes the next epoch), so a compromised shard could put an
// older, validly signed topology back; a sidecar with a cached topology refuses it as not
// newer, but one starting without a cache has nothing to compare with. Every sidecar reports
// the epoch it serves with its status (shards/{id}/replication, on its lease): the floor is the
// highest epoch that at least two other shards report, so one shard alone can neither raise it
// (to keep a newcomer out) nor lower it.
import type { Etcd3 } from 'etcd3';
import { etcdKeys } from './etcd-keys.js';
import { shardsWith } from './certified-ranges.js';

/** Reports counted from other shards before there is a floor. */
export const FLOOR_QUORUM = 2;

/** The floor, or undefined when fewer than FLOOR_QUORUM other shards report an epoch. */
export async function reportedEpochFloor(etcd: Etcd3, cluster: string, self: string): Promise<number | undefined> {
  const keys = etcdKeys(cluster);
  const ids = await shardsWith(etcd, cluster, 'replication');
  ids.delete(self);
  // One small value per shard, read one by one: a shard's own large values cannot fail the read.
  const epochs: number[] = [];
  await Promise.all([...ids].map(async (id) => {
    const e = epochOf(await etcd.get(keys.shardReplication(id)).string());
    if (e !== undefined) epochs.push(e);
  }));
  return floorOf(epochs);
}

/** The highest epoch reported at least FLOOR_QUORUM times (each report counts for it and every lower epoch). */
export function floorOf(epochs: readonly number[]): number | undefined {
  if (epochs.length < FLOOR_QUORUM) return undefined;
  return [...epochs].sort((a, b) => b - a)[FLOOR_QUORUM - 1];
}

function epochOf(value: string | null): number | undefined {
  if (!value || value.length > 1 << 20) return undefined;
  try {
    const e = (JSON.parse(value) as { topology_epoch?: unknown }).topology_epoch;
    return Number.isSafeInteger(e) && (e as number) >= 0 ? (e as number) : undefined;
  } catch {
    return undefined;
  }
}
