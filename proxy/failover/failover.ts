// Automatic failover of replica groups (docs/replication.md, "Failover"). Each sidecar that
// holds a copy of a group takes part:
//   - the acting primary holds acting/{group} on its fencing lease (the key's create revision
//     is the term) and acknowledges writes only while that lease is certainly alive;
//   - when the key is gone (lease expired: the sidecar died or was paused; or revoked: its
//     storage node died), every live copy publishes its position in the last holder's feed,
//     and the copy that election.ts names creates the next term with a compare-and-swap;
//   - every sidecar routes a group's keys to its acting primary (the effective topology).
// Without a previous holder (a new group) the signed owner takes the first term, and only
// with a `primary`-role certificate: a `replica` certificate acts as primary only by failover.
import type { Etcd3, Watcher } from 'etcd3';
import type { Logger } from '../../src/log.js';
import type { AuditLog } from '../../src/audit/audit-log.js';
import type { Topology } from '../../src/topology/topology.js';
import { replicaGroups, groupOfRange, effectiveTopology, type ReplicaGroup } from '../../src/topology/replica-groups.js';
import type { TopologySource } from '../control/topology-source.js';
import { decide } from './election.js';
import { FencingLease } from './fencing-lease.js';
import { failoverKeys, parseSnapshot, type FailoverSnapshot } from '../../src/control/failover-keys.js';
import { FailoverGenerations } from './generations.js';
import { hostMonotonicMs } from '../../src/runtime.js';
import type { Fence } from './fence.js';
import type { TokenSpan } from '../../src/topology/replica-ranges.js';
import { TermSettling } from './term-settling.js';
import { untilHeld } from './until-held.js';

export interface FailoverDeps {
  etcd: Etcd3;
  cluster: string;
  self: string;
  /** The signed topology (the effective one is built here). */
  signed: TopologySource;
  /** Copies an acknowledgement needs, the primary counted, for a group of `copies` copies. */
  needed: (copies: number) => number;
  leaseTtlSeconds: number;
  monotonic: () => number;
  /** Why this shard may not act for `group` (certificate role, capability, range), or undefined. */
  ineligible: (group: ReplicaGroup, firstTerm: boolean) => string | undefined;
  /** This shard's position in `source`'s feed for the group's ranges (-1: none); `source` = self: its local head. */
  positionIn: (source: string, group: ReplicaGroup) => Promise<number>;
  audit: AuditLog;
  log: Logger;
  onFailover?: (result: 'completed' | 'refused') => void;
  /** Where the highest generation seen per group is kept (replication.stateDir); without it, only in memory. */
  generationsFile?: string;
  /**
   * Resolves once no retiring replica follower writes into `ranges` on this shard's storage node
   * any more (ReplicaManager.quietFor); undefined when none does. A term just taken is not held
   * before (term-settling.ts).
   */
  quiet?: (ranges: readonly TokenSpan[]) => Promise<void> | undefined;
}

/**
 * What a sidecar's workers need of failover (proxy/failover/failover-mirror.ts): where each
 * group's keys go, who acts for it at which term on which lease, and this process's lease and
 * storage node. Sent by the control process on every change and every 250 ms.
 */
export interface FailoverState {
  /** Increases with every state sent: a worker never applies an older one after a newer. */
  seq: number;
  acting: [string, { shard: string; term: number; lease: string }][];
  /** The routing overlay publish() computed: group → shard its keys go to. */
  routes: [string, string][];
  rolledBack: string[];
  /** Terms this shard took but does not hold yet: its follower of the group's previous primary still writes here (term-settling.ts). */
  settling: string[];
  /** This sidecar's lease while certainly alive, and until when (hostMonotonicMs, shared by the host's processes). */
  lease: { id: string; untilMs: number } | null;
  nodeUp: boolean;
}


