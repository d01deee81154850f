// The ownership stage: a key this shard does not own is 421 NOT_OWNER — unless a peer with
// `replicate` asks for this node's copy (x-themis-read-copy: 1) with a GET, as a move's
// verification does; a write, or a peer without `replicate`, is still refused.
import t from 'tap';
import { TOKEN_MAX } from '../../../../src/hash.js';
import { Topology } from '../../../../src/topology/topology.js';
import { ownership, READ_COPY_HEADER } from '../../../../proxy/stages/ownership.js';
import type { MeshRequest, Stage } from '../../../../proxy/stages/mesh-request.js';

const topo = new Topology({ cluster: 'c', epoch: 3, vnodes: 0, shards: { a: {}, b: {} }, ranges: [{ start: 0n, end: TOKEN_MAX, owner: 'b', replicas: [] }] });
const deps = { self: 'a', topology: { current: () => topo } } as unknown as Parameters<Stage>[1];
const KEY = 'document.shop.orders:9f1c1d9e-4b7e-4f4e-8a55-0c7c2b6f0f11';

function req(method: string, capabilities: string[], headers: Record<string, string> = {}): MeshRequest {
  return { method, url: `/entities/${KEY}`, headers, peer: { identity: { capabilities } }, op: { kind: 'entity', rawKey: KEY, method } } as unknown as MeshRequest;
}

t.test('a key owned elsewhere is refused', async (t) => {
  t.throws(() => ownership(req('GET', ['read', 'replicate']), deps), { code: 'NOT_OWNER' });
});

t.test('a replicate peer may read this node\'s copy', async (t) => {
  t.doesNotThrow(() => ownership(req('GET', ['read', 'replicate'], { [READ_COPY_HEADER]: '1' }), deps));
});

t.test('but not write it, and not without replicate', async (t) => {
  t.throws(() => ownership(req('PUT', ['read', 'write', 'replicate'], { [READ_COPY_HEADER]: '1' }), deps), { code: 'NOT_OWNER' });
  t.throws(() => ownership(req('GET', ['read'], { [READ_COPY_HEADER]: '1' }), deps), { code: 'NOT_OWNER' });
});
