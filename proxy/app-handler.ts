// The app port's request handler: classify by the API table, route, and answer every failure
// through proxy/respond.ts. Apps on loopback or the app socket are trusted with what the sidecar
// itself may do; with app.tls, each request needs its capability in the client's certificate.
import type { Logger } from '../src/log.js';
import { ThemisError } from '../src/errors.js';
import type { SidecarMetrics } from '../src/metrics/sidecar-metrics.js';
import { AppServer, type Handler } from './app-listener.js';
import { auditPeer, type MeshPeer } from './peer-identity.js';
import type { AuditSink } from '../src/audit/audit-log.js';
import { requireCapability } from './stages/capability.js';
import { classifyRequest } from './operations.js';
import { replyTo } from './respond.js';
import { RequestWatch } from './request-watch.js';
import type { Router } from './router.js';
import { EPOCH_HEADER, SHARD_HEADER } from './mesh-headers.js';
import type { Observability } from './observability/request-obs.js';
import type { InFlight } from './in-flight.js';

export function createAppHandler(router: Router, metrics: SidecarMetrics, log: Logger, audit?: AuditSink, o: { tls?: boolean; obs?: Observability; inFlight?: InFlight } = {}): Handler {
  const watch = new RequestWatch('app', log, o.inFlight);
  return (req, res) => {
    const tracked = metrics.track('app', res);
    // Every answer names who served it and the epoch: these hold for the sidecar's own answers
    // (refusals, errors); a shard's or a merge's answer sets its own in place of them.
    res.setHeader(SHARD_HEADER, '-');
    res.setHeader(EPOCH_HEADER, String(router.epoch()));
    // app.tls: a client certificate admitted the connection; the operation needs its capability.
    const peer = AppServer.peerOf(req.socket) as MeshPeer | undefined;
    let reply = replyTo(req, res);
    if (o.obs) {
      // First: the trace headers are rewritten for the next hop, and every answer echoes them.
      const obs = o.obs.begin('app', req.method ?? '', req.url ?? '', req.headers, peer);
      reply = o.obs.reply(obs, reply);
      res.once('close', () => o.obs!.finish(obs, { status: res.headersSent ? res.statusCode : 0, header: (n) => res.getHeader(n) }));
    }
    let op;
    try {
      op = classifyRequest(req.method!, req.url!);
    } catch (err) {
      reply.error(err, log);
      return;
    }
    tracked.operation = op.kind;
    if (o.tls && !peer && !AppServer.viaUnixSocket(req.socket)) {
      // A TLS connection whose admitted peer cannot be found: refused, never served as plaintext.
      reply.error(new ThemisError('CAPABILITY_DENIED', 'no admitted client certificate for this connection'), log);
      return;
    }
    if (peer) {
      try {
        requireCapability(peer, op.capability);
      } catch (err) {
        metrics.rejections.inc({ stage: 'CAPABILITY_DENIED', code: 'CAPABILITY_DENIED' });
        audit?.record({ event: 'CAPABILITY_DENIED', listener: 'app', reason: 'CAPABILITY_DENIED', peer: auditPeer(peer) });
        reply.error(err, log);
        return;
      }
    }
    // Change feeds are long-lived by design; everything else should be answered in seconds.
    if (op.kind !== 'changefeed') res.once('close', watch.add(req.method ?? '', req.url ?? '', () => res.headersSent));
    router.serve(req, reply, op).catch((err: unknown) => reply.error(err, log));
  };
}
