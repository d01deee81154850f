// The sidecar's Prometheus metrics (prom-client), on its own registry so tests can create
// several sidecars in one process. Names follow the seed: themis_pki_events_total{event} …
import client from 'prom-client';
import { AUDIT_EVENTS } from '../audit/audit-log.js';

export class SidecarMetrics {
  readonly registry = new client.Registry();
  readonly pkiEvents = new client.Counter({ name: 'themis_pki_events_total', help: 'Security events by type (audit events)', labelNames: ['event'], registers: [this.registry] });
  readonly rejections = new client.Counter({ name: 'themis_mesh_rejections_total', help: 'Requests refused by a mesh stage, by stage and error code', labelNames: ['stage', 'code'], registers: [this.registry] });
  readonly handshakes = new client.Counter({ name: 'themis_mtls_handshakes_total', help: 'Mesh-port TLS handshakes by result and reason', labelNames: ['result', 'reason'], registers: [this.registry] });
  readonly requests = new client.Counter({ name: 'themis_requests_total', help: 'Requests served, by listener, operation and result class', labelNames: ['listener', 'operation', 'result'], registers: [this.registry] });
  readonly duration = new client.Histogram({
    name: 'themis_request_duration_seconds',
    help: 'Request latency by listener and operation',
    labelNames: ['listener', 'operation'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly listenerLimits = new client.Counter({
    name: 'themis_listener_limits_total',
    help: 'Connections closed and requests refused by a listener limit, by listener (app, mesh, admin) and limit (max_connections, first_request_timeout, idle_timeout, body_timeout, body_budget)',
    labelNames: ['listener', 'limit'],
    registers: [this.registry],
  });
  readonly topologyRejections = new client.Counter({ name: 'themis_topology_rejections_total', help: 'Topologies refused (invalid, or older than the one in force)', registers: [this.registry] });
  readonly topologyEpoch = new client.Gauge({ name: 'themis_topology_epoch', help: 'Epoch of the topology this sidecar routes by', registers: [this.registry] });
  /** notAfter (ms) of this shard's certificate and of every peer shard's seen. */
  private readonly notAfter = new Map<string, number>();
  private now: () => number = () => Date.now();
  // The seed names this themis_certificate_expiry_days; Prometheus' conventions (and
  // `promtool check metrics`) require the base unit, so it is exported in seconds.
  readonly certExpiry = new client.Gauge({
    name: 'themis_certificate_expiry_seconds',
    help: 'Seconds until a certificate expires (this shard and every peer shard seen), computed at scrape time',
    labelNames: ['shard_id'],
    registers: [this.registry],
    collect: () => {
      for (const [shard, t] of this.notAfter) this.certExpiry.set({ shard_id: shard }, Math.round((t - this.now()) / 1000));
    },
  });
  // The seed's own name, for its alert `themis_certificate_expiry_days < 30`; promtool's lint
  // flags the unit (docs/sidecar.md says why both exist).
  readonly certExpiryDays = new client.Gauge({
    name: 'themis_certificate_expiry_days',
    help: 'Days (fractional) until a certificate expires: themis_certificate_expiry_seconds / 86400',
    labelNames: ['shard_id'],
    registers: [this.registry],
    collect: () => {
      for (const [shard, t] of this.notAfter) this.certExpiryDays.set({ shard_id: shard }, Math.round((t - this.now()) / 86_400) / 1000);
    },
  });
  private anchors: readonly { subject: string; serial: string; notAfter: number }[] = [];
  readonly trustAnchorExpiry = new client.Gauge({
    name: 'themis_trust_anchor_expiry_seconds',
    help: 'Seconds until each trusted root certificate (tls.ca) expires; past it no chain verifies',
    labelNames: ['subject', 'serial'],
    registers: [this.registry],
    collect: () => {
      this.trustAnchorExpiry.reset();
      for (const a of this.anchors) this.trustAnchorExpiry.set({ subject: a.subject, serial: a.serial }, Math.round((a.notAfter - this.now()) / 1000));
    },
  });
  private crlDeadlines: readonly { issuer: string; nextUpdate: number }[] = [];
  readonly crlExpiry = new client.Gauge({
    name: 'themis_crl_expiry_seconds',
    help: "Seconds until each CA's CRL in force reaches its nextUpdate (negative once past: chains through that CA fail closed)",
    labelNames: ['issuer'],
    registers: [this.registry],
    collect: () => {
      this.crlExpiry.reset();
      for (const c of this.crlDeadlines) this.crlExpiry.set({ issuer: c.issuer }, Math.round((c.nextUpdate - this.now()) / 1000));
    },
  });
  readonly auditWriteErrors = new client.Counter({ name: 'themis_audit_write_errors_total', help: 'Audit trail writes or fsyncs that failed (disk full, I/O error)', registers: [this.registry] });
  readonly crlNextUpdate = new client.Gauge({ name: 'themis_crl_next_update_timestamp_seconds', help: 'Earliest nextUpdate of the CRLs in force (Unix seconds); past it, chains through that CA fail closed', registers: [this.registry] });
  private peerStateSource: () => Record<string, string> = () => ({});
  readonly peerSessions = new client.Gauge({
    name: 'themis_peer_session_state',
    help: 'Outgoing session to each peer sidecar: 1 for its current state (idle, connecting, ready, backoff, closed)',
    labelNames: ['peer', 'state'],
    registers: [this.registry],
    collect: () => {
      this.peerSessions.reset();
      for (const [peer, state] of Object.entries(this.peerStateSource())) this.peerSessions.set({ peer, state }, 1);
    },
  });
  readonly crlSize = new client.Gauge({ name: 'themis_crl_size_bytes', help: 'Total size of the CRLs in force', registers: [this.registry] });
  readonly crlNumber = new client.Gauge({ name: 'themis_crl_number', help: 'CRL number in force per issuing CA (from the CRL files or etcd, the higher)', labelNames: ['issuer'], registers: [this.registry] });
  readonly crlRejections = new client.Counter({ name: 'themis_crl_rejections_total', help: 'CRLs from etcd refused (malformed, unknown_issuer, bad_signature, no_crl_number, not_newer)', labelNames: ['reason'], registers: [this.registry] });
  private staleCrlCount: () => number = () => 0;
  readonly crlExpired: client.Gauge = new client.Gauge({
    name: 'themis_crl_expired',
    help: 'CRLs in force whose nextUpdate has passed; chains through their CA fail closed until a fresh CRL arrives',
    registers: [this.registry],
    collect: () => {
      this.crlExpired.set(this.staleCrlCount());
    },
  });

  private renewalGauges: { enabled: client.Gauge; failures: client.Gauge; next: client.Gauge; remaining: client.Gauge; renewals: client.Counter } | undefined;

  /** Exported only by sidecars that renew their own certificate (tls.renewal), so the alerts can tell. */
  renewal(shardId: string, remaining: () => number): NonNullable<SidecarMetrics['renewalGauges']> {
    if (!this.renewalGauges) {
      const r = [this.registry];
      this.renewalGauges = {
        enabled: new client.Gauge({ name: 'themis_certificate_renewal_enabled', help: '1: this sidecar renews its own certificate (tls.renewal)', labelNames: ['shard_id'], registers: r }),
        failures: new client.Gauge({ name: 'themis_certificate_renewal_failures', help: 'Renewal attempts failed in a row (0 after a success)', labelNames: ['shard_id'], registers: r }),
        next: new client.Gauge({ name: 'themis_certificate_renewal_next_timestamp_seconds', help: 'When the next renewal attempt is due (Unix seconds)', labelNames: ['shard_id'], registers: r }),
        remaining: new client.Gauge({
          name: 'themis_certificate_lifetime_remaining_ratio', help: "Share of this sidecar's certificate lifetime still ahead (1 at issue, 0 at expiry)", labelNames: ['shard_id'], registers: r,
          collect() {
            this.set({ shard_id: shardId }, Math.round(remaining() * 1000) / 1000);
          },
        }),
        renewals: new client.Counter({ name: 'themis_certificate_renewals_total', help: 'Renewal attempts by result: renewed, refused (the service said no), failed (unreachable, bad answer)', labelNames: ['shard_id', 'result'], registers: r }),
      };
      this.renewalGauges.enabled.set({ shard_id: shardId }, 1);
      for (const result of ['renewed', 'refused', 'failed']) this.renewalGauges.renewals.inc({ shard_id: shardId, result }, 0);
    }
    return this.renewalGauges;
  }

  constructor() {
    client.collectDefaultMetrics({ register: this.registry });
    // prom-client names these gauges *_total, which Prometheus reserves for counters.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      this.registry.removeSingleMetric(name);
    }
    // Every audit event is exported from the start, at 0, so rate() and increase() work.
    for (const event of AUDIT_EVENTS) this.pkiEvents.inc({ event }, 0);
  }

  /** Records a certificate's expiry; the gauge is computed from it at each scrape. */
  certificateSeen(shardId: string, notAfterMs: number, clock?: { now(): number }): void {
    this.notAfter.set(shardId, notAfterMs);
    if (clock) this.now = () => clock.now();
  }

  /** The trusted roots and each CA's CRL deadline; the gauges are computed from them at each scrape. */
  trustSeen(anchors: readonly { subject: string; serial: string; notAfter: number }[], crls: readonly { issuer: string; nextUpdate: number }[]): void {
    this.anchors = anchors;
    this.crlDeadlines = crls;
  }

  /** Exported only by sidecars configured with etcd, so file-only setups raise no etcd alert. */
  etcdConnected(): client.Gauge {
    this.etcdGauge ??= new client.Gauge({ name: 'themis_etcd_connected', help: '1 while etcd answers this sidecar (registration, lease keepalives), 0 when it does not', registers: [this.registry] });
    return this.etcdGauge;
  }
  private etcdGauge: client.Gauge | undefined;

  /** How the CRL-expiry gauge counts the stale CRLs in force, at scrape time. */
  setStaleCrlCount(fn: () => number): void {
    this.staleCrlCount = fn;
  }

  /** Where the peer-session gauge reads states from at scrape time. */
  setPeerStateSource(fn: () => Record<string, string>): void {
    this.peerStateSource = fn;
  }

  /**
   * Counts a request and observes its latency when its response finishes. The caller sets
   * `operation` on the returned record once it knows it.
   */
  track(listener: 'app' | 'mesh', res: { statusCode: number; headersSent: boolean; once(event: 'finish', fn: () => void): unknown }): { operation: string } {
    const started = performance.now();
    const rec = { operation: 'unknown' };
    // HTTP/2's compatibility layer finishes a stream reset before any answer too: not served.
    res.once('finish', () => {
      if (res.headersSent) this.served(listener, rec.operation, res.statusCode, started);
    });
    return rec;
  }

  /** Counts one answered request; `started` is its performance.now() on arrival. */
  served(listener: 'app' | 'mesh', operation: string, status: number, started: number): void {
    this.requests.inc({ listener, operation, result: `${Math.floor(status / 100)}xx` });
    this.duration.observe({ listener, operation }, (performance.now() - started) / 1000);
  }
}
