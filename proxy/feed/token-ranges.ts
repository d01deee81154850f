// A set of token ranges (inclusive ends), and whether an entity key falls in it: what a
// follower copies and applies, what a digest compares.
import { parseKey, tokenOf } from '../../src/urn/urn.js';

export interface TokenRange {
  start: bigint;
  end: bigint;
}

export class TokenRanges {
  private readonly ranges: readonly TokenRange[];

  constructor(ranges: readonly TokenRange[]) {
    this.ranges = [...ranges].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  }

  get list(): readonly TokenRange[] {
    return this.ranges;
  }

  hasToken(token: bigint): boolean {
    for (const r of this.ranges) if (token >= r.start && token <= r.end) return true;
    return false;
  }

  /** For a `table:uuid` key from a node's scan or change feed; a key that does not parse is not ours. */
  hasKey(key: string): boolean {
    try {
      return this.hasToken(tokenOf(parseKey(key)));
    } catch {
      return false;
    }
  }

  equals(other: TokenRanges): boolean {
    return this.ranges.length === other.ranges.length && this.ranges.every((r, i) => r.start === other.ranges[i]!.start && r.end === other.ranges[i]!.end);
  }
}
