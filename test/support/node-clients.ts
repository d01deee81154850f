// NodeClients for tests that drive the change-feed follower against storage nodes directly,
// each on its own LocalUpstream pool; close() releases them all.
import { NodeClient } from '../../proxy/feed/node-client.js';
import { LocalUpstream } from '../../proxy/local-upstream.js';

export function nodeClients(): { client: (node: { url: string }) => NodeClient; close: () => void } {
  const upstreams: LocalUpstream[] = [];
  return {
    client: (node) => {
      const u = new LocalUpstream({ url: node.url, requestTimeoutMs: 5000 });
      upstreams.push(u);
      return new NodeClient(u);
    },
    close: () => upstreams.forEach((u) => u.close()),
  };
}
