// `x-themis-read: any` — an app that accepts a possibly stale answer lets a replica serve an
// entity read: when this shard holds a copy of the key's range and follows its primary, it
// answers from its own storage node and says so (x-themis-copy, x-themis-replica-lag: changes
// behind the primary at its last page). Without the header, or with `primary`, reads go to the primary.
import type { IncomingHttpHeaders } from 'node:http';
import { ThemisError } from '../../src/errors.js';
import type { Topology } from '../../src/topology/topology.js';

export const READ_HEADER = 'x-themis-read';
export const COPY_HEADER = 'x-themis-copy';
export const LAG_HEADER = 'x-themis-replica-lag';

/** Throws INVALID_HEADER for a value other than primary or any. */
export function acceptsReplica(headers: IncomingHttpHeaders): boolean {
  const v = headers[READ_HEADER];
  if (v === undefined || v === 'primary') return false;
  if (v === 'any') return true;
  throw new ThemisError('INVALID_HEADER', `${READ_HEADER} must be "primary" (the default) or "any", not "${String(v).slice(0, 32)}"`);
}

export interface ReplicaState {
  /** This shard's follower of `primary`, when it is following (not copying, not failing). */
  following(primary: string): { lag: number } | undefined;
}

/** The lag to report when this shard may serve `key` as a replica, or undefined when it may not. */
export function replicaReadLag(topo: Topology, self: string, key: string, state: ReplicaState): number | undefined {
  const r = topo.rangeOfKey(key);
  if (r.owner === self || !r.replicas.includes(self)) return undefined;
  return state.following(r.owner)?.lag;
}
