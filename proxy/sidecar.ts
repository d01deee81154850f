// Wires one sidecar from its config and nothing else: trust (trust.ts), the topology source
// (control/), the upstreams and the resolver, the app and mesh request paths, the three
// listeners, the audit trail; and starts and stops them in order.
import { extname, join } from 'node:path';
import type { ControlLink } from './cluster/control-link.js';
import type { WorkerHub } from './cluster/worker-hub.js';
import { mergedMetrics } from './cluster/merged-metrics.js';
import { localAdmission, type ReplayAdmission } from '../src/signing/replay-admission.js';
import { CertificateRenewer } from './cert-renewal.js';
import type { ParsedCrl } from '../src/pki/crl.js';
import type { Etcd3 } from 'etcd3';
import type { DetailedPeerCertificate } from 'node:tls';
import { etcdKeys } from '../src/control/etcd-keys.js';
import type { Registration } from '../src/control/registration.js';
import type { SidecarConfig } from '../src/config/sidecar.js';
import { ConfigError } from '../src/config/validate.js';
import { AuditLog } from '../src/audit/audit-log.js';
import { SidecarMetrics } from '../src/metrics/sidecar-metrics.js';
import { ReplayGuard } from '../src/signing/replay-guard.js';
import { ReplayFloors } from '../src/signing/replay-floors.js';
import { BodyBudget } from '../src/body-limits.js';
import type { SidecarRuntime } from './runtime.js';
import { hostMonotonicMs } from '../src/runtime.js';
import { AdminServer } from './admin-listener.js';
import { loadConsoleAssets } from './console/console-assets.js';
import { ConsoleRoutes } from './console/console-routes.js';
import { readClusterStatus } from '../src/status/read-status.js';
import { createAppHandler } from './app-handler.js';
import { AppServer } from './app-listener.js';
import { appTls } from './app-tls.js';
import { socketIds } from '../src/config/app-socket.js';
import { staleCrls } from './control/crl-health.js';
import { EtcdTopologySource } from './control/etcd-topology-source.js';
import { probeCacheFile } from './control/control-cache.js';
import { registeredCertificate, registerSidecar } from './control/registration.js';
import { FileTopologySource, type TopologySource } from './control/topology-source.js';
import { LocalUpstream } from './local-upstream.js';
import { createMeshHandler } from './mesh-handler.js';
import { MeshServer, serverTlsOptions } from './mesh-listener.js';
import { auditPeer, verifyServerCert, type MeshPeer } from './peer-identity.js';
import { PeerInbound } from './peer-inbound.js';
import { PeerPool } from './peer-pool.js';
import { readiness } from './readiness.js';
import { ShardResolver } from './resolver.js';
import { Router } from './router.js';
import { ScatterGather } from './scatter-gather.js';
import { sessionVerdict, trustAnchors, type TlsMaterial } from './tls-material.js';
import { Trust } from './trust.js';
import { FileCheckpoints } from './feed/checkpoints.js';
import { NodeClient } from './feed/node-client.js';
import { AckGate } from './replication/ack-gate.js';
import { LocalHead } from './replication/local-head.js';
import { ReplicaPositions } from './replication/positions.js';
import { ReplicaManager } from './replication/replica-manager.js';
import { RetiredCopies } from './replication/retired-copies.js';
import { reportedEpochFloor } from '../src/control/epoch-floor.js';
import { ReplicationMetrics } from '../src/metrics/replication-metrics.js';
import { serializeTopology } from '../src/topology/document.js';
import { MirroredTopology } from './cluster/mirrored-topology.js';
import { MirroredCrls } from './cluster/mirrored-crls.js';
import type { WorkerDocs } from './cluster/messages.js';
import { InFlight, signatureOffload } from './in-flight.js';
import { registerChangefeedMetrics, type ChangefeedReport } from '../src/metrics/changefeed-metrics.js';
import { readAnswer } from './upstream.js';
import { Failover } from './failover/failover.js';
import { EffectiveTopologySource } from './failover/effective-source.js';
import { FailoverMirror } from './failover/failover-mirror.js';
import { NodeLiveness } from './failover/node-liveness.js';
import { FailoverMetrics } from '../src/metrics/failover-metrics.js';
import { copiesNeeded } from './replication/ack-gate.js';
import { ineligibility } from './failover/eligibility.js';
import { OperationWatcher } from './rebalance/operation-watcher.js';
import { DataSize } from './data-size.js';
import { RebalanceMetrics } from '../src/metrics/rebalance-metrics.js';
import { MoveCopier } from './rebalance/move-copier.js';
import { Cutover, MOVE_HEADER, MovePositions } from './rebalance/cutover.js';
import { WriteHold } from './rebalance/write-hold.js';
import { RebalanceStatus } from './rebalance/status.js';
import type { HoldCheck } from './replication/replicated-write.js';
import { createAccessLog, type AccessLog } from './observability/access-log.js';
import { Observability } from './observability/request-obs.js';
import { idTracing, type Tracing } from './observability/tracing.js';

export type { SidecarRuntime } from './runtime.js';

