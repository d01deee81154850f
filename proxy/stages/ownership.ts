// Stage: a request for one entity reaches this shard only if it owns the key's token at its
// topology epoch (421 NOT_OWNER, with the epoch, so the sender re-reads its topology). A sender
// that routed by a newer epoch says so (x-themis-topology-epoch): before refusing, this shard
// reads its topology again, for up to a second, so a request crossing the moment the two learn
// of a cutover is served instead of refused. Queries, scans and the change feed are about this
// node's own data and pass.
import { ThemisError } from '../../src/errors.js';
import { parseJsonObject } from '../../src/http-body.js';
import { catchUp, senderEpoch } from '../control/catch-up.js';
import { EPOCH_HEADER } from '../mesh-headers.js';
import type { Topology } from '../../src/topology/topology.js';
import type { MeshRequest, Stage, StageDeps } from './mesh-request.js';

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
  const theirs = senderEpoch(r.headers[EPOCH_HEADER]);
  if (theirs === 'malformed') throw new ThemisError('INVALID_HEADER', `${EPOCH_HEADER} must be a topology epoch (decimal digits)`);
  if (topo.ownerOfKey(key) === d.self) return;
  if (theirs === undefined || theirs <= topo.epoch) throw notOwner(d.self, topo);
  return afterCatchUp(r, d, key, theirs);
};

async function afterCatchUp(r: MeshRequest, d: StageDeps, key: string, epoch: number): Promise<void> {
  await catchUp(d.topology, epoch);
  const topo = (r.topology = d.topology.current());
  if (topo.ownerOfKey(key) !== d.self) throw notOwner(d.self, topo);
}

function notOwner(self: string, topo: Topology): ThemisError {
  return new ThemisError('NOT_OWNER', `${self} does not own this key at topology epoch ${topo.epoch}`, { topology_epoch: topo.epoch });
}
