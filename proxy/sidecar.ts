// Wires one sidecar from its config: TLS material, topology source, upstreams, the three
// listeners and the audit trail; owns reload (certificate rotation) and orderly shutdown.
import { watchFile, unwatchFile } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { connectEtcd } from '../src/control/etcd.js';
import { Registration } from '../src/control/registration.js';
import http from 'node:http';
import type { DetailedPeerCertificate } from 'node:tls';
import type { SidecarConfig } from '../src/config/sidecar.js';
import { AuditLog } from '../src/audit/audit-log.js';
import { SidecarMetrics } from '../src/metrics/sidecar-metrics.js';
import { ReplayGuard } from '../src/signing/replay-guard.js';
import { RequestSigner } from '../src/signing/sign.js';
import type { Clock, Random } from '../src/runtime.js';
import type { Logger } from '../src/log.js';
import { AdminServer, type Readiness } from './admin-listener.js';
import { AppServer } from './app-listener.js';
import { LocalUpstream } from './local-upstream.js';
import { createMeshHandler } from './mesh-handler.js';
import { MeshServer } from './mesh-listener.js';
import { classifyRequest } from './operations.js';
import { PeerPool } from './peer-pool.js';
import { auditPeer, verifyServerCert } from './peer-identity.js';
import { sendError, type AnyRequest, type AnyResponse } from './respond.js';
import { Router } from './router.js';
import { ScatterGather } from './scatter-gather.js';
import { loadTlsMaterial, type TlsMaterial } from './tls-material.js';
import { FileTopologySource, type TopologySource } from './topology-source.js';
import { EtcdTopologySource } from './etcd-topology-source.js';
import { EtcdCrlSource } from './etcd-crl-source.js';
import { CrlWatchdog, staleCrls } from './crl-health.js';
import { ConfigError } from '../src/config/validate.js';

export interface SidecarRuntime {
  clock: Clock;
  random: Random;
  log: Logger;
}

export interface Bound {
  app: string;
  mesh: string;
  admin: string;
}

export class Sidecar {
  private material: TlsMaterial;
  private signer: RequestSigner;
  readonly metrics = new SidecarMetrics();
  private readonly audit: AuditLog;
  private readonly topology: TopologySource;
  private readonly local: LocalUpstream;
  private readonly peers: PeerPool;
  private readonly app: AppServer;
  private readonly mesh: MeshServer;
  private readonly admin: AdminServer;
  private readonly watched: string[] = [];
  private registration: Registration | undefined;
  private etcd: Etcd3 | undefined;
  private readonly crlSource: EtcdCrlSource | undefined;
  private readonly crlWatchdog: CrlWatchdog;
  private readonly replay: ReplayGuard;
  private replayPurge: NodeJS.Timeout | undefined;

  /**
   * Loads everything the config names — with `etcd.topology`, the signed topology from etcd
   * (or its disk cache) — and builds the sidecar. Throws ConfigError on a bad start.
   */
  static async create(cfg: SidecarConfig, rt: SidecarRuntime): Promise<Sidecar> {
    let material = loadTlsMaterial(cfg.tls, cfg.shardId, rt.clock);
    if (material.ownRevoked) throw new ConfigError('tls.cert', `this shard's own certificate is not usable: ${material.ownRevoked}`);
    if (!cfg.etcd) return new Sidecar(cfg, rt, material);
    const etcd = connectEtcd({ endpoints: [...cfg.etcd.endpoints], certPem: material.certChain, keyPem: material.keyPem, caPem: material.ca });
    let crls: EtcdCrlSource | undefined;
    let crlGeneration = 0;
    let sidecar: Sidecar | undefined;
    try {
      if (cfg.etcd.crls) {
        crls = await EtcdCrlSource.open({
          etcd,
          cluster: cfg.cluster,
          rootPem: material.ca,
          clock: rt.clock,
          held: (k) => (sidecar ? sidecar.material : material).crlsByIssuer.get(k),
          cacheFile: cfg.etcd.crlCache,
          log: rt.log.child({ component: 'crl' }),
        });
        crlGeneration = crls.generation;
        material = loadTlsMaterial(cfg.tls, cfg.shardId, rt.clock, crls.crls());
        if (material.ownRevoked) {
          throw new ConfigError('tls.cert', `this shard's certificate is refused by a CRL published in etcd (${material.ownRevoked}); issue a new certificate`);
        }
      }
      const topology = cfg.etcd.topology
        ? await EtcdTopologySource.open({
            etcd,
            cluster: cfg.cluster,
            verifier: () => (sidecar ? sidecar.material : material).verifier,
            self: { shardId: cfg.shardId, start: material.identity.tokenRangeStart, end: material.identity.tokenRangeEnd },
            cacheFile: cfg.etcd.topologyCache,
            log: rt.log.child({ component: 'topology' }),
          })
        : undefined;
      sidecar = new Sidecar(cfg, rt, material, topology, etcd, crls);
      // A CRL accepted while the topology was loading (nobody listened yet) is applied now.
      if (crls && crls.generation !== crlGeneration) sidecar.applyTls('CRLs from etcd accepted during start-up');
      return sidecar;
    } catch (e) {
      crls?.close();
      etcd.close();
      throw e;
    }
  }