/**
 * What this process is of its sidecar (docs/sidecar.md "Workers"): the whole of it (workers: 1);
 * with workers, the control process (etcd roles, replication, moves, the admin port, the replay
 * cache, no app or mesh port) or one of the workers (the app and mesh ports, asking the control
 * process through `link`).
 */
export type SidecarRole =
  | { kind: 'single' }
  | { kind: 'control'; hub: WorkerHub }
  | { kind: 'data'; slot: number; link: ControlLink; docs: WorkerDocs };

const SINGLE: SidecarRole = { kind: 'single' };

/** Ids only, or spans exported over OTLP; the OpenTelemetry SDK is loaded only for the latter. */
async function tracingFor(cfg: SidecarConfig, rt: SidecarRuntime): Promise<Tracing> {
  return cfg.tracing.otlp ? (await import('./observability/otel-tracing.js')).otelTracing(cfg.tracing, cfg.shardId) : idTracing(rt.random);
}

/** A worker's own audit chain: audit-shard-001.log → audit-shard-001.worker-2.log. */
export function workerAuditFile(file: string, slot: number): string {
  const ext = extname(file);
  return `${file.slice(0, file.length - ext.length)}.worker-${slot}${ext}`;
}

export interface Bound {
  /** host:port, or null with app.tcp false. */
  app: string | null;
  /** The app socket's path, with app.socket. */
  appSocket?: string;
  mesh: string;
  admin: string;
}

/** How often the replica followers' status goes to etcd. */
const STATUS_EVERY_MS = 2000;

/** The CRL number in force per issuer (subject DN → decimal text), for `themis-admin check` (a rolled-back etcd). */
function crlNumbers(crls: Iterable<ParsedCrl>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of crls) if (c.crlNumber !== undefined) out[c.issuer] = String(c.crlNumber);
  return out;
}
/** How long a dropped replica copy stays before it is deleted (as long as a move source keeps its moved keys). */
const RETIRED_COPIES_DELAY_MS = 5000;

export class Sidecar {
  readonly metrics = new SidecarMetrics();
  private readonly audit: AuditLog;
  private readonly local: LocalUpstream;
  private readonly peers: PeerPool;
  private readonly app: AppServer;
  private readonly mesh: MeshServer;
  private readonly admin: AdminServer;
  private readonly replay: ReplayGuard;
  private replayPurge: NodeJS.Timeout | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  /** Keys and bytes on the storage node, for `themis-admin shard add/remove` estimates. */
  private readonly dataSize: DataSize;
  private registration: Registration | undefined;
  private readonly replicas: ReplicaManager;
  /** The topology the data path routes by: the signed one, with failover's acting primaries when it is on. */
  private readonly topology: TopologySource;
  private readonly failover: Failover | undefined;
  private readonly liveness: NodeLiveness | undefined;
  private readonly operations: OperationWatcher | undefined;
  private readonly copier: MoveCopier | undefined;
  private readonly cutover: Cutover | undefined;
  /** Deletes the copies of ranges this shard stops replicating. */
  private readonly retired: RetiredCopies;
  private readonly accessLog: AccessLog;
  /** Renews this sidecar's own certificate (tls.renewal); absent when renewal is off. */
  readonly renewer: CertificateRenewer | undefined;

  /**
   * Loads everything the config names — with `etcd.topology`, the signed topology from etcd
   * (or its disk cache) — and builds the sidecar. Throws ConfigError on a bad start.
   */
  static async create(cfg: SidecarConfig, rt: SidecarRuntime, role: SidecarRole = SINGLE): Promise<Sidecar> {
    if (role.kind === 'data') return Sidecar.createWorker(cfg, rt, role);
    // A cache it cannot write would only show after a restart during an etcd outage: say so now.
    if (cfg.etcd) {
      if (cfg.etcd.topology) probeCacheFile(cfg.etcd.topologyCache, 'etcd.topologyCache');
      if (cfg.etcd.crls) probeCacheFile(cfg.etcd.crlCache, 'etcd.crlCache');
    }
    const trust = Trust.load(cfg, rt);
    const m = trust.material;
    // Loaded only when used: the etcd client and gRPC are a quarter of an idle sidecar's memory.
    const etcd = cfg.etcd ? (await import('../src/control/etcd.js')).connectEtcd({ endpoints: [...cfg.etcd.endpoints], certPem: m.certChain, keyPem: m.keyPem, caPem: m.ca }) : undefined;
    try {
      if (etcd && cfg.etcd?.crls) await trust.followEtcd(etcd);
      const topology = cfg.etcd?.topology
        ? await EtcdTopologySource.open({
            etcd: etcd!,
            cluster: cfg.cluster,
            verifier: () => trust.material.verifier,
            self: { shardId: cfg.shardId, start: m.identity.tokenRangeStart, end: m.identity.tokenRangeEnd },
            cacheFile: cfg.etcd.topologyCache,
            log: rt.log.child({ component: 'topology' }),
            floor: () => reportedEpochFloor(etcd!, cfg.cluster, cfg.shardId),
          })
        : new FileTopologySource(cfg.topologyFile, rt.log.child({ component: 'topology' }), cfg.topologyPollMs, cfg.cluster);
      const tracing = await tracingFor(cfg, rt);
      const replayLog = rt.log.child({ component: 'replay' });
      const floors = await ReplayFloors.open({
        file: cfg.replay.stateFile,
        clock: rt.clock,
        reserveMs: cfg.replay.reserveMs,
        windowMs: cfg.replay.windowMs,
        onWriteError: (err) => replayLog.error({ err: err.message, file: cfg.replay.stateFile }, 'replay state write failed: signed requests that need a higher mark are refused until a write succeeds'),
      });
      // Every signed request would be refused (503) with a state file it cannot write: say so now.
      await floors.probe().catch((e: NodeJS.ErrnoException) => {
        throw new ConfigError('replay.stateFile', `cannot write next to ${cfg.replay.stateFile} (${e.code ?? e.message}); write a path in the sidecar's state directory, e.g. /var/lib/themis/sidecar/replay.json`);
      });
      if (floors.loaded.problem) {
        replayLog.error({ problem: floors.loaded.problem }, `replay state unusable: refusing every signed request timestamped before ${new Date(floors.loaded.floorAll).toISOString()} (fail closed)`);
      }
      return new Sidecar(cfg, rt, trust, topology, etcd, floors, role, tracing);
    } catch (e) {
      trust.close();
      etcd?.close();
      throw e;
    }
  }

