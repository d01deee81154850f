// /readyz: this sidecar's certificate is valid and not revoked, it has a topology, and its
// storage node answers /health (through the same upstream the request path uses), and as a
// replica it holds a first copy of every primary's ranges it replicates (until then its
// primaries cannot get a write acknowledged: the dev mesh and deployments wait for this).
import type { Clock } from '../src/runtime.js';
import type { Readiness } from './admin-listener.js';
import type { TopologySource } from './control/topology-source.js';
import type { LocalUpstream } from './local-upstream.js';
import type { TlsMaterial } from './tls-material.js';

export interface ReadinessDeps {
  material: () => TlsMaterial;
  topology: TopologySource;
  local: LocalUpstream;
  clock: Clock;
  /** Replica followers by primary: position -1 until the first copy is done. */
  followers?: () => Record<string, { state: string; position: number }>;
  /** With workers (the control process): how many serve, of how many configured. */
  workers?: () => { live: number; wanted: number };
}

export async function readiness(d: ReadinessDeps): Promise<Readiness> {
  const m = d.material();
  const cert = m.ownRevoked ? { ok: false, detail: m.ownRevoked } : { ok: d.clock.now() < m.notAfter.getTime(), detail: `expires ${m.notAfter.toISOString()}` };
  const storage = await d.local.request({ method: 'GET', path: '/health', headers: {}, timeoutMs: 1000 }).then(
    (up) => {
      up.body.resume();
      return { ok: up.status === 200, detail: `status ${up.status}` };
    },
    (e: Error) => ({ ok: false, detail: e.message }),
  );
  const followers = Object.entries(d.followers?.() ?? {});
  const copying = followers.filter(([, f]) => f.position < 0).map(([p]) => p);
  const replication = { ok: copying.length === 0, detail: copying.length ? `first copy not done yet from ${copying.join(', ')}` : `holds a copy from each of ${followers.length} primaries` };
  const w = d.workers?.();
  const checks = {
    certificate: cert, topology: { ok: true, detail: `epoch ${d.topology.current().epoch}` }, storage, replication,
    ...(w ? { workers: { ok: w.live === w.wanted, detail: `${w.live} of ${w.wanted} workers serve` } } : {}),
  };
  return { ready: Object.values(checks).every((c) => c.ok), checks };
}
