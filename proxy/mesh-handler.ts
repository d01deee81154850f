// The mesh port's request handling: two adapters (Node's core HTTP/2 stream API, the fast path
// for shard peers' entity requests, and the compatibility API for everything else) build one
// MeshRequest and run the same stages (mesh-pipeline.ts). Shard peers are then served by the
// peer-inbound path only; client-certificate apps are routed across the cluster like the app
// port. Refusals are audited and counted here, and answered through proxy/respond.ts.
import type { InFlight } from './in-flight.js';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse, ServerHttp2Stream } from 'node:http2';
import { ThemisError, type ErrorCode } from '../src/errors.js';
import type { AuditEvent, AuditSink } from '../src/audit/audit-log.js';
import type { SidecarMetrics } from '../src/metrics/sidecar-metrics.js';
import type { Logger } from '../src/log.js';
import type { ReplayGuard } from '../src/signing/replay-guard.js';
import type { ReplayAdmission } from '../src/signing/replay-admission.js';
import { EPOCH_HEADER, SHARD_HEADER } from './mesh-headers.js';
import { APP_PEER_STAGES, SHARD_PEER_STAGES } from './mesh-pipeline.js';
import type { MeshHandler } from './mesh-listener.js';
import { classifyRequest, type Operation } from './operations.js';
import { auditPeer, type MeshPeer } from './peer-identity.js';
import type { PeerInbound } from './peer-inbound.js';
import { replyOnStream, replyTo, type Reply } from './respond.js';
import { RequestWatch } from './request-watch.js';
import type { Router } from './router.js';
import { runStages, type MeshRequest, type StageDeps } from './stages/mesh-request.js';
import type { TopologySource } from './control/topology-source.js';
import type { Observability } from './observability/request-obs.js';
import { obsOf } from './observability/request-record.js';

/** Which audit event a refusal is. */
const AUDIT_OF: Partial<Record<ErrorCode, AuditEvent>> = {
  SIGNATURE_HEADERS_INVALID: 'SIGNATURE_FAILED',
  IDENTITY_MISMATCH: 'SIGNATURE_FAILED',
  TIMESTAMP_OUT_OF_WINDOW: 'SIGNATURE_FAILED',
  SIGNATURE_INVALID: 'SIGNATURE_FAILED',
  CAPABILITY_DENIED: 'CAPABILITY_DENIED',
  REPLAY_DETECTED: 'REPLAY_REJECTED',
};

export interface MeshHandlerDeps {
  self: string;
  /** For client-certificate apps only; shard peers never reach it. */
  router: Router;
  inbound: PeerInbound;
  topology: TopologySource;
  /** The replay window (timestamps). */
  replay: ReplayGuard;
  /** The nonce cache and persisted marks (stages/replay.ts): local, or the control process's with workers. */
  admit: ReplayAdmission;
  maxBodyBytes: number;
  /** Whether the next signature is verified on libuv's thread pool (config `signing.threadpool`). */
  offloadSignature: () => boolean;
  /** The process's requests in flight, which this port's requests count in. */
  inFlight?: InFlight;
  audit: AuditSink;
  metrics: SidecarMetrics;
  log: Logger;
  /** Access log and trace spans. */
  obs?: Observability;
}

/** What the mesh listener calls (see MeshHandler in mesh-listener.ts); `request` settles once answered. */
export interface MeshRequestHandler extends MeshHandler {
  request(req: Http2ServerRequest, res: Http2ServerResponse, peer: MeshPeer): Promise<void>;
}

