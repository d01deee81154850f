// /readyz: this sidecar's certificate is valid and not revoked, it has a topology, and its
// storage node answers /health (through the same upstream the request path uses).
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
  const checks = { certificate: cert, topology: { ok: true, detail: `epoch ${d.topology.current().epoch}` }, storage };
  return { ready: Object.values(checks).every((c) => c.ok), checks };
}
