// Waiting for this sidecar's topology to reach an epoch another shard already routes by. Two
// sidecars learn of a new epoch a few milliseconds apart (each from its own etcd watch); a
// request that crosses that gap must not fail: the shard that is behind reads the topology
// again (MongoDB's shards do the same with a router's newer shard version), for a bounded time.
import type { TopologySource } from './topology-source.js';

/** How long a request may wait for this sidecar's topology to reach a peer's epoch. */
export const CATCH_UP_MS = 1000;
const RETRY_READ_MS = 100;

/** Reads the topology again until its epoch is `epoch` or more, or `ms` passed; true when reached. */
export async function catchUp(source: TopologySource, epoch: number, ms = CATCH_UP_MS): Promise<boolean> {
  const end = performance.now() + ms;
  for (;;) {
    await source.refresh();
    if (source.current().epoch >= epoch) return true;
    const left = end - performance.now();
    if (left <= 0) return false;
    await new Promise((r) => setTimeout(r, Math.min(RETRY_READ_MS, left)));
  }
}

const EPOCH_RE = /^\d{1,15}$/;

/** The epoch a sender routed by (x-themis-topology-epoch on a forwarded request); undefined when absent. */
export function senderEpoch(value: string | string[] | undefined): number | undefined | 'malformed' {
  if (value === undefined) return undefined;
  return typeof value === 'string' && EPOCH_RE.test(value) ? Number(value) : 'malformed';
}
