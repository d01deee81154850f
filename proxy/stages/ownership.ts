// Stage: a request for one entity reaches this shard only if it owns the key's token at its
// topology epoch (421 NOT_OWNER, with the epoch, so the sender re-reads its topology). Queries,
// scans and the change feed are about this node's own data and pass.
import { ThemisError } from '../../src/errors.js';
import { parseJsonObject } from '../../src/http-body.js';
import type { MeshRequest, Stage } from './mesh-request.js';

function keyOf(r: MeshRequest): string | undefined {
  if (r.op.kind === 'entity') return r.op.rawKey;
  if (r.op.kind !== 'entity-post') return undefined;
  const key = parseJsonObject(r.body!, 'INVALID_BODY').key;
  if (typeof key !== 'string') throw new ThemisError('INVALID_BODY', 'a POST /entities between shards must carry "key"');
  return key;
}

/** A peer with `replicate` may read this node's copy of any key (a move's verification compares both copies). */
export const READ_COPY_HEADER = 'x-themis-read-copy';

export const ownership: Stage = (r, d) => {
  const key = keyOf(r);
  if (key === undefined) return;
  r.key = key;
  const topo = d.topology.current();
  r.topology = topo;
  // Not more than `replicate` already allows (a scan of every key): this node's copy, as it is.
  if (r.method === 'GET' && r.headers[READ_COPY_HEADER] === '1' && r.peer.identity.capabilities.includes('replicate')) return;
  if (topo.ownerOfKey(key) !== d.self) {
    throw new ThemisError('NOT_OWNER', `${d.self} does not own this key at topology epoch ${topo.epoch}`, { topology_epoch: topo.epoch });
  }
};