export class Failover {
  /** Terms taken that are not held yet (term-settling.ts); without `quiet`, none. */
  private readonly settling: TermSettling | undefined;
  private lease: FencingLease | undefined;
  private granting = false;
  private watcher: Watcher | undefined;
  private snap: FailoverSnapshot = { acting: new Map(), last: new Map(), candidates: new Map(), rolledBack: new Map() };
  private readonly generations: FailoverGenerations;
  /** Groups whose roll-back this sidecar reported (audit once per group). */
  private readonly reported = new Set<string>();
  private groups: ReplicaGroup[] = [];
  /** Group id of each range of the signed topology (undefined: no replicas). */
  private groupOfIndex: (string | undefined)[] = [];
  private effective: Topology;
  private readonly listeners: ((t: Topology, previous: Topology) => void)[] = [];
  private refreshing: Promise<void> | undefined;
  private again = false;
  private poll: NodeJS.Timeout | undefined;
  private stopped = false;
  private nodeUp = true;
  /** When this shard began standing in each group's election (monotonic ms), for FAILOVER_COMPLETED. */
  private readonly standingSince = new Map<string, number>();
  private readonly keys: ReturnType<typeof failoverKeys>;
  private routes = new Map<string, string>();
  private readonly stateListeners: (() => void)[] = [];
  private stateSeq = 0;

  constructor(private readonly d: FailoverDeps) {
    this.keys = failoverKeys(d.cluster);
    this.generations = new FailoverGenerations(d.generationsFile, d.log);
    this.settling = d.quiet ? new TermSettling(d.self, d.quiet, () => this.changed()) : undefined;
    this.effective = d.signed.current();
    this.index(d.signed.current());
    d.signed.onChange((t) => {
      this.index(t);
      this.publish();
      void this.refresh();
    });
  }

  private index(t: Topology): void {
    this.groups = replicaGroups(t);
    this.groupOfIndex = t.ranges.map((r) => (r.replicas.length ? groupOfRange(this.groups, r)!.id : undefined));
  }

  /** The topology requests are routed by: the signed one with failed-over groups moved to their acting primaries. */
  current(): Topology {
    return this.effective;
  }

  onChange(l: (t: Topology, previous: Topology) => void): void {
    this.listeners.push(l);
  }

  private publish(): void {
    // While a group elects, its keys still go to the last holder (they fail, retryably, until the
    // new term): falling back to the signed owner would restart every follower with a full copy.
    const acting = new Map([...this.snap.last].map(([g, l]) => [g, l.shard]));
    for (const [g, a] of this.snap.acting) acting.set(g, a.shard);
    // A group whose state in etcd went back (restored): routed to the holder of the newest
    // generation a copy saw — it holds every write acknowledged before the restore — not to the
    // older holder etcd names, which may miss some (reads would not see them, and a repair copy
    // from it would delete them). Nobody acknowledges writes there until an operator resolves it.
    for (const [g, r] of this.snap.rolledBack) if (r.holder !== '?') acting.set(g, r.holder);
    this.routes = acting;
    const next = effectiveTopology(this.d.signed.current(), acting);
    const prev = this.effective;
    this.changed();
    if (next === prev || (next.epoch === prev.epoch && sameOwners(next, prev))) {
      this.effective = next;
      return;
    }
    this.effective = next;
    for (const l of this.listeners) l(next, prev);
  }

  /** Told of every change of what mirrorState() returns (but the lease's remaining time). */
  onState(l: () => void): void {
    this.stateListeners.push(l);
  }

  private changed(): void {
    for (const l of this.stateListeners) l();
  }

  /** What the workers mirror (FailoverState). */
  mirrorState(): FailoverState {
    const l = this.lease;
    return {
      seq: ++this.stateSeq,
      acting: [...this.snap.acting].map(([g, a]) => [g, { shard: a.shard, term: a.term, lease: a.lease }]),
      routes: [...this.routes],
      rolledBack: [...this.snap.rolledBack.keys()],
      settling: this.settling?.list() ?? [],
      lease: l?.alive() ? { id: l.id, untilMs: hostMonotonicMs() + l.deadline.remainingMs() } : null,
      nodeUp: this.nodeUp,
    };
  }

