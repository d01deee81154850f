// One long-lived, multiplexed HTTP/2 mTLS session to one peer sidecar. Connects on first
// use, reconnects lazily after failures with exponential back-off (fails fast while backing
// off), and checks that the server is the shard the topology names before any request.
import http2, { type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2';
import tls, { type TLSSocket, type PeerCertificate } from 'node:tls';
import type { Readable } from 'node:stream';
import { ThemisError } from '../src/errors.js';
import type { Clock } from '../src/runtime.js';
import type { Logger } from '../src/log.js';
import { EMPTY_SHA256 } from '../src/signing/canonical.js';
import type { RequestSigner } from '../src/signing/sign.js';
import { TRACEPARENT } from './observability/trace-context.js';
import { TimeoutError, upstreamError, type Upstream, type UpstreamRequest, type UpstreamResponse } from './upstream.js';

export interface ClientTls {
  /** Our certificate chain (leaf first) and key. */
  cert: string;
  key: string | Buffer;
  /** Trusted root(s) and the current CRL of every CA. */
  ca: string;
  crl: string[];
  /** Signs requests with the key of exactly this certificate. */
  signer: RequestSigner;
}

export interface PeerSessionOptions {
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** Read at every (re)connect, so rotated credentials apply to new sessions. */
  tls: () => ClientTls;
  /** Throws unless the presented certificate is `expectedShard`'s; returns its serial (hex) and chain. */
  verifyServer: (cert: PeerCertificate, expectedShard: string) => { serial: string; chain: Uint8Array[] };
  clock: Clock;
  log: Logger;
}

type State = 'idle' | 'connecting' | 'ready' | 'backoff' | 'closed';

export class PeerSession implements Upstream {
  readonly name: string;
  state: State = 'idle';
  /** Serial and chain of the peer's certificate on the current session. */
  peerSerial: string | undefined;
  peerChain: Uint8Array[] | undefined;
  private session: ClientHttp2Session | undefined;
  /** Each session's signer: the serial and key of the certificate that session presented. */
  private readonly signers = new WeakMap<ClientHttp2Session, RequestSigner>();
  private readonly retired = new WeakSet<ClientHttp2Session>();
  /** Sessions on which at least one request got an answer. */
  private readonly healthy = new WeakSet<ClientHttp2Session>();
  private connecting: Promise<ClientHttp2Session> | undefined;
  private failures = 0;
  private retryAt = 0;

  constructor(
    readonly shardId: string,
    readonly endpoint: string,
    private readonly opts: PeerSessionOptions,
  ) {
    this.name = `peer ${shardId} (${endpoint})`;
  }

  private transition(to: State, why: string): void {
    if (this.state === to) return;
    this.opts.log.debug({ peer: this.shardId, from: this.state, to, why }, 'peer session state');
    this.state = to;
  }

  private connect(): Promise<ClientHttp2Session> {
    if (this.state === 'closed') return Promise.reject(new ThemisError('UPSTREAM_UNAVAILABLE', `${this.name} is closed`));
    if (this.state === 'backoff' && this.opts.clock.monotonic() < this.retryAt) {
      return Promise.reject(new ThemisError('UPSTREAM_UNAVAILABLE', `${this.name} is unavailable; retrying after back-off`, { upstream: this.name }));
    }
    this.transition('connecting', 'request needs a session');
    const { signer, ...creds } = this.opts.tls();
    this.connecting = new Promise<ClientHttp2Session>((resolve, reject) => {
      let expectedError: Error | undefined;
      const tlsOptions: tls.ConnectionOptions = {
        ...creds,
        minVersion: 'TLSv1.3',
        maxVersion: 'TLSv1.3',
        servername: `${this.shardId}.themis.local`,
        checkServerIdentity: (_host, cert) => {
          try {
            ({ serial: this.peerSerial, chain: this.peerChain } = this.opts.verifyServer(cert, this.shardId));
            return undefined;
          } catch (e) {
            expectedError = e as Error;
            return e as Error;
          }
        },
        ALPNProtocols: ['h2'],
      };
      const session = http2.connect(`https://${this.endpoint}`, {
        peerMaxConcurrentStreams: 1000,
        createConnection: (authority: URL) => {
          const socket = tls.connect({ ...tlsOptions, host: authority.hostname, port: Number(authority.port) });
          // Small request/answer exchanges must not wait for Nagle's algorithm.
          socket.setNoDelay(true);
          return socket;
        },
      });
      const timer = setTimeout(() => session.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })), this.opts.connectTimeoutMs);
      session.once('connect', () => {
        clearTimeout(timer);
        this.session = session;
        this.signers.set(session, signer);
        this.transition('ready', 'connected');
        resolve(session);
      });
      session.once('error', (err) => {
        clearTimeout(timer);
        this.opts.log.warn({ peer: this.shardId, err: (expectedError ?? err).message }, 'peer session failed');
        reject(expectedError ? new ThemisError('UPSTREAM_PROTOCOL_ERROR', `${this.name}: ${expectedError.message}`, { upstream: this.name }) : upstreamError(err, this.name));
      });
      session.once('close', () => {
        clearTimeout(timer);
        // Only the loss of the current session matters; a rolled-over one just ends.
        if (this.retired.has(session) || (this.session !== undefined && this.session !== session)) return;
        this.session = undefined;
        // A peer that completes the TLS handshake but then refuses us (it verifies certificates
        // after the handshake) closes sessions that never answered: that is a failure too.
        if (this.state !== 'closed') this.enterBackoff(this.healthy.has(session) ? 'session closed' : 'session refused');
      });
      session.on('goaway', () => {
        if (this.session === session) this.session = undefined;
      });
      // The session must not keep the process alive on its own.
      (session.socket as TLSSocket | undefined)?.unref?.();
    }).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private enterBackoff(why: 'session closed' | 'session refused'): void {
    if (why === 'session closed') this.failures = 0;
    this.failures++;
    const delay = Math.min(this.opts.backoffMaxMs, this.opts.backoffInitialMs * 2 ** Math.min(this.failures - 1, 16));
    // A clean close after a healthy session (e.g. a peer restart) retries at once.
    this.retryAt = this.opts.clock.monotonic() + (this.failures === 1 && why === 'session closed' ? 0 : delay);
    this.transition('backoff', why);
  }

  private async ready(): Promise<ClientHttp2Session> {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    return this.connecting ?? this.connect();
  }

  async request(r: UpstreamRequest, retried = false): Promise<UpstreamResponse> {
    const session = await this.ready();
    const signing = r.obs?.trace.child('sign', 'internal', r.parent);
    const signer = this.signers.get(session)!;
    const sha = r.contentSha256 ?? EMPTY_SHA256;
    const pooled = signer.offload();
    const signed = pooled ? await signer.headersAsync(r.method, r.path, sha) : signer.headers(r.method, r.path, sha);
    signing?.end();
    // Signed on the thread pool, the session may have closed or rolled over meanwhile: nothing was
    // sent yet, so the request goes once more, on the session there is now.
    if (pooled && !retried && (session.closed || session.destroyed || this.retired.has(session))) return this.request(r, true);
    // From here to the answer's headers: the mesh hop, whose span the peer's traceparent names.
    // The traceparent is not signed (docs/mesh-protocol.md): it has no say in what is served.
    const timing = r.obs?.upstream('mesh send', r.parent);
    timing?.span.attr('themis.peer', this.shardId);
    return new Promise<UpstreamResponse>((resolve, reject) => {
      const headers: OutgoingHttpHeaders = { ...r.headers, ...signed, ':method': r.method, ':path': r.path };
      if (timing) headers[TRACEPARENT] = r.obs!.trace.header(timing.span);
      const bodyless = r.body === undefined || (Buffer.isBuffer(r.body) && r.body.length === 0);
      // The body may have been rewritten (POST /entities with a generated key): its own length counts.
      if (Buffer.isBuffer(r.body)) headers['content-length'] = r.body.length;
      else if (r.body === undefined) delete headers['content-length'];
      let stream: http2.ClientHttp2Stream;
      try {
        stream = session.request(headers, { endStream: bodyless });
      } catch (err) {
        reject(upstreamError(err, this.name));
        return;
      }
      stream.setTimeout(r.timeoutMs ?? this.opts.requestTimeoutMs + (r.extraTimeoutMs ?? 0), () => stream.destroy(new TimeoutError('timeout')));
      let answered = false;
      // A stream refused before any answer — REFUSED_STREAM (never processed, RFC 9113 §8.7), or
      // cut because we rolled its session over (rotation) — is retried once on the new session
      // when its body can be sent again.
      const retryable = () =>
        !answered && !retried && (r.body === undefined || Buffer.isBuffer(r.body)) &&
        (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM || this.retired.has(session));
      // The retry goes under this attempt's span and timing (both still running), not new ones.
      const retry = () => {
        if (r.obs) r.obs.retries++;
        this.request({ ...r, obs: undefined, headers: { ...r.headers, ...(timing ? { [TRACEPARENT]: headers[TRACEPARENT] } : {}) } }, true).then(resolve, reject);
      };
      stream.once('error', (err) => {
        if (retryable()) retry();
        else reject(upstreamError(err, this.name));
      });
      // A stream cut without an error (peer gone, session reset) must not leave us waiting.
      stream.once('close', () => {
        if (answered || stream.listenerCount('error') === 0) return; // settled by the error handler
        if (retryable()) retry();
        else reject(new ThemisError('UPSTREAM_UNAVAILABLE', `${this.name} closed the stream before answering`, { upstream: this.name }));
      });
      stream.once('response', (h) => {
        answered = true;
        this.healthy.add(session);
        this.failures = 0;
        resolve({
          status: Number(h[':status']),
          headers: h as never,
          body: stream,
          complete: () => stream.rstCode === http2.constants.NGHTTP2_NO_ERROR && stream.readableEnded,
        });
      });
      if (!bodyless) {
        if (Buffer.isBuffer(r.body)) stream.end(r.body);
        else (r.body as Readable).pipe(stream);
      }
    }).then(
      (up) => {
        timing?.done(up.status);
        return up;
      },
      (err: unknown) => {
        timing?.done(undefined, (err as ThemisError).code ?? 'error');
        throw err;
      },
    );
  }

  /** Closes the session (GOAWAY) and refuses further use. */
  close(): void {
    this.transition('closed', 'closed by owner');
    this.session?.close();
  }

  /**
   * Lets the current session finish its streams (GOAWAY) while new requests open a new one —
   * with the credentials in force now. Used after certificate rotation, and with `limitMs` for a
   * peer whose issuer is no longer trusted (its streams get that long to finish).
   */
  roll(limitMs?: number): void {
    const s = this.session;
    this.session = undefined;
    if (s) {
      this.retired.add(s);
      s.close();
      if (limitMs === undefined) return;
      // Streams still open then are cut, and retried once on the new session (see request()).
      const limit = setTimeout(() => s.destroy(), limitMs);
      limit.unref();
      s.once('close', () => clearTimeout(limit));
    }
  }

  /** Drops the current session (e.g. its peer was revoked); the next request reconnects. */
  reset(why: string): void {
    const s = this.session;
    this.session = undefined;
    s?.destroy();
    this.opts.log.info({ peer: this.shardId, why }, 'peer session reset');
  }
}
