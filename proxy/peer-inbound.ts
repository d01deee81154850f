// Requests from shard peers that passed every mesh stage: served from this shard's own storage
// node and nothing else. This module is given no peer pool, resolver or router, so a peer's
// request can never be forwarded further (no loops): a test checks its imports stay that way.
import type { LocalUpstream } from './local-upstream.js';
import { answerHealth } from './health.js';
import { servedBy } from './mesh-headers.js';
import type { Reply } from './respond.js';
import type { MeshRequest } from './stages/mesh-request.js';
import type { TopologySource } from './control/topology-source.js';

export interface PeerInboundDeps {
  self: string;
  topology: TopologySource;
  local: LocalUpstream;
}

export class PeerInbound {
  constructor(private readonly d: PeerInboundDeps) {}

  async deliver(r: MeshRequest, reply: Reply): Promise<void> {
    const epoch = this.d.topology.current().epoch;
    if (r.op.kind === 'health') return answerHealth(reply, this.d.self, epoch);
    reply.upstream(await this.d.local.forward(r.method, r.url, r.headers, r.body), servedBy(this.d.self, epoch));
  }
}
