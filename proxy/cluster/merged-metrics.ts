// One /metrics for a sidecar with workers: the control process's own registry, with the
// workers' counters and histograms added in (prom-client's AggregatorRegistry sums them). Their
// gauges are left out but for the peer sessions (each worker holds its own): topology epoch,
// certificate and CRL gauges describe the host and come from the control process, which follows
// the same etcd keys and files; each worker's epoch is themis_worker_topology_epoch.
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';

/** Gauges that add up over processes. */
const SUMMED_GAUGES = new Set(['themis_peer_session_state']);

type Json = MetricObjectWithValues<MetricValue<string>>;

export async function mergedMetrics(own: Registry, workers: readonly unknown[][]): Promise<string> {
  const theirs = workers.map((w) => (w as Json[]).filter((m) => String(m.type) !== 'gauge' || SUMMED_GAUGES.has(m.name)));
  return AggregatorRegistry.aggregate([await own.getMetricsAsJSON(), ...theirs]).metrics();
}
