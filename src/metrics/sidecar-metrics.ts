// The sidecar's Prometheus metrics (prom-client), on its own registry so tests can create
// several sidecars in one process. Names follow the seed: themis_pki_events_total{event} …
import client from 'prom-client';

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
  readonly topologyEpoch = new client.Gauge({ name: 'themis_topology_epoch', help: 'Epoch of the topology this sidecar routes by', registers: [this.registry] });
  readonly certExpiryDays = new client.Gauge({ name: 'themis_certificate_expiry_days', help: 'Days until a certificate expires (this shard and every peer seen)', labelNames: ['shard_id'], registers: [this.registry] });
  readonly auditWriteErrors = new client.Counter({ name: 'themis_audit_write_errors_total', help: 'Audit trail writes or fsyncs that failed (disk full, I/O error)', registers: [this.registry] });
  readonly crlSize = new client.Gauge({ name: 'themis_crl_size_bytes', help: 'Total size of the CRLs in force', registers: [this.registry] });

  constructor() {
    client.collectDefaultMetrics({ register: this.registry });
  }

  /**
   * Counts a request and observes its latency when its response finishes. The caller sets
   * `operation` on the returned record once it knows it.
   */
  track(listener: 'app' | 'mesh', res: { statusCode: number; once(event: 'finish', fn: () => void): unknown }): { operation: string } {
    const started = performance.now();
    const rec = { operation: 'unknown' };
    res.once('finish', () => {
      this.requests.inc({ listener, operation: rec.operation, result: `${Math.floor(res.statusCode / 100)}xx` });
      this.duration.observe({ listener, operation: rec.operation }, (performance.now() - started) / 1000);
    });
    return rec;
  }
}
