// GET /health as the sidecar answers it (app port, client apps and shard peers alike): this
// shard and the topology epoch it routes by.
import { servedBy } from './mesh-headers.js';
import type { Reply } from './respond.js';

export function answerHealth(reply: Reply, self: string, epoch: number): void {
  reply.json(200, { status: 'ok', shard: self, topology_epoch: epoch }, servedBy(self, epoch));
}
