// The shard side of operator-signed rebalancing: every RebalanceOperation written under
// /themis/{cluster}/rebalance/ is verified here (src/rebalance/operation.ts) before anything is
// done with it. A refused one — unsigned, tampered, signed by a shard or by an operator without
// the capability, built on another epoch, moving tokens to a shard whose certificate does not
// cover them — is audited (REBALANCE_REJECTED, with the reason and the signer) by every shard
// that sees it, and changes nothing. One that verifies and moves ranges from or to this shard is
// audited as REBALANCE_INITIATED. Each involved shard records its view under rebalance-status/.
import type { Etcd3, IKeyValue } from 'etcd3';
import type { AuditLog } from '../../src/audit/audit-log.js';
import { certifiedRangeOf } from '../../src/control/certified-ranges.js';
import { etcdKeys } from '../../src/control/etcd-keys.js';
import { KeepWatching } from '../../src/control/watch.js';
import type { Logger } from '../../src/log.js';
import type { PeerVerifier } from '../../src/pki/verify.js';
import { verifyOperation, type OperationVerdict, type RebalanceOperation } from '../../src/rebalance/operation.js';
import { sameAssignment } from '../../src/rebalance/moves.js';
import { verifyAbort } from '../../src/rebalance/abort.js';
import type { TopologySource } from '../control/topology-source.js';
import type { RebalanceStatus } from './status.js';

export interface OperationWatcherDeps {
  etcd: Etcd3;
  cluster: string;
  self: string;
  selfRange: () => { start: bigint; end: bigint };
  /** The signed topology (operations start from its epoch). */
  topology: TopologySource;
  verifier: () => PeerVerifier;
  audit: AuditLog;
  log: Logger;
  status: RebalanceStatus;
  /** An operation that verified and involves this shard. */
  onAccepted?: (v: Extract<OperationVerdict, { ok: true }>) => void;
  /** An accepted operation whose base epoch is no longer in force (another topology came first). */
  onStale?: (op: RebalanceOperation) => void;
  /** An accepted operation whose next topology came into force: it was cut over. */
  onDone?: (opId: string) => void;
  /**
   * Found at start: an operation cut over before this sidecar stopped (its next topology is in
   * force, or this shard said `done`), whose loose ends — a source's cleanup, a target's feed
   * registrations — this run must tie. `ownPhase` is this shard's last status.
   */
  onCompleted?: (op: RebalanceOperation, ownPhase: string | undefined) => void;
  /** A verified abort of an operation this shard takes part in, before its cutover. */
  onAborted?: (op: RebalanceOperation) => void;
}

export class OperationWatcher {
  private watcher: KeepWatching | undefined;
  private abortWatcher: KeepWatching | undefined;
  /** Operations whose abort this shard acted on. */
  private readonly aborted = new Set<string>();
  private statusWatcher: KeepWatching | undefined;
  /** Operations cut over whose source has not deleted the moved keys yet (they are on two nodes). */
  private uncleaned = new Set<string>();
  /** This shard's own terminal status per operation: an operation it finished is not judged again. */
  private finished = new Set<string>();
  /** This shard's last status phase per operation. */
  private ownPhase = new Map<string, string>();
  /** The first read of the statuses: operations are judged only after it. */
  private statusesRead: Promise<void> = Promise.resolve();
  /** key → mod revision already judged: each version of each key is judged once. */
  private readonly seen = new Map<string, string>();
  private readonly keys: ReturnType<typeof etcdKeys>;
  /** Operations that verified, by id, with their base epoch: in progress while that epoch is in force. */
  private readonly verified = new Map<string, RebalanceOperation>();

  constructor(private readonly d: OperationWatcherDeps) {
    this.keys = etcdKeys(d.cluster);
    d.topology.onChange((t) => {
      for (const [id, op] of this.verified) {
        const base = op.baseEpoch;
        if (base === t.epoch) continue;
        this.verified.delete(id);
        if (t.epoch === op.next.epoch && sameAssignment(t, op.next)) {
          this.d.onDone?.(id);
          continue;
        }
        this.d.log.warn({ op: id, base_epoch: base, epoch: t.epoch }, 'rebalance operation stale: another topology is in force');
        void this.status(id, { phase: 'stale', reason: 'stale_epoch', message: `epoch ${t.epoch} came into force before its cutover` });
        this.d.onStale?.(op);
      }
    });
  }

  /** Verified operations whose base epoch is in force, plus cut-over ones not cleaned up yet (every shard knows of them). */
  inProgress(): number {
    return this.verified.size + this.uncleaned.size;
  }

