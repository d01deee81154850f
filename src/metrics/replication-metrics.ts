// Replication's metrics, on the sidecar's registry: each replica follower's position and lag
// against its primary (changes and seconds), its full copies, and on the primary side how long
// ago each of its replicas last confirmed a position and how many writes were refused for want
// of confirmations. Alerts: deploy/prometheus/themis-alerts.yml (ReplicationLag, BelowReplicationFactor).
import client from 'prom-client';
import type { Clock } from '../runtime.js';

export class ReplicationMetrics {
  private readonly caughtUpAt = new Map<string, number>();
  private readonly behind = new Map<string, boolean>();

  readonly applied: client.Gauge;
  readonly lagChanges: client.Gauge;
  readonly fullCopies: client.Counter;
  readonly ackFailures: client.Counter;

  constructor(registry: client.Registry, clock: Clock, lastSeen: () => Record<string, number | undefined>) {
    this.applied = new client.Gauge({ name: 'themis_replica_applied_seq', help: "Sequence number of the primary's change feed this replica has applied, per primary", labelNames: ['primary'], registers: [registry] });
    this.lagChanges = new client.Gauge({ name: 'themis_replica_lag_changes', help: "Changes of the primary's feed this replica has not applied yet (sequence numbers behind), per primary", labelNames: ['primary'], registers: [registry] });
    const self = this;
    new client.Gauge({
      name: 'themis_replica_lag_seconds',
      help: 'Seconds since this replica last held everything its primary had (0 while caught up), per primary',
      labelNames: ['primary'],
      registers: [registry],
      collect() {
        this.reset();
        const now = clock.now();
        for (const [p, at] of self.caughtUpAt) this.set({ primary: p }, self.behind.get(p) ? (now - at) / 1000 : 0);
      },
    });
    this.fullCopies = new client.Counter({ name: 'themis_replica_full_copies_total', help: 'Full repair copies a replica follower made (first start, a changed range set, a source behind its checkpoint)', labelNames: ['primary'], registers: [registry] });
    this.ackFailures = new client.Counter({ name: 'themis_replication_ack_failures_total', help: 'Writes answered 503 REPLICATION_UNAVAILABLE: too few replicas confirmed them in time', registers: [registry] });
    new client.Gauge({
      name: 'themis_replication_replica_silence_seconds',
      help: "Seconds since each replica of this shard's ranges last confirmed a position (a silent replica leaves its ranges below their replication factor)",
      labelNames: ['replica'],
      registers: [registry],
      collect() {
        this.reset();
        const now = clock.now();
        for (const [r, at] of Object.entries(lastSeen())) this.set({ replica: r }, at === undefined ? 1e9 : (now - at) / 1000);
      },
    });
  }

  /** A follower applied a page: `position` of the primary's `latest`. */
  progress(primary: string, position: number, latest: number, now: number): void {
    this.applied.set({ primary }, position);
    this.lagChanges.set({ primary }, Math.max(0, latest - position));
    const behind = position < latest;
    if (!behind || !this.caughtUpAt.has(primary)) this.caughtUpAt.set(primary, now);
    this.behind.set(primary, behind);
  }
}
