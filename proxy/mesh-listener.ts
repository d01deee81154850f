// The mesh port: HTTP/2 over TLS 1.3 only, client certificate required. Each session is
// admitted once (peer-identity.ts) — refused ones are audited with their reason, counted
// and destroyed before any stream is served. Supports live certificate rotation and cutting
// the sessions of peers whose certificates were revoked.
import http2, {
  type Http2SecureServer,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket, SecureContextOptions } from 'node:tls';
import type { AuditSink } from '../src/audit/audit-log.js';
import type { SidecarMetrics } from '../src/metrics/sidecar-metrics.js';
import type { Logger } from '../src/log.js';
import type { Clock } from '../src/runtime.js';
import { admitPeer, auditPeer, type MeshPeer } from './peer-identity.js';
import type { ClaimedLeaf } from '../src/pki/verify.js';
import { DRAIN_UNTRUSTED_MS, type SessionVerdict, type TlsMaterial } from './tls-material.js';
import { limitBody, type BodyLimits } from '../src/body-limits.js';

export interface MeshHandler {
  /**
   * Takes a shard peer's entity request (GET, PUT, DELETE of one key: nearly all mesh
   * traffic) straight from the core HTTP/2 API, which costs about 40–70 µs less CPU per
   * request than the compatibility layer, and returns true; false leaves it to `request`.
   */
  stream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, peer: MeshPeer): boolean;
  request(req: Http2ServerRequest, res: Http2ServerResponse, peer: MeshPeer): void;
}

