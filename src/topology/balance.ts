// Balance of a topology as a user feels it: each shard's share of the token space and of
// a sample of keys, with the spread (standard deviation relative to the mean) and max/mean.
// (ThemisDB's own figure is the spread of vnode counts, which is always 0.)
import { xxh64 } from '../hash.js';
import type { Topology } from './topology.js';

export interface ShardShare {
  shard: string;
  tokenShare: number;
  keys: number;
  keyShare: number;
}

export interface Spread {
  /** Standard deviation relative to the mean (coefficient of variation). */
  relStdDev: number;
  maxOverMean: number;
}

export interface Balance {
  shards: ShardShare[];
  tokens: Spread;
  keys: Spread;
  sampleSize: number;
}

const SPACE = 2 ** 64;

/** `sampleUuids` are hashed like entity keys (XXH64 of the uuid). */
export function measureBalance(t: Topology, sampleUuids: readonly string[]): Balance {
  const ids = Object.keys(t.shards).sort();
  const tokenCount = new Map<string, number>(ids.map((s) => [s, 0]));
  for (const r of t.ranges) tokenCount.set(r.owner, tokenCount.get(r.owner)! + Number(r.end - r.start + 1n));
  const keyCount = new Map<string, number>(ids.map((s) => [s, 0]));
  for (const u of sampleUuids) {
    const owner = t.ownerOf(xxh64(u));
    keyCount.set(owner, keyCount.get(owner)! + 1);
  }
  const n = Math.max(sampleUuids.length, 1);
  const shards = ids.map((shard) => ({
    shard,
    tokenShare: tokenCount.get(shard)! / SPACE,
    keys: keyCount.get(shard)!,
    keyShare: keyCount.get(shard)! / n,
  }));
  return {
    shards,
    tokens: spread(shards.map((s) => s.tokenShare)),
    keys: spread(shards.map((s) => s.keyShare)),
    sampleSize: sampleUuids.length,
  };
}

export function spread(values: readonly number[]): Spread {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  if (mean === 0) return { relStdDev: 0, maxOverMean: 0 };
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length;
  return { relStdDev: Math.sqrt(variance) / mean, maxOverMean: Math.max(...values) / mean };
}
