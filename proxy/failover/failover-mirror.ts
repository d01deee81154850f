// A worker's copy of its control process's failover (docs/sidecar.md "Workers"): the routing
// overlay and the fencing checks of failover.ts, answered from the FailoverState the control
// process sends on every change and every 250 ms. The worker never elects or holds a lease; it
// acknowledges a write as acting primary only while the control process's lease is certainly
// alive: the state carries the lease's deadline on the host's shared monotonic clock
// (hostMonotonicMs), so however late a state is applied (a queued message, a paused worker),
// the worker's deadline — that one, less a margin — never lies beyond the control process's. A
// state older than one applied (seq) is ignored.
import type { Topology } from '../../src/topology/topology.js';
import { replicaGroups, groupOfRange, effectiveTopology } from '../../src/topology/replica-groups.js';
import type { TopologySource } from '../control/topology-source.js';
import type { Fencing } from '../replication/ack-gate.js';
import type { FailoverState } from './failover.js';
import type { Fence } from './fence.js';
import { untilHeld } from './until-held.js';

/** Kept off the control process's deadline, with room to spare. */
export const MIRROR_MARGIN_MS = 50;

const NONE: FailoverState = { seq: 0, acting: [], routes: [], rolledBack: [], settling: [], lease: null, nodeUp: false };

const sameOwners = (a: Topology, b: Topology) => a.ranges.length === b.ranges.length && a.ranges.every((r, i) => r.owner === b.ranges[i]!.owner);

export class FailoverMirror implements Fencing {
  private acting = new Map<string, { shard: string; term: number; lease: string }>();
  private rolledBack = new Set<string>();
  private settling = new Set<string>();
  private state: FailoverState = NONE;
  private leaseUntil = -Infinity;
  private groupOfIndex: (string | undefined)[] = [];
  private effective: Topology;
  private readonly listeners: ((t: Topology, previous: Topology) => void)[] = [];

  constructor(
    private readonly signed: TopologySource,
    private readonly self: string,
    /** hostMonotonicMs in production: the clock the control process's deadlines are on. */
    private readonly monotonic: () => number,
  ) {
    this.effective = signed.current();
    this.index(signed.current());
    signed.onChange((t) => {
      this.index(t);
      this.publish();
    });
  }

  private index(t: Topology): void {
    const groups = replicaGroups(t);
    this.groupOfIndex = t.ranges.map((r) => (r.replicas.length ? groupOfRange(groups, r)!.id : undefined));
  }

  /** The control process's state, as it arrived (until the first, nothing is held: writes wait or are refused). */
  apply(s: FailoverState): void {
    if (s.seq <= this.state.seq) return;
    this.state = s;
    this.acting = new Map(s.acting);
    this.rolledBack = new Set(s.rolledBack);
    this.settling = new Set(s.settling);
    this.leaseUntil = s.lease ? s.lease.untilMs - MIRROR_MARGIN_MS : -Infinity;
    this.publish();
  }

  private publish(): void {
    const next = effectiveTopology(this.signed.current(), new Map(this.state.routes));
    const prev = this.effective;
    this.effective = next;
    if (next !== prev && !(next.epoch === prev.epoch && sameOwners(next, prev))) for (const l of this.listeners) l(next, prev);
  }

  current(): Topology {
    return this.effective;
  }

  onChange(l: (t: Topology, previous: Topology) => void): void {
    this.listeners.push(l);
  }

  /** The control process refreshes; its next state follows. */
  async refresh(): Promise<void> {}

  fenceOf(token: bigint): Fence | undefined {
    const group = this.groupOfIndex[this.signed.current().rangeIndexOf(token)];
    if (group === undefined) return undefined;
    const a = this.acting.get(group);
    return { group, term: a?.term ?? 0, ...(a ? { lease: a.lease } : {}) };
  }

  holds(f: Fence): boolean {
    const a = this.acting.get(f.group);
    const l = this.state.lease;
    return (
      !!a && !!l && a.shard === this.self && a.lease === l.id && a.term === f.term && (f.lease === undefined || f.lease === a.lease) &&
      f.term > 0 && !this.rolledBack.has(f.group) && !this.settling.has(f.group) && this.monotonic() < this.leaseUntil && this.state.nodeUp
    );
  }

  untilHeld(token: bigint, ms: number): Promise<boolean> {
    return untilHeld({ fenceOf: (t) => this.fenceOf(t), holds: (f) => this.holds(f), actingShard: (g) => this.acting.get(g)?.shard }, this.self, token, ms, this.monotonic);
  }
}