  /**
   * A worker: no etcd client. The signed topology and the CRLs its control process takes from
   * etcd (verified there) come with `role.docs` and on every change; the replay state is the
   * control process's (asked per request).
   */
  private static async createWorker(cfg: SidecarConfig, rt: SidecarRuntime, role: Extract<SidecarRole, { kind: 'data' }>): Promise<Sidecar> {
    const trust = Trust.load(cfg, rt);
    try {
      const crls = role.docs.crls ? new MirroredCrls(role.docs.crls) : undefined;
      if (crls) trust.followMirror(crls);
      const mirrored = role.docs.topology ? new MirroredTopology(role.docs.topology, () => role.link.refreshTopology()) : undefined;
      const topology = mirrored ?? new FileTopologySource(cfg.topologyFile, rt.log.child({ component: 'topology' }), cfg.topologyPollMs, cfg.cluster);
      role.link.serveDocs((d) => {
        try {
          if (d.topology) mirrored?.apply(d.topology);
          if (d.crls && crls?.set(d.crls)) trust.apply('CRLs from etcd, through the control process');
        } catch (e) {
          rt.log.error({ err: (e as Error).message }, 'a document from the control process could not be applied; keeping the ones in force');
        }
      });
      return new Sidecar(cfg, rt, trust, topology, undefined, undefined, role, await tracingFor(cfg, rt));
    } catch (e) {
      trust.close();
      throw e;
    }
  }

