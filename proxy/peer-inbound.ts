// Requests from shard peers that passed every mesh stage: served from this shard's own storage
// node and nothing else. This module is given no peer pool, resolver or router, so a peer's
// request can never be forwarded further (no loops): a test checks its imports stay that way.
import type { LocalUpstream } from './local-upstream.js';
import { isEntityWrite } from './operations.js';
import type { AckGate } from './replication/ack-gate.js';
import { APPLIED_HEADER, type ReplicaPositions } from './replication/positions.js';
import { writeLocally, type HoldCheck } from './replication/replicated-write.js';
import { answerHealth } from './health.js';
import { servedBy } from './mesh-headers.js';
import type { Reply } from './respond.js';
import type { MeshRequest } from './stages/mesh-request.js';
import type { TopologySource } from './control/topology-source.js';

export interface PeerInboundDeps {
  self: string;
  topology: TopologySource;
  local: LocalUpstream;
  /** Writes count as done only when the range's replicas confirm them. */
  gate: AckGate;
  /** Replicas announce their positions on the change-feed requests they make. */
  positions: Pick<ReplicaPositions, 'record'>;
  /** A range move's cutover may hold writes; one whose key moved meanwhile is answered 421. */
  hold?: HoldCheck;
  /** Move targets announce their positions on their change-feed requests too. */
  onFeedRequest?: (shard: string, headers: Record<string, string | string[] | undefined>) => void;
}

export class PeerInbound {
  constructor(private readonly d: PeerInboundDeps) {}

  async deliver(r: MeshRequest, reply: Reply): Promise<void> {
    const epoch = this.d.topology.current().epoch;
    const op = r.op;
    if (op.kind === 'health') return answerHealth(reply, this.d.self, epoch);
    if (op.kind === 'changefeed') {
      this.d.positions.record(r.peer.identity.shardId, r.headers[APPLIED_HEADER]);
      this.d.onFeedRequest?.(r.peer.identity.shardId, r.headers);
    }
    if (isEntityWrite(op)) return writeLocally(this.d.local, this.d.gate, r.key!, r.topology!, { method: r.method, url: r.url, headers: r.headers, body: r.body }, reply, servedBy(this.d.self, epoch), this.d.hold);
    reply.upstream(await this.d.local.forward(r.method, r.url, r.headers, r.body), servedBy(this.d.self, epoch));
  }
}
