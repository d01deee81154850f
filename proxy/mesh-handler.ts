// The mesh port's request path, per peer kind. Shard peers: signed-request stages, then
// ownership at this shard's epoch (421 otherwise), then this shard's storage node — never
// further, so requests cannot loop. Client-certificate apps: capability, then routed across
// the cluster like the app port.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse, ServerHttp2Stream } from 'node:http2';
import { ThemisError, type ErrorCode } from '../src/errors.js';
import type { AuditEvent, AuditSink } from '../src/audit/audit-log.js';
import type { SidecarMetrics } from '../src/metrics/sidecar-metrics.js';
import type { Logger } from '../src/log.js';
import { parseKey, tokenOf } from '../src/urn/urn.js';
import type { ReplayGuard } from '../src/signing/replay-guard.js';
import { readBody } from '../src/http-body.js';
import { classifyRequest, type Operation } from './operations.js';
import type { MeshHandler } from './mesh-listener.js';
import { auditPeer, type MeshPeer } from './peer-identity.js';
import { respondError, sendError } from './respond.js';
import { EPOCH_HEADER, type Router } from './router.js';
import { requireCapability } from './stages/capability.js';
import { checkSignedBody, checkSignedHead, checkSignedRequest } from './stages/signed-request.js';
import type { TopologySource } from './topology-source.js';

type EntityOperation = Extract<Operation, { kind: 'entity' }>;

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
  router: Router;
  topology: TopologySource;
  replay: ReplayGuard;
  maxBodyBytes: number;
  audit: AuditSink;
  metrics: SidecarMetrics;
  log: Logger;
}

/** What the mesh listener calls (see MeshHandler in mesh-listener.ts); `request` settles once answered. */
export interface MeshRequestHandler extends MeshHandler {
  request(req: Http2ServerRequest, res: Http2ServerResponse, peer: MeshPeer): Promise<void>;
}

export function createMeshHandler(d: MeshHandlerDeps): MeshRequestHandler {
  /** Throws NOT_OWNER unless this shard owns `key` in its current topology. */
  function requireOwned(key: string): void {
    const token = tokenOf(parseKey(key));
    const topo = d.topology.current();
    if (topo.ownerOf(token) !== d.self) {
      throw new ThemisError('NOT_OWNER', `${d.self} does not own this key at topology epoch ${topo.epoch}`, { topology_epoch: topo.epoch });
    }
  }

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

  const verified = (peer: MeshPeer) => d.audit.aggregate('SIGNATURE_VERIFIED', { shardId: peer.identity.shardId, serial: peer.serial });

  async function fromShard(req: Http2ServerRequest, res: Http2ServerResponse, peer: MeshPeer, op: Operation): Promise<void> {
    const body = await checkSignedRequest(req, peer, op, { replay: d.replay, maxBodyBytes: d.maxBodyBytes });
    verified(peer);
    // Entity requests (GET/PUT/DELETE of one key) never get here: entityFromShard serves them.
    if (op.kind === 'entity-post') {
      requireOwned(keyOfPost(body));
      return d.router.toLocalFromPeer(req, res, body);
    }
    if (op.kind === 'query' || op.kind === 'vector' || op.kind === 'changefeed' || op.kind === 'scan') return d.router.toLocalFromPeer(req, res, body);
    return d.router.serve(req, res, op, body);
  }

  /** The same stages as fromShard, for an entity request on the core API. */
  async function entityFromShard(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, peer: MeshPeer, op: EntityOperation): Promise<void> {
    const started = performance.now();
    const url = headers[':path'] as string;
    stream.once('close', () => {
      const status = stream.sentHeaders?.[':status'];
      if (status !== undefined) d.metrics.served('mesh', op.kind, Number(status), started);
    });
    try {
      if (headers.expect === '100-continue') stream.additionalHeaders({ ':status': 100 });
      const sig = checkSignedHead(op.method, url, headers, peer, op, d.replay);
      const body = await readBody(stream, d.maxBodyBytes, headers['content-length']);
      checkSignedBody(sig, body, d.replay);
      verified(peer);
      requireOwned(op.rawKey);
      await d.router.toLocalFromPeerStream(stream, op.method, url, headers, body);
    } catch (err) {
      respondError(stream, op.method, err, d.log, refused(err, peer));
    }
  }

  return {
    stream(stream, headers, peer) {
      // An expectation other than 100-continue gets Node's 417 on the compatibility path.
      if (peer.kind !== 'shard' || (headers.expect !== undefined && headers.expect !== '100-continue')) return false;
      let op: Operation;
      try {
        op = classifyRequest(headers[':method'] as string, headers[':path'] as string);
      } catch {
        return false; // the compatibility path answers it with the same error
      }
      if (op.kind !== 'entity') return false;
      entityFromShard(stream, headers, peer, op).catch((err: unknown) => {
        // Not expected (failures are answered inside); a peer must still never take the process down.
        d.log.warn({ err }, 'mesh stream failed');
        if (!stream.destroyed) stream.destroy();
      });
      return true;
    },

    async request(req, res, peer) {
      const tracked = d.metrics.track('mesh', res);
      try {
        const op = classifyRequest(req.method, req.url);
        tracked.operation = op.kind;
        if (peer.kind === 'shard') await fromShard(req, res, peer, op);
        else {
          requireCapability(peer, op.capability);
          await d.router.serve(req, res, op);
        }
      } catch (err) {
        sendError(req, res, err, d.log, refused(err, peer));
      }
    },
  };
}

function keyOfPost(body: Buffer): string {
  let obj: unknown;
  try {
    obj = JSON.parse(body.toString('utf8'));
  } catch {
    throw new ThemisError('INVALID_JSON', 'request body is not valid JSON');
  }
  const key = (obj as { key?: unknown } | null)?.key;
  if (typeof key !== 'string') throw new ThemisError('INVALID_BODY', 'a POST /entities between shards must carry "key"');
  return key;
}