  start(): void {
    this.statusesRead = this.readStatuses();
    this.statusWatcher = new KeepWatching({
      build: () => this.d.etcd.watch().prefix(this.keys.rebalanceStatusPrefix),
      onPut: () => void this.readStatuses(),
      resync: () => void this.readStatuses(),
      what: 'rebalance status',
      log: this.d.log,
    });
    this.abortWatcher = new KeepWatching({
      build: () => this.d.etcd.watch().prefix(this.keys.rebalanceAbortPrefix),
      onPut: (kv) => void this.judgeAbort(kv.key.toString().slice(this.keys.rebalanceAbortPrefix.length), kv.value.toString()),
      resync: () => void this.readAborts(),
      what: 'rebalance aborts',
      log: this.d.log,
    });
    this.watcher = new KeepWatching({
      build: () => this.d.etcd.watch().prefix(this.keys.rebalancePrefix),
      onPut: (kv) => void this.judge(kv),
      resync: () => void this.readAll(),
      what: 'rebalance operations',
      log: this.d.log,
    });
  }

  private async readStatuses(): Promise<void> {
    try {
      const all = await this.d.etcd.getAll().prefix(this.keys.rebalanceStatusPrefix).strings();
      const phases = new Map<string, string[]>();
      const finished = new Set<string>();
      const own = new Map<string, string>();
      for (const [k, v] of Object.entries(all)) {
        const [op, shard] = k.slice(this.keys.rebalanceStatusPrefix.length).split('/');
        let phase = '';
        try {
          phase = String((JSON.parse(v) as { phase?: unknown }).phase);
        } catch {
          continue;
        }
        phases.set(op!, [...(phases.get(op!) ?? []), phase]);
        if (shard === this.d.self) own.set(op!, phase);
        // `done` is not finished: a source that stopped before its cleanup resumes it.
        if (shard === this.d.self && ['received', 'cleaned', 'stale', 'failed', 'aborted', 'refused'].includes(phase)) finished.add(op!);
      }
      // A source says `done` at cutover and `cleaned` once it deleted its copy; a target that
      // drops what it copied for an aborted operation says `aborting` meanwhile.
      this.uncleaned = new Set([...phases].filter(([, p]) => p.includes('done') || p.includes('aborting')).map(([op]) => op));
      this.finished = finished;
      this.ownPhase = own;
    } catch (e) {
      this.d.log.debug({ err: (e as Error).message }, 'cannot read rebalance statuses');
    }
  }

  private async readAll(): Promise<void> {
    try {
      const res = await this.d.etcd.getAll().prefix(this.keys.rebalancePrefix).exec();
      for (const kv of res.kvs) await this.judge(kv);
    } catch (e) {
      this.d.log.warn({ err: (e as Error).message }, 'cannot read rebalance operations');
    }
  }

  /** A shard's certified token range: its own, or from its registered certificate (verified); undefined when unknown. */
  private async certifiedRange(shard: string): Promise<{ start: bigint; end: bigint } | undefined> {
    if (shard === this.d.self) return this.d.selfRange();
    try {
      return certifiedRangeOf(this.d.verifier(), shard, await this.d.etcd.get(this.keys.shardCertificate(shard)).string());
    } catch {
      return undefined;
    }
  }

  private async judge(kv: IKeyValue): Promise<void> {
    const key = kv.key.toString();
    const rev = String(kv.mod_revision);
    if (this.seen.get(key) === rev) return;
    this.seen.set(key, rev);
    const keyId = key.slice(this.keys.rebalancePrefix.length);
    // One this shard saw through to its end is not judged again (after a restart it would be stale).
    await this.statusesRead;
    if (this.finished.has(keyId)) return;
    let input: unknown;
    try {
      input = JSON.parse(kv.value.toString());
    } catch {
      input = undefined;
    }
    const v = await verifyOperation(input, {
      verifier: this.d.verifier(),
      current: this.d.topology.current(),
      cluster: this.d.cluster,
      certifiedRange: (s) => this.certifiedRange(s),
    });
    if (v.ok && v.op.id !== keyId) return this.refuse(keyId, { ok: false, reason: 'malformed', message: `stored under ${keyId} but names operation ${v.op.id}`, signer: v.signer });
    if (!v.ok && v.reason === 'stale_epoch' && (await this.completedEarlier(input, keyId))) return;
    if (!v.ok) return this.refuse(keyId, v);
    const abort = await this.d.etcd.get(this.keys.rebalanceAbort(v.op.id)).string().catch(() => null);
    if (abort !== null && (await this.judgeAbort(v.op.id, abort, v.op))) return;
    this.verified.set(v.op.id, v.op);
    const involved = v.op.moves.some((m) => m.from === this.d.self || m.to === this.d.self);
    if (!involved) return;
    this.d.audit.record({
      event: 'REBALANCE_INITIATED', op_id: v.op.id, base_epoch: v.op.baseEpoch, next_epoch: v.op.next.epoch, signer: v.signer,
      moves: v.op.moves.map((m) => ({ from: m.from, to: m.to, token_start: `0x${m.start.toString(16)}`, token_end: `0x${m.end.toString(16)}` })),
    });
    this.d.log.info({ op: v.op.id, moves: v.op.moves.length, signer: v.signer.subject }, 'rebalance operation accepted');
    await this.status(v.op.id, { phase: 'accepted' });
    this.d.onAccepted?.(v);
  }