  private constructor(
    private readonly cfg: SidecarConfig,
    private readonly rt: SidecarRuntime,
    private readonly trust: Trust,
    private readonly signed: TopologySource,
    private readonly etcd: Etcd3 | undefined,
    private readonly floors: ReplayFloors | undefined,
    private readonly role: SidecarRole,
    private readonly tracing: Tracing,
  ) {
    const log = rt.log;
    const worker = role.kind === 'data' ? role.slot : null;
    // signing.threadpool: where signatures are made and checked, by this process's load.
    const inFlight = new InFlight();
    const offloadSignature = signatureOffload(cfg.signing.threadpool, inFlight);
    trust.offload = offloadSignature;
    this.audit = new AuditLog({
      file: worker === null ? cfg.auditFile : workerAuditFile(cfg.auditFile, worker),
      maxBytes: cfg.auditMaxBytes,
      source: worker === null ? cfg.shardId : `${cfg.shardId}/worker-${worker}`,
      clock: rt.clock,
      onEvent: (event, n) => this.metrics.pkiEvents.inc({ event }, n),
      onWriteError: (err) => {
        this.metrics.auditWriteErrors.inc();
        log.error({ err: err.message, file: cfg.auditFile }, 'audit trail write failed');
      },
    });
    this.signed.onChange((t, prev, signer) => {
      this.metrics.topologyEpoch.set(t.epoch);
      if (role.kind === 'data') role.link.epoch(t.epoch);
      this.audit.record({ event: 'TOPOLOGY_APPLIED', epoch: t.epoch, previous_epoch: prev.epoch, ranges: t.ranges.length, ...(signer ? { signer } : {}) });
    });
    if (role.kind === 'data') role.link.epoch(this.signed.current().epoch);
    this.signed.onReject((reason, epoch, signer) => {
      this.metrics.topologyRejections.inc();
      this.audit.record({ event: 'TOPOLOGY_REJECTED', reason, ...(epoch !== undefined ? { epoch } : {}), ...(signer ? { signer } : {}) });
    });
    this.metrics.topologyEpoch.set(this.signed.current().epoch);
    // The topology taken at start (from etcd or its cache) is on the record with its signer too.
    const startSigner = this.signed.signer?.();
    if (startSigner) this.audit.record({ event: 'TOPOLOGY_APPLIED', epoch: this.signed.current().epoch, at_start: true, signer: startSigner });
    trust.crlSource?.onReject((r) => {
      this.metrics.crlRejections.inc({ reason: r.reason });
      this.audit.record({ event: 'CRL_REJECTED', ca: r.name, reason: `${r.reason}: ${r.message}` });
    });
    this.metrics.setStaleCrlCount(() => staleCrls(this.trust.material.crlsByIssuer.values(), rt.clock.now()).length);
    this.replay = new ReplayGuard(rt.clock, floors ? { ...cfg.replay, floors: floors.loaded.floors, floorAll: floors.loaded.floorAll } : cfg.replay);
    const admit: ReplayAdmission = role.kind === 'data' ? role.link.admit : localAdmission(this.replay, floors!);
    this.local = new LocalUpstream({ url: cfg.storageUrl, requestTimeoutMs: cfg.timeouts.requestMs });
    this.peers = new PeerPool({
      connectTimeoutMs: cfg.timeouts.connectMs,
      requestTimeoutMs: cfg.timeouts.requestMs,
      backoffInitialMs: cfg.backoff.initialMs,
      backoffMaxMs: cfg.backoff.maxMs,
      tls: () => {
        const m = this.trust.material;
        return { cert: m.certChain, key: m.keyPem, ca: m.ca, crl: [...m.crls], signer: this.trust.signer };
      },
      verifyServer: (cert, expected) => verifyServerCert(cert as DetailedPeerCertificate, expected, this.trust.material.verifier, this.trust.material.shardIssuers),
      clock: rt.clock,
      log: log.child({ component: 'peers' }),
    });
    this.metrics.setPeerStateSource(() => this.peers.states());
    // Host gauges: with workers only the control process's reach /metrics (cluster/merged-metrics.ts),
    // so a worker does not ask the storage node for them at every scrape.
    if (role.kind !== 'data') {
      registerChangefeedMetrics(this.metrics.registry, async () => {
        const up = await this.local.request({ method: 'GET', path: '/health', headers: {}, timeoutMs: 1000 });
        const body = JSON.parse((await readAnswer(up, 1024 * 1024)).toString('utf8')) as { changefeed?: ChangefeedReport };
        return body.changefeed;
      });
    }
    // Failover (with etcd): the acting primary of each replica group, laid over the signed topology.
    const head = new LocalHead(new NodeClient(this.local));
    let replicaManager: ReplicaManager | undefined;
    const failoverMetrics = new FailoverMetrics(this.metrics.registry, () => ({ acting: this.failover?.actingFor() ?? 0, leaseRemainingMs: this.failover?.leaseRemainingMs() ?? 0 }));
    this.failover = cfg.replication.failover && etcd && role.kind !== 'data'
      ? new Failover({
          etcd,
          cluster: cfg.cluster,
          self: cfg.shardId,
          signed,
          needed: (copies) => copiesNeeded(cfg.replication.ack, copies),
          leaseTtlSeconds: cfg.replication.leaseTtlSeconds,
          monotonic: () => rt.clock.monotonic(),
          ineligible: (g, firstTerm) => ineligibility(this.trust.material, g, firstTerm, rt.clock.now()),
          positionIn: async (source) => (source === cfg.shardId ? head.after() : (replicaManager?.positionOf(source) ?? -1)),
          audit: this.audit,
          log: log.child({ component: 'failover' }),
          onFailover: () => failoverMetrics.failovers.inc(),
          generationsFile: join(cfg.replication.stateDir, 'failover-generations.json'),
          quiet: (ranges) => this.replicas?.quietFor(ranges),
        })
      : undefined;
    // A worker routes and fences by its control process's failover (failover-mirror.ts).
    const mirror = cfg.replication.failover && cfg.etcd && role.kind === 'data' ? new FailoverMirror(signed, cfg.shardId, hostMonotonicMs) : undefined;
    if (mirror && role.kind === 'data') role.link.serveFailover(mirror);
    const fencing = this.failover ?? mirror;
    this.topology = fencing ? new EffectiveTopologySource(signed, fencing) : signed;
    // Operator-signed rebalance operations in etcd: verified (and refusals audited) by every shard.
    const rebalanceLog = log.child({ component: 'rebalance' });
    // Moves run in the control process (or the single one); every process that writes honours their holds.
    const moves = !!cfg.etcd?.topology;
    const rebalanceStatus = moves && role.kind !== 'data' ? new RebalanceStatus(etcd!, cfg.cluster, cfg.shardId, rebalanceLog) : undefined;
    this.operations = etcd && rebalanceStatus
      ? new OperationWatcher({
          etcd,
          cluster: cfg.cluster,
          self: cfg.shardId,
          selfRange: () => ({ start: this.trust.material.identity.tokenRangeStart, end: this.trust.material.identity.tokenRangeEnd }),
          topology: signed,
          verifier: () => this.trust.material.verifier,
          audit: this.audit,
          log: rebalanceLog,
          status: rebalanceStatus,
          onAccepted: (v) => {
            this.copier?.start(v.op);
            this.cutover?.start(v.op);
          },
          onStale: (op) => {
            rebalanceMetrics.outcomes.inc({ outcome: 'stale' });
            this.cutover?.stop(op.id);
            // A target drops what it copied (the status says stale once it did).
            void this.copier?.abort(op, 'stale');
          },
          onDone: (id) => {
            this.cutover?.stop(id);
            void this.copier?.finish(id);
          },
          onAborted: (op) => {
            rebalanceMetrics.outcomes.inc({ outcome: 'aborted' });
            this.cutover?.stop(op.id);
            void this.copier?.abort(op);
          },
          onCompleted: (op, phase) => {
            if (op.moves.some((m) => m.to === cfg.shardId)) void this.copier?.forget(op);
            if (op.moves.some((m) => m.from === cfg.shardId) && phase !== 'cleaned') this.cutover?.resumeCleanup(op);
          },
        })
      : undefined;
    this.liveness = this.failover ? new NodeLiveness(this.local) : undefined;
    this.liveness?.onChange((up) => {
      log.warn({ up }, up ? 'storage node answers again' : 'storage node does not answer');
      this.failover?.nodeChanged(up);
    });
    const resolver = new ShardResolver({ self: cfg.shardId, topology: this.topology, local: this.local, peers: this.peers });
    // Replication: the primary side (positions announced by replicas, the ack gate on writes)
    // and the replica side (a follower per primary this shard replicates).
    const positions = new ReplicaPositions(rt.clock, head);
    const replicationMetrics = new ReplicationMetrics(this.metrics.registry, rt.clock, () => {
      // The replicas of the ranges this shard owns now, and when each last confirmed a position.
      const t = this.topology.current();
      const replicas = new Set(t.ranges.filter((r) => r.owner === cfg.shardId).flatMap((r) => r.replicas));
      return Object.fromEntries([...replicas].map((r) => [r, positions.lastSeen(r)]));
    });
    const gate = new AckGate({
      self: cfg.shardId,
      topology: this.topology,
      positions: role.kind === 'data' ? { waitFor: (r, n, s, ms) => role.link.waitFor(r, n, s, ms) } : positions,
      head,
      mode: cfg.replication.ack,
      timeoutMs: cfg.replication.ackTimeoutMs,
      onRefused: () => replicationMetrics.ackFailures.inc(),
      ...(fencing ? { fencing } : {}),
    });
    const checkpoints = new FileCheckpoints(cfg.replication.stateDir);
    this.replicas = new ReplicaManager({
      self: cfg.shardId,
      topology: this.topology,
      resolver,
      checkpoints,
      clock: rt.clock,
      log: log.child({ component: 'replication' }),
      longPollMs: cfg.replication.longPollMs,
      onProgress: (primary, position, latest) => replicationMetrics.progress(primary, position, latest, rt.clock.now()),
      onFullCopy: (primary) => replicationMetrics.fullCopies.inc({ primary }),
      onCaughtUp: (primary, position) => this.audit.record({ event: 'REPLICA_CAUGHT_UP', primary, position }),
      handover: async (primary) => this.copier?.handOver(primary),
    });
    replicaManager = this.replicas;
    this.copier = rebalanceStatus
      ? new MoveCopier({
          self: cfg.shardId, resolver, checkpoints, clock: rt.clock, log: rebalanceLog, longPollMs: cfg.replication.longPollMs, status: rebalanceStatus,
          busyRanges: () => this.cutover?.cleaningRanges() ?? [],
          topology: () => signed.current(),
        })
      : undefined;
    const rebalanceMetrics = new RebalanceMetrics(this.metrics.registry, { inProgress: () => this.operations?.inProgress() ?? 0, copies: () => this.copier?.copies() ?? [] });
    // Range moves: the source holds writes to moving ranges at cutover; targets announce their positions.
    const writeHold = new WriteHold();
    const movePositions = new MovePositions(head);
    if (role.kind === 'data') role.link.serveHolds(writeHold, () => void signed.refresh());
    const hold: HoldCheck | undefined = moves
      ? { writes: writeHold, self: cfg.shardId, now: (key) => ({ owner: this.topology.current().ownerOfKey(key), epoch: this.topology.current().epoch }) }
      : undefined;
    this.cutover = etcd && rebalanceStatus
      ? new Cutover({
          etcd, cluster: cfg.cluster, self: cfg.shardId, signed, resolver, head, positions: movePositions, writes: role.kind === 'control' ? role.hub : writeHold, audit: this.audit, log: rebalanceLog, status: rebalanceStatus,
          incoming: () => this.copier?.incoming() ?? [],
          onOutcome: (outcome, holdMs) => {
            rebalanceMetrics.outcomes.inc({ outcome });
            if (holdMs !== undefined) rebalanceMetrics.holds.observe(holdMs / 1000);
          },
        })
      : undefined;
    this.retired = new RetiredCopies({
      self: cfg.shardId, signed, node: new NodeClient(this.local), incoming: () => this.copier?.incoming() ?? [], delayMs: RETIRED_COPIES_DELAY_MS, log: log.child({ component: 'replication' }),
    });
    this.dataSize = new DataSize(new NodeClient(this.local), 5000, log.child({ component: 'data-size' }));
    const scatter = new ScatterGather({ topology: this.topology, resolver, options: { ...cfg.scatter, maxAnswerBytes: cfg.maxBodyBytes * 4 }, foreignRows: () => (this.operations?.inProgress() ?? 0) > 0 });
    let accessErrors = 0;
    this.accessLog = createAccessLog(cfg.accessLog, () => rt.random.bytes(4).readUInt32BE(0) / 2 ** 32, (err) => {
      // Logged once per hundred failures: a full disk must not flood the diagnostic log too.
      if (accessErrors++ % 100 === 0) log.error({ err: err.message, file: cfg.accessLog.file ?? 'stdout', failures: accessErrors }, 'access log write failed');
    });
    const obs = new Observability(this.tracing, this.accessLog, rt.clock, cfg.shardId, worker);
    const router = new Router({ self: cfg.shardId, gate, replicas: this.replicas, topology: this.topology, resolver, random: rt.random, maxBodyBytes: cfg.maxBodyBytes, scatter, aql: cfg.aql, ...(hold ? { hold } : {}), log: log.child({ component: 'router' }) });
    this.app = new AppServer(createAppHandler(router, this.metrics, log.child({ component: 'app' }), this.audit, { tls: cfg.app.tls, obs, inFlight }), cfg.app, (limit) => this.metrics.listenerLimits.inc({ listener: 'app', limit }), cfg.app.tls ? { tls: appTls(trust, this.audit, this.metrics) } : {});
    const meshHandler = createMeshHandler({
      self: cfg.shardId,
      router,
      inbound: new PeerInbound({
        self: cfg.shardId, topology: this.topology, local: this.local, gate,
        positions: role.kind === 'data' ? { record: (r, h) => role.link.position(r, h) } : positions,
        ...(hold ? { hold, onFeedRequest: (shard: string, headers: Record<string, string | string[] | undefined>) => (role.kind === 'data' ? role.link.movePosition(shard, headers[MOVE_HEADER]) : movePositions.record(shard, headers[MOVE_HEADER])) } : {}),
      }),
      topology: this.topology,
      replay: this.replay,
      admit,
      maxBodyBytes: cfg.maxBodyBytes,
      offloadSignature,
      inFlight,
      audit: this.audit,
      metrics: this.metrics,
      log: log.child({ component: 'mesh' }),
      obs,
    });
    this.mesh = new MeshServer(
      trust.material,
      { stream: meshHandler.stream, request: (req, res, peer) => void meshHandler.request(req, res, peer) },
      this.audit, this.metrics, log.child({ component: 'mesh' }), rt.clock,
      {
        timeoutMs: cfg.mesh.bodyTimeoutMs,
        budget: new BodyBudget(cfg.mesh.maxInflightBodyBytes, () => this.metrics.listenerLimits.inc({ listener: 'mesh', limit: 'body_budget' })),
        onTimeout: () => this.metrics.listenerLimits.inc({ listener: 'mesh', limit: 'body_timeout' }),
      });
    const hub = role.kind === 'control' ? role.hub : undefined;
    this.admin = new AdminServer(
      // With workers: one /metrics for the host, theirs merged into this process's (cluster/merged-metrics.ts).
      hub ? { contentType: this.metrics.registry.contentType, metrics: async () => mergedMetrics(this.metrics.registry, await hub.metrics()) } : this.metrics.registry,
      () => readiness({
        material: () => this.trust.material, topology: this.topology, local: this.local, clock: rt.clock, followers: () => this.replicas.status(),
        ...(hub ? { workers: () => ({ live: hub.servingCount, wanted: cfg.workers }) } : {}),
      }),
      cfg.admin,
      () => this.metrics.listenerLimits.inc({ listener: 'admin', limit: 'max_connections' }),
      new ConsoleRoutes({
        enabled: cfg.admin.console,
        ...(cfg.admin.console ? { assets: loadConsoleAssets() } : {}),
        // What `themis-admin status` shows, read with this sidecar's etcd client and trust.
        read: () => readClusterStatus({ etcd: etcd!, cluster: cfg.cluster, caPem: this.trust.material.ca, verifier: this.trust.material.verifier, clock: rt.clock, expiringDays: 30 }),
        monotonic: () => rt.clock.monotonic(),
      }),
    );
    trust.onChange((next, previous, why) => this.followTrust(next, previous, why));
    if (role.kind === 'control') {
      role.hub.serve({
        admit, positions, movePositions, ...(this.failover ? { failover: this.failover } : {}), epoch: () => signed.current().epoch, log: log.child({ component: 'workers' }),
        // What the workers, which hold no etcd client, take from here.
        docs: () => ({
          topology: cfg.etcd?.topology ? { document: serializeTopology(signed.current()), epoch: signed.current().epoch, signer: signed.signer?.() ?? null } : null,
          crls: cfg.etcd?.crls ? trust.fedCrls().map((c) => c.der.toString('base64')) : null,
        }),
        refreshTopology: () => signed.refresh(),
      });
      signed.onChange(() => role.hub.publishDocs());
      // A renewal, a SIGHUP or a CRL from etcd: every worker takes the CRLs, then reads its files again.
      trust.onChange((_n, _p, why) => {
        role.hub.publishDocs();
        role.hub.broadcast('reload', { why });
      });
    }
    if (cfg.tls.renewal && role.kind !== 'data') {
      this.renewer = new CertificateRenewer({ cfg, renewal: cfg.tls.renewal, trust, clock: rt.clock, random: rt.random, metrics: this.metrics, log: log.child({ component: 'renewal' }) });
    }
    this.updateCertMetrics();
  }

