// The headers the mesh adds to every answer: which shard served it and at which topology
// epoch. Their own module so that the router and scatter-gather need not import each other.
export const SHARD_HEADER = 'x-themis-shard';
export const EPOCH_HEADER = 'x-themis-topology-epoch';

export function servedBy(shard: string, epoch: number): Record<string, string> {
  return { [SHARD_HEADER]: shard, [EPOCH_HEADER]: String(epoch) };
}
