// The mesh port's request path, per peer kind. Shard peers: signed-request stages, then
// ownership at this shard's epoch (421 otherwise), then this shard's storage node — never
// further, so requests cannot loop. Client-certificate apps: capability, then routed across
// the cluster like the app port.
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { ThemisError, type ErrorCode } from '../src/errors.js';
import type { AuditEvent, AuditSink } from '../src/audit/audit-log.js';
import type { SidecarMetrics } from '../src/metrics/sidecar-metrics.js';
import type { Logger } from '../src/log.js';
import { parseKey, tokenOf } from '../src/urn/urn.js';
import type { ReplayGuard } from '../src/signing/replay-guard.js';
import { classifyRequest, type Operation } from './operations.js';
import type { MeshPeer } from './peer-identity.js';
import { sendError } from './respond.js';
import { EPOCH_HEADER, type Router } from './router.js';
import { requireCapability } from './stages/capability.js';
import { checkSignedRequest } from './stages/signed-request.js';
import type { TopologySource } from './topology-source.js';

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

export function createMeshHandler(d: MeshHandlerDeps) {
  async function fromShard(req: Http2ServerRequest, res: Http2ServerResponse, peer: MeshPeer, op: Operation): Promise<void> {
    const body = await checkSignedRequest(req, peer, op, { replay: d.replay, maxBodyBytes: d.maxBodyBytes });
    d.audit.aggregate('SIGNATURE_VERIFIED', { shardId: peer.identity.shardId, serial: peer.serial });
    let key: string | undefined;
    if (op.kind === 'entity') key = op.rawKey;
    else if (op.kind === 'entity-post') key = keyOfPost(body);
    if (key !== undefined) {
      const token = tokenOf(parseKey(key));
      const topo = d.topology.current();
      if (topo.ownerOf(token) !== d.self) {
        throw new ThemisError('NOT_OWNER', `${d.self} does not own this key at topology epoch ${topo.epoch}`, { topology_epoch: topo.epoch });
      }
      return d.router.toLocalFromPeer(req, res, body);
    }
    if (op.kind === 'query' || op.kind === 'vector' || op.kind === 'changefeed' || op.kind === 'scan') return d.router.toLocalFromPeer(req, res, body);
    return d.router.serve(req, res, op, body);
  }

  return async function handle(req: Http2ServerRequest, res: Http2ServerResponse, peer: MeshPeer): Promise<void> {
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
      const code = err instanceof ThemisError ? err.code : 'INTERNAL';
      const event = AUDIT_OF[code as ErrorCode];
      if (event) {
        d.metrics.rejections.inc({ stage: code, code });
        d.audit.record({ event, reason: code, peer: { shardId: peer.identity.shardId || undefined, cn: peer.subject, serial: peer.serial, address: peer.address } });
      }
      const headers = code === 'NOT_OWNER' ? { [EPOCH_HEADER]: String(d.topology.current().epoch) } : {};
      sendError(req, res, err, d.log, headers);
    }
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