  /** Every listener and session follows a trust change; sessions no longer valid are cut. */
  private followTrust(next: TlsMaterial, previous: TlsMaterial, why: string): void {
    this.mesh.rotate(next);
    this.app.rotate(serverTlsOptions(next));
    // Every live session is checked again under the new trust: a revoked leaf, a revoked
    // intermediate or an expired certificate ends it now; a peer of a root no longer in the
    // bundle (a rotation's last step) gets GOAWAY, so the requests in flight on it are answered.
    const { cut: inbound, drained } = this.mesh.closeWhere((p) => sessionVerdict(next, p.chain, 'clientAuth'));
    this.app.closeWhere((p) => sessionVerdict(next, (p as MeshPeer).chain, 'clientAuth') === 'keep');
    const outbound = this.peers.resetWhere((chain) => sessionVerdict(next, chain, 'serverAuth'));
    this.peers.rollAll();
    // A rotated certificate is registered in etcd in place of the old one.
    if (next.serial !== previous.serial && !next.ownRevoked) void this.registration?.updateCertificate(registeredCertificate(next));
    for (const p of inbound) {
      this.audit.record({ event: 'CERTIFICATE_REVOKED', peer: auditPeer(p), reason: 'session closed: certificate no longer valid' });
    }
    for (const p of outbound) {
      this.audit.record({ event: 'CERTIFICATE_REVOKED', peer: p, reason: 'outgoing session closed: certificate no longer valid' });
    }
    if (next.ownRevoked && !previous.ownRevoked) this.selfRevoked(next.ownRevoked);
    this.audit.record({ event: 'CRL_APPLIED', reason: why, revoked: next.revoked.size });
    this.updateCertMetrics();
    this.rt.log.info({ why, serial: next.serial, revoked: next.revoked.size, cut: inbound.length + outbound.length, drained }, 'TLS material reloaded');
  }

