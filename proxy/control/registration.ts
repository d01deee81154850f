// This sidecar's registration in etcd (shards/{id}/certificate, endpoint, leased alive key),
// made from its current TLS material and bound mesh address; drives themis_etcd_connected.
import { X509Certificate } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { Registration } from '../../src/control/registration.js';
import type { Logger } from '../../src/log.js';
import type { SidecarMetrics } from '../../src/metrics/sidecar-metrics.js';
import type { TlsMaterial } from '../tls-material.js';

/** What the registration says of the certificate in `m`. */
export function registeredCertificate(m: TlsMaterial) {
  return {
    certPem: m.certChain, // leaf + cluster CA, so anyone with the root can verify it
    serial: m.serial,
    notBefore: new Date(new X509Certificate(m.certChain).validFrom).toISOString(),
    notAfter: m.notAfter.toISOString(),
    capabilities: m.identity.capabilities,
  };
}

export function registerSidecar(etcd: Etcd3, o: { cluster: string; shardId: string; material: TlsMaterial; mesh: { address: string; port: number }; metrics: SidecarMetrics; log: Logger }): Registration {
  const m = o.material;
  const gauge = o.metrics.etcdConnected();
  gauge.set(0);
  const registration = new Registration(
    etcd,
    {
      cluster: o.cluster,
      shardId: o.shardId,
      ...registeredCertificate(m),
      endpoint: { host: o.mesh.address, port: o.mesh.port, datacenter: m.identity.datacenter },
    },
    o.log,
    (up) => gauge.set(up ? 1 : 0),
  );
  // In the background: with etcd down, traffic flows at once and registration retries.
  void registration.start();
  return registration;
}