export function createMeshHandler(d: MeshHandlerDeps): MeshRequestHandler {
  const watch = new RequestWatch('mesh', d.log, d.inFlight);
  const stageDeps: StageDeps = {
    self: d.self,
    replay: d.replay,
    admit: d.admit,
    maxBodyBytes: d.maxBodyBytes,
    topology: d.topology,
    offloadSignature: d.offloadSignature,
    verified: (peer) => d.audit.aggregate('SIGNATURE_VERIFIED', { shardId: peer.identity.shardId, serial: peer.serial }),
  };

  /** Audits and counts a refusal; returns the headers its answer carries. */
  function refused(err: unknown, peer: MeshPeer): OutgoingHttpHeaders {
    const code = err instanceof ThemisError ? err.code : 'INTERNAL';
    const event = AUDIT_OF[code as ErrorCode];
    if (event) {
      d.metrics.rejections.inc({ stage: code, code });
      d.audit.record({ event, reason: code, peer: auditPeer(peer) });
    }
    return code === 'NOT_OWNER' ? { [EPOCH_HEADER]: String(d.topology.current().epoch) } : {};
  }

  /** Both adapters end here: the stages for the peer's kind, then its path, or the refusal. */
  async function handle(r: MeshRequest, reply: Reply, req?: Http2ServerRequest): Promise<void> {
    const checks = obsOf(r.headers)?.trace.child('peer checks');
    try {
      const fromShard = r.peer.kind === 'shard';
      try {
        await runStages(fromShard ? SHARD_PEER_STAGES : APP_PEER_STAGES, r, stageDeps);
      } catch (err) {
        checks?.end(err instanceof ThemisError ? err.code : 'INTERNAL');
        throw err;
      }
      checks?.end();
      if (fromShard) await d.inbound.deliver(r, reply);
      else await d.router.serve(req!, reply, r.op);
    } catch (err) {
      reply.error(err, d.log, refused(err, r.peer));
    }
  }

  return {
    /** The core-API adapter: shard peers' GET/PUT/DELETE of one key, nearly all mesh traffic. */
    stream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, peer: MeshPeer): boolean {
      // An expectation other than 100-continue gets Node's 417 on the compatibility path.
      if (peer.kind !== 'shard' || (headers.expect !== undefined && headers.expect !== '100-continue')) return false;
      const method = headers[':method'] as string;
      const url = headers[':path'] as string;
      let op: Operation;
      try {
        op = classifyRequest(method, url);
      } catch {
        return false; // the compatibility path answers it with the same error
      }
      if (op.kind !== 'entity') return false;
      const started = performance.now();
      const unwatch = watch.add(method, url, () => stream.headersSent);
      const obs = d.obs?.begin('mesh', method, url, headers, peer);
      stream.once('close', () => {
        unwatch();
        const status = stream.sentHeaders?.[':status'];
        if (status !== undefined) d.metrics.served('mesh', op.kind, Number(status), started);
        if (obs) d.obs!.finish(obs, { status: Number(status ?? 0), header: (n) => stream.sentHeaders?.[n] });
      });
      if (headers.expect === '100-continue') {
        try {
          stream.additionalHeaders({ ':status': 100 });
        } catch {
          stream.destroy(); // the peer closed the stream already
          return true;
        }
      }
      const reply = replyOnStream(stream, method);
      handle({ method, url, headers, peer, op, source: stream }, obs ? d.obs!.reply(obs, reply) : reply).catch((err: unknown) => {
        // Not expected (failures are answered inside); a peer must still never take the process down.
        d.log.warn({ err }, 'mesh stream failed');
        if (!stream.destroyed) stream.destroy();
      });
      return true;
    },

    /** The compatibility adapter: everything else. */
    async request(req, res, peer) {
      const tracked = d.metrics.track('mesh', res);
      if (peer.kind !== 'shard') {
        // Client-certificate apps get the app port's headers on every answer (app-handler.ts).
        res.setHeader(SHARD_HEADER, '-');
        res.setHeader(EPOCH_HEADER, String(d.router.epoch()));
      }
      let reply = replyTo(req, res);
      if (d.obs) {
        const obs = d.obs.begin('mesh', req.method, req.url, req.headers, peer);
        reply = d.obs.reply(obs, reply);
        res.once('close', () => d.obs!.finish(obs, { status: res.headersSent ? res.statusCode : 0, header: (n) => res.getHeader(n) }));
      }
      let op: Operation;
      try {
        op = classifyRequest(req.method, req.url);
      } catch (err) {
        reply.error(err, d.log, refused(err, peer));
        return;
      }
      tracked.operation = op.kind;
      if (op.kind !== 'changefeed') res.once('close', watch.add(req.method, req.url, () => res.headersSent));
      await handle({ method: req.method, url: req.url, headers: req.headers, peer, op, source: req }, reply, req);
    },
  };
}
