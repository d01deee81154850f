// app.tls: the app port as TLS 1.3 with client certificates. A connection is admitted like a
// mesh peer (chain, CRLs, the role bound to its CA) and must be a client app's, from the client
// CA; each request then needs its operation's capability (app-handler.ts). Refusals are audited
// as MTLS_CONNECTION_FAILED with listener "app", and counted with the mesh port's handshakes.
import type { TLSSocket } from 'node:tls';
import type { AuditSink } from '../src/audit/audit-log.js';
import type { SidecarMetrics } from '../src/metrics/sidecar-metrics.js';
import type { AppTls } from './app-listener.js';
import { serverTlsOptions } from './mesh-listener.js';
import { admitPeer, auditPeer } from './peer-identity.js';
import type { Trust } from './trust.js';

export function appTls(trust: Trust, audit: AuditSink, metrics: SidecarMetrics): AppTls {
  const refused = (reason: string, message: string, address: string | undefined, serial?: string) => {
    metrics.handshakes.inc({ result: 'failure', reason });
    audit.recordLimited(`app|${reason}|${address}|${serial ?? ''}`, { event: 'MTLS_CONNECTION_FAILED', listener: 'app', reason, message, peer: { address, ...(serial ? { serial } : {}) } });
  };
  return {
    options: serverTlsOptions(trust.material),
    admit(socket: TLSSocket) {
      const m = trust.material;
      const r = admitPeer(socket, m.verifier, m.shardIssuers);
      if (!r.ok) return void refused(r.reason, r.message, socket.remoteAddress, r.leaf?.serial ?? r.serial);
      if (r.peer.kind !== 'client') {
        return void refused('not_a_client', `${r.peer.subject} is a ${r.peer.kind} certificate; the app port takes client certificates only`, socket.remoteAddress, r.peer.serial);
      }
      metrics.handshakes.inc({ result: 'success', reason: 'ok' });
      audit.record({ event: 'MTLS_CONNECTION_SUCCESS', listener: 'app', peer: auditPeer(r.peer), kind: r.peer.kind });
      return r.peer;
    },
    refused: (reason, message, address) => refused(reason, message, address),
  };
}
