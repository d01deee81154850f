// Deleting the copies a replica no longer holds. When a new topology drops this shard from a
// range's replicas (a `shard add` hands part of the replicas to the newcomer, a `shard remove`
// or a publish moves them), nothing else deletes its copy: the owner's cleanup only covers what
// the owner gave away. After a grace period the dropped tokens are swept from the storage node,
// unless by then this shard holds them again (the topology then in force) or a move is bringing
// them back. Its replica follower for them stopped when the topology changed.
import type { Logger } from '../../src/log.js';
import { droppedReplicaSpans, type TokenSpan } from '../../src/topology/replica-ranges.js';
import type { Topology } from '../../src/topology/topology.js';
import type { TopologySource } from '../control/topology-source.js';
import type { NodeClient } from '../feed/node-client.js';
import { TokenRanges } from '../feed/token-ranges.js';
import { servedBy, sweep } from '../rebalance/sweep.js';

export interface RetiredCopiesDeps {
  self: string;
  /** The signed topology: replica lists change only with it (failover moves owners among the copies). */
  signed: TopologySource;
  node: NodeClient;
  /** Ranges moves in progress are bringing to this shard. */
  incoming: () => readonly TokenSpan[];
  delayMs: number;
  log: Logger;
  onSwept?: (deleted: number) => void;
}

export class RetiredCopies {
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;

  constructor(private readonly d: RetiredCopiesDeps) {}

  start(): void {
    this.d.signed.onChange((next, prev) => this.changed(prev, next));
  }

  private changed(prev: Topology, next: Topology): void {
    const spans = droppedReplicaSpans(prev, next, this.d.self);
    if (spans.length && !this.stopped) this.later(spans, next.epoch, this.d.delayMs);
  }

  private later(spans: TokenSpan[], epoch: number, ms: number): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      void this.sweep(spans, epoch);
    }, ms);
    timer.unref();
    this.timers.add(timer);
  }

  private async sweep(spans: TokenSpan[], epoch: number): Promise<void> {
    if (this.stopped) return;
    const keep = servedBy(this.d.signed.current(), this.d.self, this.d.incoming);
    const ranges = new TokenRanges(spans.map((s) => ({ ...s, owner: this.d.self, replicas: [] })));
    try {
      const deleted = await sweep(this.d.node, ranges, keep);
      this.d.onSwept?.(deleted);
      this.d.log.info({ epoch, spans: spans.length, deleted }, 'deleted the copies of ranges this shard no longer replicates');
    } catch (e) {
      this.d.log.warn({ epoch, err: (e as Error).message }, 'deleting the copies of dropped replica ranges failed; retrying later');
      this.later(spans, epoch, 5000);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
