// Rebalancing's metrics: operations in progress (as every shard sees them), per operation and
// source the keys this shard copied and how many changes it is behind, each cutover's hold, and
// how this shard's cutovers and aborts ended. Audit events count in themis_pki_events_total{event=REBALANCE_*}.
import client from 'prom-client';

export interface RebalanceState {
  inProgress(): number;
  copies(): { op: string; source: string; keys: number; lag: number | null }[];
}

export class RebalanceMetrics {
  readonly holds: client.Histogram;
  readonly outcomes: client.Counter<'outcome'>;

  constructor(registry: client.Registry, state: RebalanceState) {
    new client.Gauge({
      name: 'themis_rebalance_operations_in_progress',
      help: 'Rebalance operations verified and not yet cut over, or cut over and not yet cleaned up (scatter-gather filters rows by ownership meanwhile)',
      registers: [registry],
      collect() {
        this.set(state.inProgress());
      },
    });
    new client.Gauge({
      name: 'themis_rebalance_copied_keys',
      help: 'Keys this shard copied as the target of an operation in progress, by operation and source',
      labelNames: ['op', 'source'],
      registers: [registry],
      collect() {
        this.reset();
        for (const c of state.copies()) this.set({ op: c.op, source: c.source }, c.keys);
      },
    });
    new client.Gauge({
      name: 'themis_rebalance_lag_changes',
      help: 'How many changes of the source\'s feed this shard has still to read as the target of an operation in progress',
      labelNames: ['op', 'source'],
      registers: [registry],
      collect() {
        this.reset();
        for (const c of state.copies()) if (c.lag !== null) this.set({ op: c.op, source: c.source }, c.lag);
      },
    });
    this.holds = new client.Histogram({
      name: 'themis_rebalance_cutover_hold_seconds',
      help: 'How long this shard held writes to the tokens it gave away, per cutover it took part in as a source',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    });
    this.outcomes = new client.Counter({
      name: 'themis_rebalance_outcomes_total',
      help: 'How operations this shard took part in ended here: done (cut over), stale, failed (verification), aborted',
      labelNames: ['outcome'],
      registers: [registry],
    });
  }
}