  private updateCertMetrics(): void {
    const m = this.trust.material;
    this.metrics.certificateSeen(this.cfg.shardId, m.notAfter.getTime(), this.rt.clock);
    this.metrics.crlSize.set(m.crls.reduce((a, c) => a + Buffer.byteLength(c), 0));
    if (Number.isFinite(m.crlNextUpdate)) this.metrics.crlNextUpdate.set(Math.floor(m.crlNextUpdate / 1000));
    this.metrics.crlNumber.reset();
    for (const c of m.crlsByIssuer.values()) if (c.crlNumber !== undefined) this.metrics.crlNumber.set({ issuer: c.issuer }, Number(c.crlNumber));
    const crls = [...m.crlsByIssuer.values()].flatMap((c) => (c.nextUpdate ? [{ issuer: c.issuer, nextUpdate: c.nextUpdate.getTime() }] : []));
    this.metrics.trustSeen(trustAnchors(m.ca), crls);
  }

  /**
   * What must happen before the ports open: a stale `held` from an earlier run must not let
   * another source publish while this one serves, and peers whose marks the previous run reserved
   * ahead must be past them (replay-floors.ts; over before a restart is, unless it took under
   * replay.reserveMs). With workers the control process does this before it starts them.
   */
  async prepare(opened?: () => Promise<void>): Promise<void> {
    await this.cutover?.forgetEarlierRun();
    await opened?.();
    const quiet = this.floors?.quietMs() ?? 0;
    if (quiet > 0) {
      this.rt.log.info({ ms: quiet }, 'waiting for the replay marks of the previous run before opening the mesh port');
      await new Promise((r) => setTimeout(r, quiet));
    }
  }

