// The ThemisDB-compatible consistent-hash ring: each shard has `vnodes` virtual nodes at
// XXH64("{shardId}#{i}", 0); a token belongs to the first vnode token ≥ it, wrapping.
// The ring only seeds topologies (src/topology); routing reads the topology.
import { xxh64 } from '../hash.js';
import { SortedTokens } from './token-search.js';

export const DEFAULT_VNODES = 150;

export interface VNode {
  readonly token: bigint;
  readonly shard: string;
}

export class HashRing {
  readonly shards: readonly string[];
  readonly vnodesPerShard: number;
  /** All virtual nodes in ring order. */
  readonly vnodes: readonly VNode[];
  private readonly search: SortedTokens;
  private readonly owners: readonly string[];

  constructor(shardIds: readonly string[], vnodesPerShard = DEFAULT_VNODES) {
    if (shardIds.length === 0) throw new RangeError('a ring needs at least one shard');
    if (new Set(shardIds).size !== shardIds.length) throw new RangeError('shard ids must be unique');
    if (!Number.isInteger(vnodesPerShard) || vnodesPerShard < 1 || vnodesPerShard > 10_000) {
      throw new RangeError('vnodes per shard must be an integer from 1 to 10000');
    }
    this.shards = Object.freeze([...shardIds].sort());
    this.vnodesPerShard = vnodesPerShard;
    const vnodes: VNode[] = [];
    for (const shard of this.shards) {
      for (let i = 0; i < vnodesPerShard; i++) vnodes.push({ token: xxh64(`${shard}#${i}`), shard });
    }
    // Ties between equal vnode tokens (never seen in practice) go to the smaller shard id.
    vnodes.sort((a, b) => (a.token < b.token ? -1 : a.token > b.token ? 1 : a.shard < b.shard ? -1 : 1));
    this.vnodes = Object.freeze(vnodes);
    this.search = new SortedTokens(vnodes.map((v) => v.token));
    this.owners = Object.freeze(vnodes.map((v) => v.shard));
  }

  /** Index of the vnode that owns `token` (first vnode token ≥ token, wrapping to 0). */
  vnodeIndexOf(token: bigint): number {
    const i = this.search.lowerBound(token);
    return i === this.owners.length ? 0 : i;
  }

  ownerOf(token: bigint): string {
    return this.owners[this.vnodeIndexOf(token)]!;
  }

  /**
   * The owner of vnode `index` followed by the next distinct shards clockwise:
   * the owner and up to `replicas` replica candidates.
   */
  preferenceList(index: number, replicas: number): string[] {
    const out: string[] = [];
    const want = Math.min(replicas + 1, this.shards.length);
    for (let step = 0; out.length < want && step < this.owners.length; step++) {
      const s = this.owners[(index + step) % this.owners.length]!;
      if (!out.includes(s)) out.push(s);
    }
    return out;
  }
}