  /** The group and term a write to the key of `token` must be acknowledged under; undefined when its range has no replicas. */
  fenceOf(token: bigint): Fence | undefined {
    const group = this.groupOfIndex[this.d.signed.current().rangeIndexOf(token)];
    if (group === undefined) return undefined;
    const a = this.snap.acting.get(group);
    return { group, term: a?.term ?? 0, ...(a ? { lease: a.lease } : {}) };
  }

  /** True while this sidecar is the group's acting primary at `term` on a lease that is certainly alive. */
  holds(f: Fence): boolean {
    const a = this.snap.acting.get(f.group);
    const l = this.lease;
    return (
      !!a && !!l && a.shard === this.d.self && a.lease === l.id && a.term === f.term && (f.lease === undefined || f.lease === a.lease) &&
      f.term > 0 && !this.snap.rolledBack.has(f.group) && !this.settling?.has(f.group) && l.alive() && this.nodeUp
    );
  }

  untilHeld(token: bigint, ms: number): Promise<boolean> {
    return untilHeld({ fenceOf: (t) => this.fenceOf(t), holds: (f) => this.holds(f), actingShard: (g) => this.snap.acting.get(g)?.shard }, this.d.self, token, ms, () => performance.now());
  }

  /** The acting primary of each group this shard holds a copy of, for status and metrics. */
  actingFor(): number {
    return [...this.snap.acting.values()].filter((a) => a.shard === this.d.self && a.lease === this.lease?.id).length;
  }

  leaseRemainingMs(): number {
    return this.lease?.alive() ? this.lease.deadline.remainingMs() : 0;
  }

  async start(): Promise<void> {
    this.watcher = await this.d.etcd.watch().prefix(this.keys.base).create().catch((e: Error) => {
      this.d.log.warn({ err: e.message }, 'cannot watch the failover keys yet; polling');
      return undefined;
    });
    this.watcher?.on('data', () => void this.refresh());
    // A safety net for missed watch events, and the pace of a waiting election.
    this.poll = setInterval(() => void this.refresh(), 500);
    this.poll.unref();
    await this.ensureLease();
    await this.refresh();
  }

  /** The storage node went down (resign: every key on the lease goes) or came back (take part again). */
  nodeChanged(up: boolean): void {
    this.nodeUp = up;
    this.changed();
    if (!up && this.lease) {
      const l = this.lease;
      this.lease = undefined;
      this.d.log.warn({ acting: this.actingGroupsOf(l.id) }, 'storage node down: resigning as acting primary (revoking the failover lease)');
      void l.revoke().then(() => this.refresh());
    } else if (up) {
      void this.ensureLease().then(() => this.refresh());
    }
  }

  private actingGroupsOf(lease: string): string[] {
    return [...this.snap.acting].filter(([, a]) => a.lease === lease).map(([g]) => g);
  }

  private async ensureLease(): Promise<void> {
    if (this.lease || this.granting || this.stopped || !this.nodeUp) return;
    this.granting = true;
    try {
      this.lease = await FencingLease.grant(this.d.etcd, {
        ttlSeconds: this.d.leaseTtlSeconds,
        monotonic: this.d.monotonic,
        onLost: (why) => {
          this.d.log.warn({ why }, 'failover lease lost: no longer acting primary anywhere; taking a new lease');
          this.lease = undefined;
          this.changed();
          void this.ensureLease().then(() => this.refresh());
        },
      });
      this.changed();
    } catch (e) {
      this.d.log.warn({ err: (e as Error).message }, 'cannot get a failover lease; retrying');
      setTimeout(() => void this.ensureLease().then(() => this.refresh()), 500).unref();
    } finally {
      this.granting = false;
    }
  }