  private constructor(
    private readonly cfg: SidecarConfig,
    private readonly rt: SidecarRuntime,
    material: TlsMaterial,
    topology?: TopologySource,
    etcd?: Etcd3,
    crls?: EtcdCrlSource,
  ) {
    const log = rt.log;
    this.material = material;
    this.etcd = etcd;
    this.crlSource = crls;
    this.signer = this.makeSigner();
    this.audit = new AuditLog({
      file: cfg.auditFile,
      maxBytes: cfg.auditMaxBytes,
      source: cfg.shardId,
      clock: rt.clock,
      onEvent: (event, n) => this.metrics.pkiEvents.inc({ event }, n),
      onWriteError: (err) => {
        this.metrics.auditWriteErrors.inc();
        log.error({ err: err.message, file: cfg.auditFile }, 'audit trail write failed');
      },
    });
    this.topology = topology ?? new FileTopologySource(cfg.topologyFile, log.child({ component: 'topology' }), cfg.topologyPollMs);
    this.topology.onChange((t, prev, signer) => {
      this.metrics.topologyEpoch.set(t.epoch);
      this.audit.record({ event: 'TOPOLOGY_APPLIED', epoch: t.epoch, previous_epoch: prev.epoch, ranges: t.ranges.length, ...(signer ? { signer } : {}) });
    });
    this.topology.onReject((reason, epoch, signer) => {
      this.metrics.topologyRejections.inc();
      this.audit.record({ event: 'TOPOLOGY_REJECTED', reason, ...(epoch !== undefined ? { epoch } : {}), ...(signer ? { signer } : {}) });
    });
    this.metrics.topologyEpoch.set(this.topology.current().epoch);
    crls?.onApply((name, crl) => this.applyTls(`CRL number ${crl.crl.crlNumber} of the ${name} CA from etcd`));
    crls?.onReject((r) => {
      this.metrics.crlRejections.inc({ reason: r.reason });
      this.audit.record({ event: 'CRL_REJECTED', ca: r.name, reason: `${r.reason}: ${r.message}` });
    });
    this.metrics.setStaleCrlCount(() => staleCrls(this.material.crlsByIssuer.values(), rt.clock.now()).length);
    this.replay = new ReplayGuard(rt.clock, cfg.replay);
    this.crlWatchdog = new CrlWatchdog(() => this.material.crlsByIssuer.values(), rt.clock, log.child({ component: 'crl' }));
    this.local = new LocalUpstream({ url: cfg.storageUrl, requestTimeoutMs: cfg.timeouts.requestMs });
    this.peers = new PeerPool({
      connectTimeoutMs: cfg.timeouts.connectMs,
      requestTimeoutMs: cfg.timeouts.requestMs,
      backoffInitialMs: cfg.backoff.initialMs,
      backoffMaxMs: cfg.backoff.maxMs,
      tls: () => ({ cert: this.material.certChain, key: this.material.keyPem, ca: this.material.ca, crl: [...this.material.crls], signer: this.signer }),
      verifyServer: (cert, expected) => verifyServerCert(cert as DetailedPeerCertificate, expected, this.material.verifier, this.material.issuerName),
      clock: rt.clock,
      log: log.child({ component: 'peers' }),
    });
    const scatter = new ScatterGather({
      self: cfg.shardId,
      topology: this.topology,
      local: this.local,
      peers: this.peers,
      options: { ...cfg.scatter, maxAnswerBytes: cfg.maxBodyBytes * 4 },
    });
    this.metrics.setPeerStateSource(() => this.peers.states());
    const router = new Router({
      self: cfg.shardId,
      topology: this.topology,
      local: this.local,
      peers: this.peers,
      random: rt.random,
      maxBodyBytes: cfg.maxBodyBytes,
      scatter,
    });
    const appLog = log.child({ component: 'app' });
    this.app = new AppServer((req, res) => void this.serveApp(router, req, res, appLog));
    const meshHandler = createMeshHandler({
      self: cfg.shardId,
      router,
      topology: this.topology,
      replay: this.replay,
      maxBodyBytes: cfg.maxBodyBytes,
      audit: this.audit,
      metrics: this.metrics,
      log: log.child({ component: 'mesh' }),
    });
    this.mesh = new MeshServer(
      this.material,
      { stream: meshHandler.stream, request: (req, res, peer) => void meshHandler.request(req, res, peer) },
      this.audit, this.metrics, log.child({ component: 'mesh' }), rt.clock);
    this.admin = new AdminServer(this.metrics.registry, () => this.readiness());
    this.updateCertMetrics();
  }