  /** A worker: opens the app and mesh ports (shared with the other workers by node:cluster). */
  async serve(): Promise<Omit<Bound, 'admin'>> {
    const c = this.cfg;
    const app = c.app.tcp ? await this.app.listen(c.app.port, c.app.host) : undefined;
    const sock = c.app.socket;
    if (sock) await this.app.listenUnix(sock.path, { mode: sock.mode, ...socketIds(sock) }, true);
    const mesh = await this.mesh.listen(c.mesh.port, c.mesh.host);
    this.trust.start();
    return { app: app ? `${app.address}:${app.port}` : null, ...(sock ? { appSocket: sock.path } : {}), mesh: `${mesh.address}:${mesh.port}` };
  }

  /**
   * The whole sidecar: opens its ports and starts every role. With workers (the control
   * process), `workers` are the ports they opened: this opens only the admin port.
   */
  async start(workers?: Omit<Bound, 'admin'>): Promise<Bound> {
    const c = this.cfg;
    let served = workers;
    if (!served) {
      let app: Awaited<ReturnType<AppServer['listen']>> | undefined;
      const sock = c.app.socket;
      await this.prepare(async () => {
        app = c.app.tcp ? await this.app.listen(c.app.port, c.app.host) : undefined;
        if (sock) await this.app.listenUnix(sock.path, { mode: sock.mode, ...socketIds(sock) });
      });
      const mesh = await this.mesh.listen(c.mesh.port, c.mesh.host);
      served = { app: app ? `${app.address}:${app.port}` : null, ...(sock ? { appSocket: sock.path } : {}), mesh: `${mesh.address}:${mesh.port}` };
    }
    const admin = await this.admin.listen(c.admin.port, c.admin.host);
    this.trust.start();
    this.renewer?.start();
    this.replicas.start();
    this.retired.start();
    this.liveness?.start();
    this.operations?.start();
    void this.failover?.start().catch((e: Error) => this.rt.log.error({ err: e.message }, 'failover did not start'));
    // Expired nonces go at least every 5 s (more often with a short window), so memory
    // follows request rate × window rather than filling replay.maxNoncesPerSender.
    this.replayPurge = setInterval(() => this.replay.purgeStale(), Math.min(5000, Math.max(100, this.replay.windowMs / 4)));
    this.replayPurge.unref();
    const m = this.trust.material;
    const [meshHost, meshPort] = [served.mesh.slice(0, served.mesh.lastIndexOf(':')), Number(served.mesh.slice(served.mesh.lastIndexOf(':') + 1))];
    if (this.etcd && m.ownRevoked) {
      this.rt.log.error({ reason: m.ownRevoked }, 'not registering in etcd: this sidecar\'s own certificate is revoked');
    } else if (this.etcd) {
      this.registration = registerSidecar(this.etcd, { cluster: c.cluster, shardId: c.shardId, material: m, mesh: { address: meshHost, port: meshPort }, metrics: this.metrics, log: this.rt.log.child({ component: 'registration' }) });
      // Replica lag, for operators (`themis-admin shards`): every few seconds, on the lease.
      const key = etcdKeys(c.cluster).shardReplication(c.shardId);
      this.statusTimer = setInterval(() => void this.registration?.report(key, { updated_at: new Date(this.rt.clock.now()).toISOString(), topology_epoch: this.signed.current().epoch, crls: crlNumbers(this.trust.material.crlsByIssuer.values()), followers: this.replicas.status(), data: this.dataSize.current() ?? null }), STATUS_EVERY_MS);
      this.statusTimer.unref();
      this.dataSize.start();
    }
    return { ...served, admin: `${admin.address}:${admin.port}` };
  }

