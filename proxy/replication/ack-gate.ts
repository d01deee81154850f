// When a write on this shard counts as done: after the local storage node made it durable, the
// range's replicas must confirm they applied it, as many as `replication.ack` asks (all copies,
// a majority of copies with the primary counted, or the primary alone). Otherwise the write is
// answered 503 REPLICATION_UNAVAILABLE naming the missing copies, never as done.
import { ThemisError } from '../../src/errors.js';
import type { TopologySource } from '../control/topology-source.js';
import type { Topology } from '../../src/topology/topology.js';
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

/** What a write to one key must wait for, fixed by the topology it was routed by. */
export interface Pending {
  readonly key: string;
  readonly topo: Topology;
  readonly replicas: readonly string[];
  /** Replica confirmations needed (the primary itself is the first copy). */
  readonly needed: number;
}

export class AckGate {
  constructor(private readonly d: AckGateDeps) {}

  /** What a write to `key` routed by `topo` will need; `needed` 0: done once the primary holds it. */
  plan(key: string, topo: Topology): Pending {
    const replicas = topo.rangeOfKey(key).replicas;
    return { key, topo, replicas, needed: copiesNeeded(this.d.mode, replicas.length + 1) - 1 };
  }

  /** Resolves once the write just made on this shard counts as done; throws otherwise. */
  async settle(p: Pending): Promise<void> {
    if (p.needed <= 0) return;
    const seq = await this.d.head.after();
    const replicas = new Map(p.replicas.map((r) => [r, rangesDigest(replicaRanges(p.topo, this.d.self, r))]));
    const holding = await this.d.positions.waitFor(replicas, p.needed, seq, this.d.timeoutMs);
    // The range may have moved away while the write waited: then it is not this shard's to confirm.
    const owner = this.d.topology.current().ownerOfKey(p.key);
    if (holding.length >= p.needed && owner === this.d.self) return;
    this.d.onRefused?.();
    if (owner !== this.d.self) {
      throw new ThemisError('REPLICATION_UNAVAILABLE', `the key moved to ${owner} while its write waited for confirmations on ${this.d.self}; repeat it`, { missing_copies: [...p.replicas] });
    }
    const missing = p.replicas.filter((r) => !holding.includes(r));
    throw new ThemisError('REPLICATION_UNAVAILABLE', `the write is durable on ${this.d.self} but only ${holding.length + 1} of ${p.needed + 1} required copies confirmed it within ${this.d.timeoutMs} ms; missing: ${missing.join(', ')}`, {
      missing_copies: missing,
    });
  }
}
