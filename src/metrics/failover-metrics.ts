// Failover's metrics: the groups this sidecar is acting primary of, how long its failover lease
// is certainly alive for (0: it acknowledges no write in a replicated range), and the failovers
// it completed as the new primary. Audit events count in themis_pki_events_total{event=FAILOVER_*}.
import client from 'prom-client';

export class FailoverMetrics {
  readonly failovers: client.Counter;

  constructor(registry: client.Registry, state: () => { acting: number; leaseRemainingMs: number }) {
    new client.Gauge({
      name: 'themis_failover_acting_groups',
      help: 'Replica groups this sidecar is the acting primary of (holding their term on a live lease)',
      registers: [registry],
      collect() {
        this.set(state().acting);
      },
    });
    new client.Gauge({
      name: 'themis_failover_lease_remaining_seconds',
      help: 'How long this sidecar\'s failover lease is certainly alive by its own clock (0: it acknowledges no write in a replicated range)',
      registers: [registry],
      collect() {
        this.set(state().leaseRemainingMs / 1000);
      },
    });
    this.failovers = new client.Counter({ name: 'themis_failovers_total', help: 'Failovers this sidecar completed by taking over a replica group as its new acting primary', registers: [registry] });
  }
}
