// Who serves shard X: this shard's own storage node, or the peer session to X's sidecar at the
// endpoint the current topology names. The router, scatter-gather and (later) replication and
// range movement all ask here; nothing else looks up endpoints or sessions.
import { ThemisError } from '../src/errors.js';
import type { LocalUpstream } from './local-upstream.js';
import type { PeerPool } from './peer-pool.js';
import type { PeerSession } from './peer-session.js';
import type { TopologySource } from './control/topology-source.js';

export type Resolved = { local: true; shard: string; upstream: LocalUpstream } | { local: false; shard: string; upstream: PeerSession };

export interface ResolverDeps {
  self: string;
  topology: TopologySource;
  local: LocalUpstream;
  peers: PeerPool;
}

export class ShardResolver {
  constructor(private readonly d: ResolverDeps) {}

  /** This shard's own storage node. */
  get local(): LocalUpstream {
    return this.d.local;
  }

  /**
   * Throws UPSTREAM_UNAVAILABLE when the topology names no endpoint for a remote shard and no
   * `fallback` is given (a shard being added is named only by the operation that adds it).
   */
  resolve(shard: string, fallback?: string): Resolved {
    if (shard === this.d.self) return { local: true, shard, upstream: this.d.local };
    const topo = this.d.topology.current();
    const endpoint = topo.shards[shard]?.endpoint ?? fallback;
    if (!endpoint) throw new ThemisError('UPSTREAM_UNAVAILABLE', `the topology (epoch ${topo.epoch}) names no endpoint for ${shard}`, { upstream: shard });
    return { local: false, shard, upstream: this.d.peers.get(shard, endpoint) };
  }
}
