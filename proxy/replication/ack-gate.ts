// When a write on this shard counts as done: after the local storage node made it durable, the
// range's replicas must confirm they applied it, as many as `replication.ack` asks (all copies,
// a majority of copies with the primary counted, or the primary alone). Otherwise the write is
// answered 503 REPLICATION_UNAVAILABLE naming the missing copies, never as done.
import { ThemisError } from '../../src/errors.js';
import type { TopologySource } from '../control/topology-source.js';
import { rangesDigest, replicaRanges } from '../../src/topology/replica-ranges.js';
import type { LocalHead } from './local-head.js';
import type { ReplicaPositions } from './positions.js';

export type AckMode = 'all' | 'majority' | 'primary';

export function copiesNeeded(mode: AckMode, copies: number): number {
  if (mode === 'primary') return 1;
  if (mode === 'all') return copies;
  return Math.floor(copies / 2) + 1;
}

export interface AckGateDeps {
  self: string;
  topology: TopologySource;
  positions: ReplicaPositions;
  head: LocalHead;
  mode: AckMode;
  timeoutMs: number;
  /** Each write refused for want of confirmations. */
  onRefused?: () => void;
}

export class AckGate {
  constructor(private readonly d: AckGateDeps) {}

  /** Replica confirmations a write to `key` needs now (0: done once the primary holds it). */
  private needed(key: string): number {
    return copiesNeeded(this.d.mode, this.d.topology.current().rangeOfKey(key).replicas.length + 1) - 1;
  }

  required(key: string): boolean {
    return this.needed(key) > 0;
  }

  /** Resolves once the write to `key` just made on this shard counts as done; throws otherwise. */
  async settle(key: string): Promise<void> {
    const needed = this.needed(key);
    if (needed <= 0) return;
    const topo = this.d.topology.current();
    const range = topo.rangeOfKey(key);
    const seq = await this.d.head.after();
    const replicas = new Map(range.replicas.map((r) => [r, rangesDigest(replicaRanges(topo, this.d.self, r))]));
    const holding = await this.d.positions.waitFor(replicas, needed, seq, this.d.timeoutMs);
    if (holding.length >= needed) return;
    const missing = range.replicas.filter((r) => !holding.includes(r));
    this.d.onRefused?.();
    throw new ThemisError('REPLICATION_UNAVAILABLE', `the write is durable on ${this.d.self} but only ${holding.length + 1} of ${needed + 1} required copies confirmed it within ${this.d.timeoutMs} ms; missing: ${missing.join(', ')}`, {
      missing_copies: missing,
    });
  }
}