  /** Re-reads the failover keys, routes by them, and does this shard's part in each group. */
  refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.again = false;
        try {
          const res = await this.d.etcd.getAll().prefix(this.keys.base).exec();
          const snap = parseSnapshot(this.keys.base, res.kvs as never);
          await this.checkGenerations(snap);
          // Terms just taken are not held until the followers of their old primaries stopped
          // writing here; publish's change retires those followers (ReplicaManager.reconcile).
          const fresh = this.settling?.mark(this.groups, this.snap.acting, snap.acting) ?? [];
          this.snap = snap;
          this.publish();
          this.settling?.settle(fresh);
          if (!this.stopped) await this.act();
        } catch (e) {
          this.d.log.debug({ err: (e as Error).message }, 'failover refresh failed');
        }
      } while (this.again && !this.stopped);
    })().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async act(): Promise<void> {
    const lease = this.lease;
    if (!lease || !lease.alive()) return;
    const signed = this.d.signed.current();
    for (const g of this.groups) {
      if (!g.copies.includes(this.d.self)) continue;
      const acting = this.snap.acting.get(g.id);
      const mine = this.snap.candidates.get(g.id)?.find((c) => c.shard === this.d.self);
      const rolledBack = this.snap.rolledBack.get(g.id);
      if (rolledBack) {
        this.d.log.debug({ group: g.id, ...rolledBack }, 'failover state of the group rolled back (etcd restored): waiting for an operator');
        continue;
      }
      if (acting) {
        this.standingSince.delete(g.id);
        if (mine) await this.d.etcd.delete().key(this.keys.candidate(g.id, this.d.self)).catch(() => undefined);
        continue;
      }
      const last = this.snap.last.get(g.id);
      if (!last) {
        if (g.owner !== this.d.self) continue;
        const why = this.d.ineligible(g, true);
        if (why) {
          this.d.log.warn({ group: g.id, why }, 'may not take the first term of a group it owns');
          continue;
        }
        await this.take(g, lease, undefined, signed.epoch, 'first term: the signed owner');
        continue;
      }
      const why = this.d.ineligible(g, false);
      if (why) {
        this.d.log.warn({ group: g.id, why }, 'may not stand in the failover election');
        continue;
      }
      if (!this.standingSince.has(g.id)) {
        this.standingSince.set(g.id, this.d.monotonic());
        this.d.audit.record({ event: 'FAILOVER_STARTED', group: g.id, previous_primary: last.shard, previous_term: last.term, ranges: g.ranges.length });
      }
      const position = await this.d.positionIn(last.shard, g);
      if (!mine || mine.position !== position || mine.source !== last.shard || mine.sourceTerm !== last.term) {
        await this.d.etcd.put(this.keys.candidate(g.id, this.d.self)).value(JSON.stringify({ position, source: last.shard, source_term: last.term })).lease(lease.id);
        const others = (this.snap.candidates.get(g.id) ?? []).filter((c) => c.shard !== this.d.self);
        this.snap.candidates.set(g.id, [...others, { shard: this.d.self, position, source: last.shard, sourceTerm: last.term }]);
      }
      const decision = decide({ copies: g.copies, last, candidates: this.snap.candidates.get(g.id) ?? [], needed: this.d.needed(g.copies.length) });
      if ('wait' in decision) {
        this.d.log.debug({ group: g.id, wait: decision.wait }, 'failover election waiting');
        continue;
      }
      if (decision.winner !== this.d.self) continue;
      await this.take(g, lease, last, signed.epoch, decision.why);
    }
  }

  /** Creates the group's next term for this shard, if nobody has meanwhile (compare-and-swap). */
  private async take(g: ReplicaGroup, lease: FencingLease, last: { shard: string; term: number; gen: number } | undefined, epoch: number, why: string): Promise<void> {
    const k = this.keys;
    const gen = (last?.gen ?? 0) + 1;
    const txn = this.d.etcd
      .if(k.acting(g.id), 'Create', '==', 0)
      .and(k.last(g.id), last ? 'Mod' : 'Create', '==', last ? last.term : 0)
      .and(k.rolledBack(g.id), 'Create', '==', 0)
      .then(
        this.d.etcd.put(k.acting(g.id)).value(JSON.stringify({ shard: this.d.self, epoch, since: new Date().toISOString(), gen })).lease(lease.id),
        this.d.etcd.put(k.last(g.id)).value(JSON.stringify({ shard: this.d.self, gen })),
      );
    const res = await txn.commit();
    if (!res.succeeded) return;
    const term = Number(res.header.revision);
    await this.d.etcd.delete().prefix(k.candidates(g.id)).catch(() => undefined);
    const started = this.standingSince.get(g.id);
    this.standingSince.delete(g.id);
    if (last) {
      this.d.onFailover?.('completed');
      this.d.audit.record({
        event: 'FAILOVER_COMPLETED', group: g.id, primary: this.d.self, term, previous_primary: last.shard, previous_term: last.term, reason: why,
        ...(started !== undefined ? { election_ms: Math.round(this.d.monotonic() - started) } : {}),
      });
    }
    this.d.log.info({ group: g.id, term, previous: last?.shard, why }, last ? 'took over as acting primary' : 'acting primary (first term)');
  }

  /**
   * Compares etcd's generation of each of this shard's groups with the highest this sidecar saw
   * (kept on disk before it is acted on). Lower: etcd went back (restored from an older
   * snapshot) and its `last` record may name a copy that misses writes later terms
   * acknowledged; the group is marked rolled back in etcd, which stops every copy from taking or
   * holding a term of it until an operator resolves it. Higher: remembered.
   */
  private async checkGenerations(snap: FailoverSnapshot): Promise<void> {
    const seen: { group: string; gen: number; holder: string }[] = [];
    for (const g of this.groups) {
      if (!g.copies.includes(this.d.self)) continue;
      const a = snap.acting.get(g.id);
      const l = snap.last.get(g.id);
      const etcdGen = Math.max(a?.gen ?? 0, l?.gen ?? 0);
      const known = this.generations.get(g.id);
      if (known && etcdGen < known.gen) {
        const marked = snap.rolledBack.get(g.id);
        if (!marked || marked.gen < known.gen) await this.markRolledBack(g.id, known, etcdGen, l?.shard, marked?.mod);
        const m = snap.rolledBack.get(g.id);
        if (!m || m.gen < known.gen) snap.rolledBack.set(g.id, { gen: known.gen, holder: known.holder, by: this.d.self, mod: '' });
        continue;
      }
      const holder = a && a.gen >= (l?.gen ?? 0) ? a.shard : l?.shard;
      if (holder && etcdGen > 0 && (!known || etcdGen > known.gen)) seen.push({ group: g.id, gen: etcdGen, holder });
    }
    if (seen.length) await this.generations.raise(seen);
  }

  private async markRolledBack(group: string, known: { gen: number; holder: string }, etcdGen: number, etcdHolder: string | undefined, mod: string | undefined): Promise<void> {
    const key = this.keys.rolledBack(group);
    const value = JSON.stringify({ gen: known.gen, holder: known.holder, by: this.d.self, etcd_gen: etcdGen, etcd_holder: etcdHolder ?? null, at: new Date().toISOString() });
    await this.d.etcd
      .if(key, mod ? 'Mod' : 'Create', '==', mod ?? 0)
      .then(this.d.etcd.put(key).value(value))
      .commit()
      .catch((e: Error) => this.d.log.warn({ err: e.message, group }, 'cannot mark the group rolled back in etcd yet'));
    if (this.reported.has(group)) return;
    this.reported.add(group);
    this.d.log.error(
      { group, gen: known.gen, holder: known.holder, etcd_gen: etcdGen, etcd_holder: etcdHolder },
      'etcd holds an older failover state of this group than this shard saw (etcd restored from an older snapshot): no copy takes or holds its term until an operator resolves it (docs/disaster-recovery.md)',
    );
    this.d.audit.record({ event: 'FAILOVER_STATE_ROLLED_BACK', group, gen: known.gen, holder: known.holder, etcd_gen: etcdGen, etcd_holder: etcdHolder ?? null });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.poll);
    await this.watcher?.cancel().catch(() => undefined);
    await this.refreshing;
    // A clean stop hands over at once instead of after the lease's TTL.
    await this.lease?.revoke();
    this.lease = undefined;
  }
}

function sameOwners(a: Topology, b: Topology): boolean {
  return a.ranges.length === b.ranges.length && a.ranges.every((r, i) => r.owner === b.ranges[i]!.owner && r.replicas.join() === b.ranges[i]!.replicas.join());
}