  private makeSigner(): RequestSigner {
    return new RequestSigner(this.material.key, this.cfg.shardId, this.material.serial, this.rt.clock, this.rt.random);
  }

  private updateCertMetrics(): void {
    this.metrics.certificateSeen(this.cfg.shardId, this.material.notAfter.getTime(), this.rt.clock);
    this.metrics.crlSize.set(this.material.crls.reduce((a, c) => a + Buffer.byteLength(c), 0));
    if (Number.isFinite(this.material.crlNextUpdate)) this.metrics.crlNextUpdate.set(Math.floor(this.material.crlNextUpdate / 1000));
    this.metrics.crlNumber.reset();
    for (const c of this.material.crlsByIssuer.values()) if (c.crlNumber !== undefined) this.metrics.crlNumber.set({ issuer: c.issuer }, Number(c.crlNumber));
  }

  private async serveApp(router: Router, req: AnyRequest, res: AnyResponse, log: Logger): Promise<void> {
    const tracked = this.metrics.track('app', res);
    try {
      const op = classifyRequest(req.method!, req.url!);
      tracked.operation = op.kind;
      await router.serve(req, res, op);
    } catch (err) {
      sendError(req, res, err, log);
    }
  }

  private async readiness(): Promise<Readiness> {
    const now = this.rt.clock.now();
    const revoked = this.material.ownRevoked;
    const cert = revoked ? { ok: false, detail: revoked } : { ok: now < this.material.notAfter.getTime(), detail: `expires ${this.material.notAfter.toISOString()}` };
    const topo = this.topology.current();
    const storage = await new Promise<{ ok: boolean; detail?: string }>((resolve) => {
      const req = http.get(`${this.cfg.storageUrl}/health`, { timeout: 1000 }, (res) => {
        res.resume();
        resolve({ ok: res.statusCode === 200, detail: `status ${res.statusCode}` });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => resolve({ ok: false, detail: e.message }));
    });
    const checks = { certificate: cert, topology: { ok: true, detail: `epoch ${topo.epoch}` }, storage };
    return { ready: Object.values(checks).every((c) => c.ok), checks };
  }

  async start(): Promise<Bound> {
    const c = this.cfg;
    const app = await this.app.listen(c.app.port, c.app.host);
    const mesh = await this.mesh.listen(c.mesh.port, c.mesh.host);
    const admin = await this.admin.listen(c.admin.port, c.admin.host);
    this.crlWatchdog.start();
    // Expired nonces go at least every 5 s (more often with a short window), so memory
    // follows request rate × window rather than filling replay.maxNoncesPerSender.
    this.replayPurge = setInterval(() => this.replay.purgeStale(), Math.min(5000, Math.max(100, this.replay.windowMs / 4)));
    this.replayPurge.unref();
    if (c.watchFiles) {
      for (const f of [c.tls.cert, c.tls.key, c.tls.ca, ...c.tls.crls]) {
        watchFile(f, { interval: 1000, persistent: false }, () => this.reload('file changed'));
        this.watched.push(f);
      }
    }
    if (c.etcd && this.material.ownRevoked) {
      this.rt.log.error({ reason: this.material.ownRevoked }, 'not registering in etcd: this sidecar\'s own certificate is revoked');
    } else if (c.etcd) {
      const m = this.material;
      this.etcd ??= connectEtcd({ endpoints: [...c.etcd.endpoints], certPem: m.certChain, keyPem: m.keyPem, caPem: m.ca });
      const leaf = new X509Certificate(m.certChain);
      const gauge = this.metrics.etcdConnected();
      gauge.set(0);
      this.registration = new Registration(
        this.etcd,
        {
          cluster: c.cluster,
          shardId: c.shardId,
          certPem: m.certChain, // leaf + cluster CA, so anyone with the root can verify it
          serial: m.serial,
          notBefore: new Date(leaf.validFrom).toISOString(),
          notAfter: m.notAfter.toISOString(),
          capabilities: m.identity.capabilities,
          endpoint: { host: mesh.address, port: mesh.port, datacenter: m.identity.datacenter },
        },
        this.rt.log.child({ component: 'registration' }),
        (up) => gauge.set(up ? 1 : 0),
      );
      // In the background: with etcd down, traffic flows at once and registration retries.
      void this.registration.start();
    }
    return { app: `${app.address}:${app.port}`, mesh: `${mesh.address}:${mesh.port}`, admin: `${admin.address}:${admin.port}` };
  }

  /**
   * Re-reads the topology, and the certificate, key, CA and CRLs. New handshakes (both directions) use them; sessions
   * with peers whose certificates are now revoked are cut. A bad file set changes nothing.
   */
  reload(why: string): boolean {
    void this.topology.refresh();
    return this.applyTls(why);
  }

  /** Loads the TLS files plus the CRLs from etcd and puts them in force (see reload). */
  applyTls(why: string): boolean {
    let next: TlsMaterial;
    try {
      next = loadTlsMaterial(this.cfg.tls, this.cfg.shardId, this.rt.clock, this.crlSource?.crls() ?? []);
    } catch (e) {
      this.rt.log.error({ why, err: (e as Error).message }, 'TLS reload refused; keeping the current certificates');
      return false;
    }
    const wasRevoked = this.material.ownRevoked;
    this.material = next;
    this.signer = this.makeSigner();
    this.mesh.rotate(next);
    // Every live session is checked again under the new trust: a revoked leaf, a revoked
    // intermediate or an expired certificate ends it now.
    const inbound = this.mesh.closeWhere((p) => next.verifier.verify(p.chain, 'clientAuth').ok);
    const outbound = this.peers.resetWhere((chain) => next.verifier.verify(chain, 'serverAuth').ok);
    this.peers.rollAll();
    for (const p of inbound) {
      this.audit.record({ event: 'CERTIFICATE_REVOKED', peer: auditPeer(p), reason: 'session closed: certificate no longer valid' });
    }
    for (const p of outbound) {
      this.audit.record({ event: 'CERTIFICATE_REVOKED', peer: p, reason: 'outgoing session closed: certificate no longer valid' });
    }
    if (next.ownRevoked && !wasRevoked) this.selfRevoked(next.ownRevoked);
    this.audit.record({ event: 'CRL_APPLIED', reason: why, revoked: next.revoked.size });
    this.updateCertMetrics();
    this.crlWatchdog.check();
    this.rt.log.info({ why, serial: next.serial, revoked: next.revoked.size, cut: inbound.length + outbound.length }, 'TLS material reloaded');
    return true;
  }

  /**
   * A CRL revoked this sidecar's own certificate: peers refuse it from now on. It stops
   * advertising itself (alive key, /readyz) and says so; it keeps enforcing everyone else's
   * revocations and stays up so the operator sees why. A restart refuses to start.
   */
  private selfRevoked(reason: string): void {
    this.rt.log.error({ serial: this.material.serial, reason }, 'this sidecar\'s own certificate is revoked: deregistering; issue a new certificate and restart');
    this.audit.record({ event: 'CERTIFICATE_REVOKED', peer: { shardId: this.cfg.shardId, serial: this.material.serial }, reason: `this sidecar's own certificate: ${reason}` });
    const registration = this.registration;
    this.registration = undefined;
    void registration?.stop();
  }

  /** Stops accepting, drains in-flight requests up to drainMs, GOAWAY to peers, closes files. */
  async stop(drainMs = 5000): Promise<void> {
    for (const f of this.watched) unwatchFile(f);
    this.crlWatchdog.stop();
    clearInterval(this.replayPurge);
    this.crlSource?.close();
    await this.registration?.stop();
    this.etcd?.close();
    this.topology.close();
    await Promise.all([this.app.close(drainMs), this.mesh.close(drainMs)]);
    this.peers.closeAll();
    this.local.close();
    await this.admin.close();
    this.audit.close();
  }
}