  private async readAborts(): Promise<void> {
    try {
      const all = await this.d.etcd.getAll().prefix(this.keys.rebalanceAbortPrefix).strings();
      for (const [k, v] of Object.entries(all)) await this.judgeAbort(k.slice(this.keys.rebalanceAbortPrefix.length), v);
    } catch (e) {
      this.d.log.warn({ err: (e as Error).message }, 'cannot read rebalance aborts');
    }
  }

  /**
   * An abort written for `opId`: refused and audited unless an operator signed it; acted on
   * (once) for an operation in progress that involves this shard. True when it was acted on.
   */
  private async judgeAbort(opId: string, raw: string, known?: RebalanceOperation): Promise<boolean> {
    if (this.aborted.has(opId)) return true;
    await this.statusesRead;
    let input: unknown;
    try {
      input = JSON.parse(raw);
    } catch {
      input = undefined;
    }
    const v = await verifyAbort(input, { verifier: this.d.verifier(), cluster: this.d.cluster, opId });
    if (!v.ok) {
      if (this.seen.get(`abort ${opId}`) === raw) return false;
      this.seen.set(`abort ${opId}`, raw);
      this.d.audit.record({ event: 'REBALANCE_ABORT_REJECTED', op_id: opId, reason: `${v.reason}: ${v.message}`, ...(v.signer ? { signer: v.signer } : {}) });
      this.d.log.warn({ op: opId, reason: v.reason, err: v.message }, 'rebalance abort refused; nothing done');
      return false;
    }
    const op = known ?? this.verified.get(opId);
    if (!op) return false; // not in progress (yet): judging the operation looks at the abort again
    this.aborted.add(opId);
    this.verified.delete(opId);
    if (!op.moves.some((m) => m.from === this.d.self || m.to === this.d.self)) return true;
    this.d.audit.record({ event: 'REBALANCE_ABORTED', op_id: opId, signer: v.signer });
    this.d.log.warn({ op: opId, signer: v.signer.subject }, 'rebalance operation aborted by an operator');
    if (!op.moves.some((m) => m.to === this.d.self)) await this.status(opId, { phase: 'aborted' });
    this.d.onAborted?.(op);
    return true;
  }

  /** A stale operation this shard took part in and that was cut over (before a restart): its loose ends are tied. */
  private async completedEarlier(input: unknown, keyId: string): Promise<boolean> {
    const past = await verifyOperation(input, { verifier: this.d.verifier(), current: this.d.topology.current(), cluster: this.d.cluster, certifiedRange: async () => undefined, past: true });
    if (!past.ok || past.op.id !== keyId) return false;
    const op = past.op;
    if (!op.moves.some((m) => m.from === this.d.self || m.to === this.d.self)) return false;
    const phase = this.ownPhase.get(op.id);
    const t = this.d.topology.current();
    if (phase !== 'done' && !(t.epoch === op.next.epoch && sameAssignment(t, op.next))) return false;
    this.d.log.info({ op: op.id, phase }, 'rebalance operation was cut over before this sidecar started; finishing what is left');
    this.d.onCompleted?.(op, phase);
    return true;
  }

  private async refuse(keyId: string, v: Extract<OperationVerdict, { ok: false }>): Promise<void> {
    this.d.audit.record({ event: 'REBALANCE_REJECTED', op_id: v.opId ?? keyId, reason: `${v.reason}: ${v.message}`, ...(v.signer ? { signer: v.signer } : {}) });
    this.d.log.warn({ op: v.opId ?? keyId, reason: v.reason, err: v.message }, 'rebalance operation refused; nothing done');
    await this.status(v.opId ?? keyId, { phase: 'refused', reason: v.reason, message: v.message });
  }

  private status(opId: string, s: { phase: string; reason?: string; message?: string }): Promise<void> {
    return this.d.status.write(opId, s);
  }

  close(): void {
    this.statusWatcher?.close();
    this.abortWatcher?.close();
    this.watcher?.close();
  }
}
