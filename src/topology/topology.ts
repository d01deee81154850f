// A topology: an immutable, versioned (epoch) list of contiguous token ranges that covers
// all 2^64 tokens exactly once, each with an owner shard and replicas. Routing reads this,
// never the ring. Lookup is a binary search that allocates nothing.
import { TOKEN_MAX } from '../hash.js';
import { parseKey, tokenOf } from '../urn/urn.js';
import { SortedTokens } from '../ring/token-search.js';

export interface TokenRange {
  /** Inclusive bounds. */
  readonly start: bigint;
  readonly end: bigint;
  readonly owner: string;
  readonly replicas: readonly string[];
}

export interface ShardInfo {
  /** Mesh endpoint `host:port` of the shard's sidecar, when known. */
  readonly endpoint?: string;
  readonly datacenter?: string;
}

export class TopologyError extends Error {
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`topology: ${field}: ${problem}`);
    this.name = 'TopologyError';
  }
}

export const SHARD_ID_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export interface TopologyInit {
  cluster: string;
  epoch: number;
  vnodes: number;
  shards: Record<string, ShardInfo>;
  ranges: readonly TokenRange[];
}

export class Topology {
  readonly cluster: string;
  readonly epoch: number;
  readonly vnodes: number;
  readonly shards: Readonly<Record<string, ShardInfo>>;
  readonly ranges: readonly TokenRange[];
  private readonly ends: SortedTokens;

  /** Validates coverage; throws TopologyError naming the first problem. */
  constructor(init: TopologyInit) {
    if (!init.cluster) throw new TopologyError('cluster', 'must be a non-empty string');
    if (!Number.isSafeInteger(init.epoch) || init.epoch < 0) {
      throw new TopologyError('epoch', 'must be a non-negative integer');
    }
    for (const id of Object.keys(init.shards)) {
      if (!SHARD_ID_RE.test(id)) throw new TopologyError(`shards.${id}`, 'shard id must match [a-z0-9][a-z0-9_-]*');
    }
    const ranges = init.ranges;
    if (ranges.length === 0) throw new TopologyError('ranges', 'must cover the token space; it is empty');
    let expected = 0n;
    ranges.forEach((r, i) => {
      const at = `ranges[${i}]`;
      if (r.start !== expected) {
        throw new TopologyError(
          `${at}.start`,
          r.start > expected ? `gap before this range (tokens from ${expected} are unowned)` : 'overlaps the previous range',
        );
      }
      if (r.end < r.start || r.end > TOKEN_MAX) throw new TopologyError(`${at}.end`, 'must be ≥ start and < 2^64');
      if (!(r.owner in init.shards)) throw new TopologyError(`${at}.owner`, `"${r.owner}" is not listed in shards`);
      for (const rep of r.replicas) {
        if (!(rep in init.shards)) throw new TopologyError(`${at}.replicas`, `"${rep}" is not listed in shards`);
        if (rep === r.owner) throw new TopologyError(`${at}.replicas`, 'the owner cannot also be a replica');
      }
      if (new Set(r.replicas).size !== r.replicas.length) throw new TopologyError(`${at}.replicas`, 'has duplicates');
      expected = r.end + 1n;
    });
    if (expected !== TOKEN_MAX + 1n) {
      throw new TopologyError(`ranges[${ranges.length - 1}].end`, 'the last range must end at 0xffffffffffffffff');
    }
    this.cluster = init.cluster;
    this.epoch = init.epoch;
    this.vnodes = init.vnodes;
    this.shards = Object.freeze(Object.fromEntries(Object.entries(init.shards).map(([k, v]) => [k, Object.freeze({ ...v })])));
    this.ranges = Object.freeze(ranges.map((r) => Object.freeze({ ...r, replicas: Object.freeze([...r.replicas]) })));
    this.ends = new SortedTokens(this.ranges.map((r) => r.end));
  }

  /** Index of the range holding `token`: O(log n), no allocation. */
  rangeIndexOf(token: bigint): number {
    return this.ends.lowerBound(token);
  }

  rangeOf(token: bigint): TokenRange {
    return this.ranges[this.ends.lowerBound(token)]!;
  }

  ownerOf(token: bigint): string {
    return this.ranges[this.ends.lowerBound(token)]!.owner;
  }

  /** The range of an entity key (URN or table:uuid); throws INVALID_KEY for a malformed one. */
  rangeOfKey(key: string): TokenRange {
    return this.rangeOf(tokenOf(parseKey(key)));
  }

  /** The owner of an entity key (URN or table:uuid); throws INVALID_KEY for a malformed one. */
  ownerOfKey(key: string): string {
    return this.ownerOf(tokenOf(parseKey(key)));
  }

  /** Shard ids that own at least one range. */
  owners(): string[] {
    return [...new Set(this.ranges.map((r) => r.owner))].sort();
  }

  /** A copy with another epoch (and optionally other shard details). */
  withEpoch(epoch: number, shards: Record<string, ShardInfo> = this.shards): Topology {
    return new Topology({ cluster: this.cluster, epoch, vnodes: this.vnodes, shards, ranges: this.ranges });
  }
}