export function serverTlsOptions(m: TlsMaterial): SecureContextOptions & { minVersion: 'TLSv1.3'; maxVersion: 'TLSv1.3' } {
  // setSecureContext() replaces the whole context, so this is the single source of all of it.
  // No `ca` or `crl`: every client chain is verified in code (peer-identity.ts), and OpenSSL's
  // own check, when it succeeds, makes Node 24 lose the chain (src/pki/presented-chain.ts). Nor
  // does the certificate request name acceptable CAs: clients send the one certificate they have.
  return { cert: m.certChain, key: m.keyPem, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' };
}

export class MeshServer {
  readonly server: Http2SecureServer;
  private readonly peers = new WeakMap<ServerHttp2Session, MeshPeer>();
  private readonly sessions = new Set<ServerHttp2Session>();

  constructor(
    private material: TlsMaterial,
    handler: MeshHandler,
    private readonly audit: AuditSink,
    private readonly metrics: SidecarMetrics,
    private readonly log: Logger,
    private readonly clock: Clock,
    /** Every request body: a deadline from its headers, and the listener's budget of bytes in flight. */
    bodyLimits: BodyLimits,
  ) {
    this.server = http2.createSecureServer({
      ...serverTlsOptions(material),
      requestCert: true,
      // We verify in code (admit) to know and record why a peer is refused.
      rejectUnauthorized: false,
      ALPNProtocols: ['h2'],
      settings: { maxConcurrentStreams: 1000 },
      // Small request/answer exchanges must not wait for Nagle's algorithm.
      noDelay: true,
    });
    this.server.on('session', (session) => {
      try {
        this.admit(session);
      } catch (err) {
        // Untrusted input must never crash the process: refuse the session instead.
        this.log.warn({ err }, 'error while admitting a mesh session');
        session.destroy();
      }
    });
    this.server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      const reason = err.code ?? 'tls_error';
      this.refused(reason, err.message, socket.remoteAddress);
    });
    // No 'request' listener: it would make Node build compatibility objects for every stream.
    // They are built here only for the requests the core path leaves alone.
    // Node passes the raw header list as a fourth argument, which @types/node leaves out.
    this.server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders?: string[]) => {
      // A peer can reset or break any stream (RST_STREAM, a body that contradicts its
      // content-length): that must end the stream, never the process. The compatibility
      // objects add a listener of their own; a stream served from the core API has only this.
      stream.on('error', () => undefined);
      // Before any handler, which may start reading the body at once.
      limitBody(stream, bodyLimits);
      const peer = this.peers.get(stream.session as ServerHttp2Session);
      if (!peer) {
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      if (handler.stream(stream, headers, peer)) return;
      // What Node's own compatibility layer does with CONNECT when nothing listens for it.
      if (headers[':method'] === 'CONNECT') {
        stream.respond({ ':status': http2.constants.HTTP_STATUS_METHOD_NOT_ALLOWED }, { endStream: true });
        return;
      }
      const req = new http2.Http2ServerRequest(stream, headers, {}, rawHeaders ?? []);
      const res = new http2.Http2ServerResponse(stream);
      // And with expectations, before 'request'.
      if (headers.expect !== undefined) {
        if (headers.expect !== '100-continue') {
          res.statusCode = http2.constants.HTTP_STATUS_EXPECTATION_FAILED;
          res.end();
          return;
        }
        res.writeContinue();
      }
      handler.request(req, res, peer);
    });
  }

  /** `serial`: the certificate that failed; `leaf`: the peer's own certificate, when it decoded. */
  private refused(reason: string, message: string, address?: string, serial?: string, leaf?: ClaimedLeaf): void {
    this.metrics.handshakes.inc({ result: 'failure', reason });
    const peerSerial = leaf?.serial ?? serial;
    // Anyone who can reach the port can cause these: repeats are aggregated per interval.
    this.audit.recordLimited(`${reason}|${address}|${peerSerial ?? ''}`, {
      event: 'MTLS_CONNECTION_FAILED',
      reason,
      message,
      peer: { address, ...(peerSerial ? { serial: peerSerial } : {}), ...(leaf ? { cn: leaf.subject, issuer: leaf.issuer } : {}) },
      // When a CA of the chain failed (revoked, expired, unknown), which one.
      ...(serial && serial !== peerSerial ? { failed_serial: serial } : {}),
    });
    this.log.debug({ reason, address, serial }, 'mesh connection refused');
  }

  private admit(session: ServerHttp2Session): void {
    const socket = session.socket as TLSSocket;
    const result = admitPeer(socket, this.material.verifier, this.material.shardIssuers);
    if (!result.ok) {
      this.refused(result.reason, result.message, socket.remoteAddress, result.serial, result.leaf);
      session.destroy();
      return;
    }
    const { peer } = result;
    this.peers.set(session, peer);
    this.sessions.add(session);
    // A session must not outlive the certificate it was admitted with.
    const untilExpiry = peer.notAfter.getTime() - this.clock.now();
    const expiry = setTimeout(() => session.destroy(), Math.min(Math.max(untilExpiry, 0), 2 ** 31 - 1));
    expiry.unref();
    session.once('close', () => {
      clearTimeout(expiry);
      this.sessions.delete(session);
    });
    this.metrics.handshakes.inc({ result: 'success', reason: 'ok' });
    if (peer.kind === 'shard') {
      this.metrics.certificateSeen(peer.identity.shardId, peer.notAfter.getTime());
    }
    this.audit.record({
      event: 'MTLS_CONNECTION_SUCCESS',
      peer: auditPeer(peer),
      kind: peer.kind,
    });
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** New handshakes use `m`; existing sessions are left alone (see closeRevoked). */
  rotate(m: TlsMaterial): void {
    this.material = m;
    this.server.setSecureContext(serverTlsOptions(m));
  }

  /**
   * Ends the sessions whose peer no longer passes: 'cut' destroys the session now (revoked, CA
   * revoked, expired); 'drain' sends GOAWAY, so its streams in flight finish (within
   * DRAIN_UNTRUSTED_MS) and the peer opens a new session (its issuer is no longer trusted: a root
   * rotation's last step). Returns the cut.
   */
  closeWhere(verdict: (peer: MeshPeer) => SessionVerdict): { cut: MeshPeer[]; drained: number } {
    const cut: MeshPeer[] = [];
    let drained = 0;
    for (const s of this.sessions) {
      const p = this.peers.get(s);
      const v = p ? verdict(p) : 'keep';
      if (v === 'cut') {
        cut.push(p!);
        s.destroy();
      } else if (v === 'drain' && !s.closed) {
        drained++;
        s.close();
        const limit = setTimeout(() => s.destroy(), DRAIN_UNTRUSTED_MS);
        limit.unref();
        s.once('close', () => clearTimeout(limit));
      }
    }
    return { cut, drained };
  }

  /** GOAWAY to every session, stop accepting; destroy what is left after drainMs. */
  async close(drainMs = 0): Promise<void> {
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    for (const s of this.sessions) s.close();
    const timer = setTimeout(() => {
      for (const s of this.sessions) s.destroy();
    }, drainMs);
    await closed;
    clearTimeout(timer);
  }
}