  /**
   * Re-reads the topology, and the certificate, key, CA and CRLs. New handshakes (both directions) use them; sessions
   * with peers whose certificates are now revoked are cut. A bad file set changes nothing.
   */
  reload(why: string): boolean {
    void this.topology.refresh();
    // logrotate moved the access log away: lines go to a new file of the same name.
    this.accessLog.reopen();
    return this.trust.apply(why);
  }

  /**
   * A CRL revoked this sidecar's own certificate: peers refuse it from now on. It stops
   * advertising itself (alive key, /readyz) and says so; it keeps enforcing everyone else's
   * revocations and stays up so the operator sees why. A restart refuses to start.
   */
  private selfRevoked(reason: string): void {
    const serial = this.trust.material.serial;
    this.rt.log.error({ serial, reason }, 'this sidecar\'s own certificate is revoked: deregistering; issue a new certificate and restart');
    this.audit.record({ event: 'CERTIFICATE_REVOKED', peer: { shardId: this.cfg.shardId, serial }, reason: `this sidecar's own certificate: ${reason}` });
    const registration = this.registration;
    this.registration = undefined;
    void registration?.stop();
  }

  /** Stops accepting, drains in-flight requests up to drainMs, GOAWAY to peers, closes files. */
  async stop(drainMs = 5000): Promise<void> {
    clearInterval(this.replayPurge);
    clearInterval(this.statusTimer);
    this.dataSize.stop();
    await this.renewer?.stop();
    this.trust.close();
    this.liveness?.stop();
    this.operations?.close();
    this.cutover?.stop();
    this.retired.stop();
    await this.failover?.stop();
    await this.registration?.stop();
    this.etcd?.close();
    await Promise.all([this.app.close(drainMs), this.mesh.close(drainMs), this.replicas.stop(), this.copier?.stop()]);
    this.topology.close();
    this.peers.closeAll();
    this.local.close();
    await this.floors?.settled();
    await this.admin.close();
    this.audit.close();
    await this.accessLog.close();
    // The spans still queued go out now (bounded by tracing.otlp.timeoutMs).
    await this.tracing.shutdown().catch(() => undefined);
  }
}

